"""time-scale: sample quality against the integrator time constant RC, one simulated board per RC, on Dask.

Every point builds a fresh simulated world whose board is built with that RC
(``CircuitParams.rc`` of the world's ``AnalogLoop``; the emulated macro controller reports
it at LOOP_INFO), write-verifies the mapped score network, lets it relax and samples the
ring (and, with ``model=digits``, the conditional task: every class) on the closed loop.

Time scaling (``docs/speed-energy.md``, "Time-scale study"): the board's fine step scales
with RC, ``dt_step = STEP_OVER_RC x RC`` (1e-3, the default board's 1 us over 1 ms), so a
sample is always ``n_steps`` solver steps (1,500) and lasts ``n_steps x dt_step = 1.5 RC``
of physical time. The DAC streams cannot follow a step that short: the stream DAC (the
circuit model's part, ADI AD5542A, 1 MHz update rate) is updated at most at its rate, so a
sample holds ``min(n_steps, floor(duration x rate))`` (at least 1) DAC values, each held
``duration / points``. Below RC = 1 ms the time embedding and the gains a, b become
coarser staircases; with the ideal loop that is the only thing RC changes, with the
circuit-level loop the op-amp lags, slew and DAC settling add to it.

Run-file layout (``/entry/data``), one row per finished point (completion order; ``rc`` says
which point): ``rc`` (s), ``time_per_sample`` (s, the closed-loop run of one sample),
``dac_updates`` (DAC values per sample), ``kl`` (2,: x, y against the reference ring),
``kl_pooled`` (both coordinates in one histogram, the authors' form), ``hist2d_distance`` (the
seed's 2-D histogram distance, ``protocols.diffusion.scoring.hist2d``), ``radius`` (mean
radius, data units), ``radial_std``, ``saturated`` (fraction of trajectories on an
integrator rail), ``worker_seconds`` (s); with ``model=digits`` also
``kl_digits`` (2,: latents against posterior draws of the real digits' latents),
``kl_pooled_digits``, ``hist2d_distance_digits`` and
``saturated_digits``. One row each: ``software_kl`` (2,) and, digits, ``software_kl_digits``
(2,): the software sampler (model's own step count) against the same references, which set
the bar; ``kl_floor``, ``kl_floor_spread`` (4,: x, y, mean, pooled) and, digits,
``kl_floor_digits``, ``kl_floor_spread_digits``: the sampling floor, the KL of as many fresh
reference samples as a point draws (``protocols.diffusion.scoring.task_floor``), and
``hist2d_floor`` (``hist2d_floor_digits``; 2,: median, standard deviation) the 2-D histogram
distance's.
The protocol is simulated-only (``BenchUse.SIMULATED_ONLY``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from protocols.diffusion.analog import N_STEPS
from protocols.diffusion.dask_points import check_scheduler, map_points
from protocols.engine.datasets import Constant, Plot, Spec, Stream
from protocols.engine.protocol import BenchUse, ParameterError, Protocol, Step, param

log = logging.getLogger("rrambench.time_scale")

#: Fine step over RC of every board of the study: the default board's 1 us over 1 ms.
STEP_OVER_RC = 1e-3
#: Stream DAC update rate (Hz): ADI AD5542A, settling 1 us to 1/2 LSB (the circuit model's
#: part, ``instruments/sim/loop_circuit.py``); no faster DAC updates are modelled.
DAC_RATE = 1e6
#: Ring bar (issue 14, as the demo): KL <= BAR_FACTOR x software + BAR_OFFSET, each coordinate.
BAR_FACTOR, BAR_OFFSET = 1.5, 0.02
#: Shortest and longest RC accepted (s): 1 ns is far below any op-amp's reach; 1 s boards
#: would take 1.5 s per sample of virtual time and gain nothing.
RC_LIMITS = (1e-9, 1.0)
POINT_TIME = 15.0  # s, wall time of one ring point on one core (1000 samples, circuit loop), for the estimate
DIGITS_FACTOR = 4.0  # a digits point also samples every class: about this many times a ring point
TASKS = ("ring", "digits")
REFERENCE_POINTS = 10_000


def board_step(rc: float) -> float:
    """Fine step of a board built with time constant ``rc`` (s)."""
    return STEP_OVER_RC * rc


def dac_updates(duration: float, n_steps: int, rate: float = DAC_RATE) -> int:
    """DAC values per sample of ``duration`` (s): one per fine step, at most ``rate`` per second, at least one."""
    return int(max(1, min(n_steps, math.floor(duration * rate * (1 + 1e-9)))))


def bar(software_kl: np.ndarray) -> np.ndarray:
    """Largest KL per coordinate that meets the bar, given the software sampler's."""
    return BAR_FACTOR * np.asarray(software_kl, float) + BAR_OFFSET


def fastest_passing(rc: np.ndarray, kl: np.ndarray, software_kl: np.ndarray) -> float:
    """Smallest RC (s) whose KL meets the bar on both coordinates, NaN when none does.

    "Fastest that still meets": the smallest RC such that it and every larger RC pass,
    so a lucky pass below a failing RC does not count.
    """
    order = np.argsort(rc)[::-1]
    best = math.nan
    limit = bar(software_kl)
    for k in order:
        if not np.all(np.asarray(kl[k]) <= limit):
            break
        best = float(rc[k])
    return best


@dataclass(frozen=True)
class RcPoint:
    """One board of the study: model, RC (s), samples (per class for conditional models),
    loop steps per sample, relaxation before sampling (s), world seed, loop model ("" = the
    circuit's default, "ideal" or "circuit")."""

    model: str
    rc: float
    samples: int
    n_steps: int
    settle: float
    seed: int
    loop_model: str = ""


def board_world(rc: float, seed: int, loop_model: str = "", n_macros: int | None = None) -> Any:
    """A fresh simulated world whose board is built with time constant ``rc`` (s) and fine step
    :func:`board_step` (its macro controller reports both at LOOP_INFO); ``loop_model`` "" keeps
    the simulator's default loop model."""
    from instruments.sim.world import SimWorld

    world = SimWorld(seed=seed) if n_macros is None else SimWorld(seed=seed, n_macros=n_macros)
    step = board_step(rc)
    # traces at 1/10 of the step rate, as the default board (1e5 Hz at 1 us)
    changes: dict[str, object] = {"rc": float(rc), "dt_step": step, "trace_rate": 0.1 / step}
    if loop_model:
        changes["model"] = loop_model
    world.loop.params = replace(world.loop.params, **changes)
    return world


def run_rc_point(point: RcPoint) -> dict[str, object]:
    """Program the model on a fresh world built with ``point.rc`` and sample it (a Dask worker runs this).

    Returns ``{"point", "dac_updates", "duration", "ring": {...}, "digits": {...} (digits only),
    "worker_seconds"}``; each task: ``kl`` (2,), ``kl_pooled``, ``hist2d``, ``saturated`` (fraction),
    ring also ``radius``, ``radial_std``.
    """
    from analysis.metrics import coordinate_kl, pooled_kl, ring_statistics
    from instruments.sim.direct import DirectArrayAccess
    from protocols.diffusion.analog import initial_noise, program_network, world_sample
    from protocols.diffusion.scoring import hist2d
    from protocols.diffusion.simulated_sweep import N_MACROS, mapped_model

    start = time.perf_counter()
    world = board_world(point.rc, point.seed, point.loop_model, n_macros=N_MACROS)
    duration = point.n_steps * board_step(point.rc)
    updates = dac_updates(duration, point.n_steps)
    models = ["ring"] + (["digits"] if point.model == "digits" else [])
    out: dict[str, object] = {"point": point, "dac_updates": updates, "duration": duration}
    rng = np.random.default_rng(point.seed)
    for name in models:
        model, mapped = mapped_model(name)
        outcome = program_network(DirectArrayAccess(world), mapped, shape=world.shape, now=world.clock.now,
                                  sleep=world.clock.sleep)
        world.clock.sleep(point.settle)
        conds = list(range(model.net.n_classes)) if model.net.conditional else [None]
        finals, saturated = [], []
        for cond in conds:
            x0 = initial_noise(rng, point.samples, model.net.dim)
            res = world_sample(world, outcome.mapped, model, x0, sde=False, rng=rng, cond=cond,
                               n_steps=point.n_steps, stream_points=updates)
            finals.append(res.final)
            saturated.append(res.saturated if res.saturated is not None else np.zeros(len(x0), bool))
        final = np.concatenate(finals)
        finite = np.all(np.isfinite(final), axis=1)
        task = {"kl": coordinate_kl(final[finite], reference(name)),
                "kl_pooled": pooled_kl(final[finite], reference(name)),
                "hist2d": hist2d(name, final[finite]),
                "saturated": float(np.mean(np.concatenate(saturated)))}
        if name == "ring":
            stats = ring_statistics(final[finite])
            task.update(radius=stats.mean_radius, radial_std=stats.radial_std)
        out[name] = task
    out["worker_seconds"] = time.perf_counter() - start
    log.info("rc %g s: ring KL %s", point.rc, np.round(out["ring"]["kl"], 3).tolist())
    return out


def reference(task: str) -> np.ndarray:
    """Reference points (N, 2) in data units (``protocols.diffusion.scoring.task_reference``): fresh
    ring points, or posterior draws of the real digits' latents; the same for every point and run."""
    from protocols.diffusion.scoring import task_reference

    return task_reference(task)


def software_kl(task: str, samples: int, seed: int) -> np.ndarray:
    """KL (2,) of the software probability-flow sampler (the model's own step count) against the reference."""
    from analysis.metrics import coordinate_kl
    from protocols.diffusion.evaluate import digits_samples
    from protocols.diffusion.samplers import sample_probability_flow
    from protocols.diffusion.weights import load_shipped

    model = load_shipped(task)
    if model.net.conditional:
        final, _ = digits_samples(model, samples, seed)
    else:
        x0 = np.random.default_rng(seed).standard_normal((samples, model.net.dim))
        final = sample_probability_flow(model.net, model.sampling_sde, x0, model.sampling.n_steps,
                                        model.sampling.t_end).final
    return coordinate_kl(final, reference(task))


def floor_specs(suffix: str) -> list[Spec]:
    """The sampling floor of a task's KL (``suffix`` "" ring, "_digits")."""
    what = "ring" if not suffix else "digits latents'"
    return [Stream(f"kl_floor{suffix}", units="", shape=(4,), long_name=f"sampling floor of the {what} KL: median "
                   "over draws of fresh reference samples, as many as a point's; columns x, y, mean, pooled"),
            Stream(f"kl_floor_spread{suffix}", units="", shape=(4,),
                   long_name="standard deviation of the floor's draws; columns x, y, mean, pooled"),
            Stream(f"hist2d_floor{suffix}", units="", shape=(2,), long_name="sampling floor of the 2-D histogram "
                   "distance (the same draws): median and standard deviation")]


class TimeScale(Protocol):
    """Sample quality against the integrator time constant RC: one simulated board per RC, on Dask."""

    name = "time-scale"
    signal = "kl_mean"
    bench_use = BenchUse.SIMULATED_ONLY  # opens no bench: every point builds its own simulated board

    @dataclass
    class Params:
        rc: list[float] = param([1e-3, 1e-4, 1e-5, 1e-6, 1e-7], unit="s", limits=RC_LIMITS,
                                help="integrator time constants of the boards compared")
        model: str = param("ring", choices=TASKS, help="ring, or digits: the ring and the conditional task")
        samples: int = param(1000, limits=(1, 100_000), help="samples per point (per class for digits)")
        n_steps: int = param(N_STEPS, limits=(10, 1_000_000),
                             help="loop fine steps per sample (dt_step = 1e-3 RC each)")
        settle: float = param(0.0, unit="s", limits=(0.0, 1e7),
                              help="relaxation between programming and sampling (0: RC is all that differs)")
        loop_model: str = param("", choices=("", "ideal", "circuit"),
                                help="analog loop model of the boards ('' = the simulator's default)")
        scheduler: str = param("local", help="local (LocalCluster), serial (in process) or tcp://HOST:PORT")
        workers: int = param(2, limits=(1, 256), help="worker processes of the local cluster")

    def __init__(self, params=None) -> None:
        super().__init__(params)
        check_scheduler(self.p.scheduler)
        rc = self.p.rc
        if not rc:
            raise ParameterError("rc: give at least one time constant, e.g. rc=1e-3,1e-5")
        if len(set(rc)) != len(rc):
            raise ParameterError(f"rc lists a value twice: {rc}")
        bad = [v for v in rc if not (math.isfinite(v) and RC_LIMITS[0] <= v <= RC_LIMITS[1])]
        if bad:
            raise ParameterError(f"rc={bad[0]!r}: must be a time constant in "
                                 f"[{RC_LIMITS[0]:g}, {RC_LIMITS[1]:g}] s")

    def simulated_parts(self) -> list[str]:
        return ["every RC: the score network programmed and sampled on a fresh simulated board built with "
                "that RC (world seeds from the run seed)"]

    def points(self, seed: int) -> list[RcPoint]:
        """One point per RC, slowest first (the order of the parameter)."""
        return [RcPoint(self.p.model, float(rc), self.p.samples, self.p.n_steps, self.p.settle, seed,
                        self.p.loop_model) for rc in self.p.rc]

    def tasks(self) -> tuple[str, ...]:
        return ("ring", "digits") if self.p.model == "digits" else ("ring",)

    def datasets(self) -> Sequence[Spec]:
        specs: list[Spec] = [
            Constant("rc_requested", units="s", data=np.array(self.p.rc), long_name="time constants of the study"),
            Stream("rc", units="s", long_name="integrator time constant RC of the point's board"),
            Stream("time_per_sample", units="s", long_name="closed-loop run of one analog sample (n_steps x dt_step)"),
            Stream("dac_updates", units="", dtype="i8", long_name="DAC values per sample (bounded by the DAC rate)"),
            Stream("kl", units="", shape=(2,), long_name="ring KL divergence per coordinate (x, y) vs reference"),
            Stream("kl_mean", units="", long_name="ring KL divergence, mean of x and y"),
            Stream("kl_pooled", units="", long_name="ring KL divergence of x and y pooled in one histogram"),
            Stream("hist2d_distance", units="", long_name="ring 2-D histogram distance vs reference"),
            Stream("radius", units="", long_name="mean radius of the ring samples (data units)"),
            Stream("radial_std", units="", long_name="radial standard deviation of the ring samples (data units)"),
            Stream("saturated", units="", long_name="fraction of ring trajectories on an integrator rail"),
            Stream("worker_seconds", units="s", long_name="wall time of the point on its worker"),
            Stream("software_kl", units="", shape=(2,), long_name="software sampler's ring KL per coordinate"),
            *floor_specs(""),
        ]
        if self.p.model == "digits":
            specs += [
                Stream("kl_digits", units="", shape=(2,),
                       long_name="conditional latents' KL per coordinate vs the real digits' posterior draws"),
                Stream("saturated_digits", units="", long_name="fraction of digits trajectories on a rail"),
                Stream("software_kl_digits", units="", shape=(2,),
                       long_name="software sampler's digits-latent KL per coordinate"),
                Stream("kl_pooled_digits", units="", long_name="conditional latents' KL, x and y pooled"),
                Stream("hist2d_distance_digits", units="", long_name="conditional latents' 2-D histogram distance"),
                *floor_specs("_digits"),
            ]
        specs.append(Plot("kl_mean", ("rc",), title="ring KL (mean of x, y) against the integrator RC"))
        return specs

    def plan(self) -> Iterator[Step]:
        factor = DIGITS_FACTOR if self.p.model == "digits" else 1.0
        parallel = 1 if self.p.scheduler == "serial" else self.p.workers
        yield Step("software baseline", self.baseline, estimate=5.0 * factor * self.p.samples / 1000)
        n = len(self.p.rc)
        yield Step(f"sample on {n} boards ({self.p.scheduler})", self.sweep,
                   estimate=n * POINT_TIME * factor * self.p.samples / 1000 * self.p.n_steps / N_STEPS / parallel)

    def baseline(self) -> None:
        """The software sampler's KL: the reference level of the bar; the sampling floor."""
        from protocols.diffusion.scoring import task_floor
        from protocols.diffusion.weights import load_shipped

        seed = int(self.rng.integers(2**31))
        for task in self.tasks():
            suffix = "" if task == "ring" else "_digits"
            self.record(f"software_kl{suffix}", software_kl(task, self.p.samples, seed))
            floor = task_floor(task, self.p.samples * (load_shipped(task).net.n_classes or 1))
            self.record(f"kl_floor{suffix}", floor.median)
            self.record(f"kl_floor_spread{suffix}", floor.spread)
            self.record(f"hist2d_floor{suffix}", floor.hist2d_floor)
            self.check()

    def sweep(self) -> None:
        """Every RC on its own board; each point recorded as it finishes."""
        points = self.points(seed=int(self.rng.integers(2**31)))
        done = 0

        def record(index: int, result: dict) -> None:
            nonlocal done
            ring = result["ring"]
            self.record("rc", result["point"].rc)
            self.record("time_per_sample", result["duration"])
            self.record("dac_updates", result["dac_updates"])
            self.record("kl", ring["kl"])
            self.record("kl_mean", float(np.mean(ring["kl"])))
            self.record("kl_pooled", ring["kl_pooled"])
            self.record("hist2d_distance", ring["hist2d"])
            self.record("radius", ring["radius"])
            self.record("radial_std", ring["radial_std"])
            self.record("saturated", ring["saturated"])
            self.record("worker_seconds", result["worker_seconds"])
            if "digits" in result:
                self.record("kl_digits", result["digits"]["kl"])
                self.record("kl_pooled_digits", result["digits"]["kl_pooled"])
                self.record("hist2d_distance_digits", result["digits"]["hist2d"])
                self.record("saturated_digits", result["digits"]["saturated"])
            done += 1
            self.progress(done / len(points))

        map_points(run_rc_point, points, record, scheduler=self.p.scheduler, workers=self.p.workers,
                   check=self.check)

    def outcome(self) -> dict:
        """The fastest RC meeting the ring bar with the default parts, its time per sample, the KL range."""
        rc, kl = self.recorded("rc"), self.recorded("kl")
        soft = self.recorded("software_kl")[-1]
        fastest = fastest_passing(rc, kl, soft)
        tps = self.recorded("time_per_sample")
        at = float(tps[np.flatnonzero(rc == fastest)[0]]) if math.isfinite(fastest) else math.nan
        out = {"points": (int(rc.size), ""), "fastest_rc_meeting_bar": (fastest, "s"),
               "time_per_sample_at_fastest": (at, "s"),
               "ring_bar_kl": (float(np.max(bar(soft))), ""),
               "kl_max_worst_point": (float(np.max(kl)), ""),
               "kl_floor": (float(self.recorded("kl_floor")[-1][2]), ""),
               "kl_floor_spread": (float(self.recorded("kl_floor_spread")[-1][2]), ""),
               "kl_pooled_worst_point": (float(np.max(self.recorded("kl_pooled"))), ""),
               "kl_pooled_floor": (float(self.recorded("kl_floor")[-1][3]), ""),
               "kl_pooled_floor_spread": (float(self.recorded("kl_floor_spread")[-1][3]), ""),
               "hist2d_worst_point": (float(np.max(self.recorded("hist2d_distance"))), ""),
               "hist2d_floor": (float(self.recorded("hist2d_floor")[-1][0]), ""),
               "hist2d_floor_spread": (float(self.recorded("hist2d_floor")[-1][1]), "")}
        if self.p.model == "digits":
            soft_d = self.recorded("software_kl_digits")[-1]
            out["fastest_rc_meeting_bar_digits"] = (fastest_passing(rc, self.recorded("kl_digits"), soft_d), "s")
            out["kl_digits_floor"] = (float(self.recorded("kl_floor_digits")[-1][2]), "")
            out["kl_digits_floor_spread"] = (float(self.recorded("kl_floor_spread_digits")[-1][2]), "")
        return out
