"""noise-sweep: read and write noise of simulated program-and-sample experiments, on Dask (Fig. 5e/f).

Every noise setting, for every model (noise-trained "ring" and plain "ring-plain" by
default; the conditional task's "digits" and "digits-plain" with ``models=digits,digits-plain``,
one task per sweep) and every one of ``worlds`` simulated worlds, is one full experiment in a fresh
simulated world (:func:`protocols.diffusion.simulated_sweep.run_point`): write-verify the mapped
score network, let it relax, sample the ring on the analog loop, score the samples. The
settings are ``grid=axes`` (the default, as Fig. 5f: read noise swept at the write-noise level
nearest the default 1x, write noise swept at the read-noise level nearest 1x) or
``grid=full`` (every read x write pair, as the Fig. 5e map). Each world has its own seed,
spawned from the run seed (``numpy.random.SeedSequence``), and the same world seed serves
every setting and model (common random numbers: the comparison is paired). The points
run on dask.distributed: a ``LocalCluster`` of ``workers`` processes by default, an
existing cluster with ``scheduler=tcp://HOST:PORT``, or in process with
``scheduler=serial``. Results stream into the run file as points finish, so a killed
run keeps every finished point; the median and quartile grids over worlds are recorded once
the sweep is complete (a reader recomputes them from the rows of a killed run).
The protocol is simulated-only (``BenchUse.SIMULATED_ONLY``): a run opens no bench, on a
hardware config too, and its file records ``simulated=true``.

Run-file layout (all under ``/entry/data``; docs/calibration.md, section "noise-sweep run files"):

* axes (Constant): ``read_noise`` (R,), ``write_noise`` (W,) multipliers of the
  device model's defaults; ``model_index`` (M,) and ``model_noise_trained`` (M,) 1/0;
  the model names are the run parameter ``models``, in that order;
* ``world_seeds`` (Stream, one row of (worlds,)): the seed of each simulated world,
  recorded before the first point (the seeds come from the step's generator);
* ``kl_floor``, ``kl_floor_spread`` (Stream, one row of (4,): x, y, mean, pooled): the KL's
  sampling floor, the KL of ``samples`` fresh samples of the task (ring points, or digit
  latents) against the reference, median and standard deviation over draws
  (``protocols.diffusion.scoring.task_floor``), and ``hist2d_floor`` (2,: median, standard
  deviation) the 2-D histogram distance's, recorded with the world seeds;
* one row per finished point, every world its own row (Stream): ``point_model`` (index),
  ``point_read_noise``, ``point_write_noise`` (multipliers), ``point_world`` (index into
  ``world_seeds``), every metric of :data:`~protocols.diffusion.simulated_sweep.METRICS`
  (``kl_mean`` etc.; ``programming_rms_error`` in S, ``worker_seconds`` in s) and
  ``final_states`` (samples, 2) data units;
* grids over worlds (Stream, one row, shape (M, R, W), axes model_index x read_noise x
  write_noise; NaN where no world finished, and off the two lines with ``grid=axes``): the
  median ``<metric>_grid`` and the quartiles ``<metric>_q25_grid``, ``<metric>_q75_grid`` of
  ``kl_mean``, ``kl_pooled``, ``hist2d_distance``, ``radial_std`` (ring), ``accuracy`` (digits),
  ``programming_rms_error`` (S), ``lost_fraction`` and ``kl_mean_software`` (the noise-free numpy
  sampler, same initial states).

Files written before worlds existed have one world per point and no ``point_world``,
``world_seeds`` or quartile grids; ``analysis.diffusion_data.load_noise_sweep`` reads both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from analysis.metrics import grouped_quartiles, nearest_default
from protocols.diffusion.dask_points import check_scheduler, map_points
from protocols.diffusion.simulated_sweep import METRIC_UNITS, METRICS, SweepPoint, run_point, world_seeds
from protocols.engine.datasets import Constant, Spec, Stream
from protocols.engine.protocol import BenchUse, ParameterError, Protocol, Step, param

log = logging.getLogger("rrambench.noise_sweep")

MODELS = ("ring", "ring-plain")
#: Every shipped score network a sweep may compare, by task (one task per sweep: one reference, one floor).
TASK_MODELS = {"ring": ("ring", "ring-plain"), "digits": ("digits", "digits-plain")}
GRIDS = ("kl_mean", "kl_pooled", "hist2d_distance", "radial_std", "accuracy", "programming_rms_error",
         "lost_fraction", "kl_mean_software")
#: Grid dataset suffix of each statistic over worlds (the median keeps the old name ``<metric>_grid``).
STATISTICS = {"median": "_grid", "q25": "_q25_grid", "q75": "_q75_grid"}
GRID_MODES = ("axes", "full")
# s, wall time of one point on one core (200 samples, 1,500 steps: 0.7-1.5 s measured with the
# 2 cores shared; benchmarks/bench_noise_sweep.py)
POINT_TIME = 1.0
#: Read noise breaks the ring only beyond ~64x the default (white read noise averages over the
#: 1,500 loop steps), write noise beyond ~4x: the default axes reach past both.
READ_LEVELS = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
WRITE_LEVELS = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


def settings(read: Sequence[float], write: Sequence[float], mode: str) -> list[tuple[int, int]]:
    """(read index, write index) of every noise setting: all pairs (``full``), or the read
    line at the write pivot then the write line at the read pivot (``axes``, no repeats)."""
    if mode == "full":
        return [(i, j) for i in range(len(read)) for j in range(len(write))]
    i0, j0 = nearest_default(read), nearest_default(write)
    return [(i, j0) for i in range(len(read))] + [(i0, j) for j in range(len(write)) if j != j0]


class NoiseSweep(Protocol):
    """Read and write noise (axes or full grid) x models x simulated worlds, program-and-sample on Dask."""

    name = "noise-sweep"
    signal = "kl_mean_grid"
    bench_use = BenchUse.SIMULATED_ONLY  # opens no bench: every point builds its own simulated world

    @dataclass
    class Params:
        read_noise: list[float] = param(list(READ_LEVELS), limits=(0.0, 1000.0),
                                        help="read-noise multipliers (x device model default)")
        write_noise: list[float] = param(list(WRITE_LEVELS), limits=(0.0, 1000.0),
                                         help="write-noise multipliers (x device model default)")
        grid: str = param("axes", choices=GRID_MODES,
                          help="axes: each noise swept with the other at the level nearest 1x; full: every pair")
        worlds: int = param(8, limits=(1, 1000), help="simulated worlds (device seeds) per setting and model")
        samples: int = param(200, limits=(1, 100_000), help="samples per experiment")
        models: list[str] = param(list(MODELS), choices=tuple(m for ms in TASK_MODELS.values() for m in ms),
                                  help="shipped models compared, of one task: ring, ring-plain or digits, "
                                  "digits-plain")
        n_steps: int = param(1500, limits=(10, 1_000_000), help="analog loop fine steps per sample (1 µs each)")
        settle: float = param(60.0, unit="s", limits=(0.0, 1e7), help="relaxation before sampling")
        scheduler: str = param("local", help="local (LocalCluster), serial (in process) or tcp://HOST:PORT")
        workers: int = param(2, limits=(1, 256), help="worker processes of the local cluster")

    def __init__(self, params=None) -> None:
        super().__init__(params)
        check_scheduler(self.p.scheduler)
        for name in ("read_noise", "write_noise", "models"):
            values = getattr(self.p, name)
            if len(set(values)) != len(values):
                raise ParameterError(f"{name} lists a value twice: {values}")
        tasks = {t for m in self.p.models for t, ms in TASK_MODELS.items() if m in ms}
        if len(tasks) > 1:
            raise ParameterError(f"models: one task per sweep, got {', '.join(self.p.models)} "
                                 "(sweep ring, ring-plain and digits, digits-plain in two runs)")

    @property
    def task(self) -> str:
        """The models' task: "ring" or "digits"."""
        return next(t for t, ms in TASK_MODELS.items() if self.p.models[0] in ms)

    def simulated_parts(self) -> list[str]:
        return ["every grid point: the score network programmed and sampled on a fresh simulated world "
                "(device model defaults times the noise multipliers; world seeds from the run seed)"]

    def cells(self) -> list[tuple[int, int, int]]:
        """(model, read index, write index) of every setting, model-major."""
        return [(m, i, j) for m in range(len(self.p.models))
                for i, j in settings(self.p.read_noise, self.p.write_noise, self.p.grid)]

    def points(self, seed: int) -> list[SweepPoint]:
        """Every experiment: model-major, then setting (:func:`settings`), then world; the
        worlds' seeds are spawned from ``seed``."""
        seeds = world_seeds(seed, self.p.worlds)
        return [SweepPoint(self.p.models[m], self.p.read_noise[i], self.p.write_noise[j], self.p.samples,
                           self.p.n_steps, self.p.settle, s, world=k)
                for m, i, j in self.cells() for k, s in enumerate(seeds)]

    def datasets(self) -> Sequence[Spec]:
        from protocols.diffusion.weights import load_shipped

        m, r, w = len(self.p.models), len(self.p.read_noise), len(self.p.write_noise)
        configs = [load_shipped(name).meta.get("config", {}) for name in self.p.models]
        # models trained before the flag was written: noise injection is a relative weight noise > 0
        trained = [bool(c.get("noise_injection", c.get("noise_std", 0.0) > 0)) for c in configs]
        grid_axes = (".", "model_index", "read_noise", "write_noise")
        statistic_names = {"median": "median", "q25": "25th percentile", "q75": "75th percentile"}
        return [
            Constant("read_noise", units="", data=np.array(self.p.read_noise),
                     long_name="read-noise multiplier (x device model default)"),
            Constant("write_noise", units="", data=np.array(self.p.write_noise),
                     long_name="write-noise multiplier (x device model default)"),
            Constant("model_index", units="", data=np.arange(m), long_name="index into the parameter 'models'"),
            Constant("model_noise_trained", units="", data=np.array(trained, dtype=np.int8),
                     long_name="1: trained with weight-noise injection"),
            Stream("world_seeds", units="", shape=(self.p.worlds,), dtype="i8",
                   long_name="seed of each simulated world (index: point_world)"),
            Stream("kl_floor", units="", shape=(4,), long_name="sampling floor of the KL: median over draws of "
                   f"'samples' fresh samples of the task ({self.task}); columns x, y, mean of x and y, pooled"),
            Stream("kl_floor_spread", units="", shape=(4,),
                   long_name="standard deviation of the floor's draws; columns x, y, mean of x and y, pooled"),
            Stream("hist2d_floor", units="", shape=(2,), long_name="sampling floor of the 2-D histogram distance "
                   "(the same draws): median and standard deviation"),
            Stream("point_model", units="", dtype="i2", long_name="model index of the point"),
            Stream("point_read_noise", units="", long_name="read-noise multiplier of the point"),
            Stream("point_write_noise", units="", long_name="write-noise multiplier of the point"),
            Stream("point_world", units="", dtype="i2", long_name="simulated world of the point (index)"),
            *[Stream(k, units=METRIC_UNITS.get(k, ""), long_name=k.replace("_", " ")) for k in METRICS],
            Stream("final_states", units="", shape=(self.p.samples, 2), dtype="f4",
                   long_name="sampled states (data units)"),
            *[Stream(f"{k}{suffix}", units=METRIC_UNITS.get(k, ""), shape=(m, r, w), axes=grid_axes,
                     long_name=f"{k.replace('_', ' ')}, {statistic_names[stat]} over worlds, "
                               "model x read noise x write noise")
              for k in GRIDS for stat, suffix in STATISTICS.items()],
        ]

    def outcome(self) -> dict:
        """Points run; the best and worst mean KL, pooled KL and 2-D histogram distance over them, each
        with its sampling floor; the median programming error."""
        kl, pooled, h2d = (self.recorded(k) for k in ("kl_mean", "kl_pooled", "hist2d_distance"))
        floor, spread = self.recorded("kl_floor")[-1], self.recorded("kl_floor_spread")[-1]
        h_floor = self.recorded("hist2d_floor")[-1]
        return {"points": (int(kl.size), ""), "worlds": (self.p.worlds, ""),
                "kl_mean_min": (float(np.nanmin(kl)), ""), "kl_mean_max": (float(np.nanmax(kl)), ""),
                "kl_floor": (float(floor[2]), ""), "kl_floor_spread": (float(spread[2]), ""),
                "kl_pooled_min": (float(np.nanmin(pooled)), ""), "kl_pooled_max": (float(np.nanmax(pooled)), ""),
                "kl_pooled_floor": (float(floor[3]), ""), "kl_pooled_floor_spread": (float(spread[3]), ""),
                "hist2d_min": (float(np.nanmin(h2d)), ""), "hist2d_max": (float(np.nanmax(h2d)), ""),
                "hist2d_floor": (float(h_floor[0]), ""), "hist2d_floor_spread": (float(h_floor[1]), ""),
                "programming_rms_error_median": (float(np.nanmedian(self.recorded("programming_rms_error"))),
                                                 METRIC_UNITS.get("programming_rms_error", ""))}

    def plan(self) -> Iterator[Step]:
        n = len(self.cells()) * self.p.worlds
        parallel = 1 if self.p.scheduler == "serial" else self.p.workers
        yield Step(f"run {n} experiments ({self.p.grid}, {self.p.worlds} worlds, {self.p.scheduler})", self.sweep,
                   estimate=n * POINT_TIME * self.p.samples / 200 * self.p.n_steps / 1500 / parallel)

    def sweep(self) -> None:
        """Run every point, record each as it finishes, then the median and quartiles over worlds."""
        from protocols.diffusion.scoring import task_floor

        seed = int(self.rng.integers(2**31))
        self.record("world_seeds", np.array(world_seeds(seed, self.p.worlds), dtype=np.int64))
        floor = task_floor(self.task, self.p.samples)
        self.record("kl_floor", floor.median)
        self.record("kl_floor_spread", floor.spread)
        self.record("hist2d_floor", floor.hist2d_floor)
        points = self.points(seed)
        cells = self.cells()
        shape = (len(self.p.models), len(self.p.read_noise), len(self.p.write_noise))
        where: list[tuple[int, int, int]] = []  # grid cell of each finished point
        values: dict[str, list[float]] = {k: [] for k in GRIDS}

        def record(index: int, result: dict) -> None:
            point, metrics = result["point"], result["metrics"]
            m, r, w = cells[index // self.p.worlds]
            self.record("point_model", m)
            self.record("point_read_noise", point.read_noise)
            self.record("point_write_noise", point.write_noise)
            self.record("point_world", point.world)
            for k in METRICS:
                self.record(k, metrics[k])
            self.record("final_states", result["final"])
            where.append((m, r, w))
            for k in GRIDS:
                values[k].append(metrics[k])
            self.progress(len(where) / len(points))

        run_grid(points, record, scheduler=self.p.scheduler, workers=self.p.workers, check=self.check)
        for k in GRIDS:
            for stat, grid in grouped_quartiles(np.array(values[k]), np.array(where), shape).items():
                self.record(f"{k}{STATISTICS[stat]}", grid)


def run_grid(points: Sequence[SweepPoint], on_result: Callable[[int, dict], None], *, scheduler: str = "local",
             workers: int = 2, check: Callable[[], None] = lambda: None) -> None:
    """Run :func:`run_point` on every point; ``on_result(index, result)`` as each finishes.

    scheduler: "local" (a LocalCluster of ``workers`` single-threaded processes on
    127.0.0.1, closed afterwards), "serial" (in this process, in order) or the address
    of an existing scheduler. check: called between results (raise there to stop; the
    remaining futures are cancelled). The Dask loop is :func:`protocols.diffusion.dask_points.map_points`,
    shared with ``time-scale``.
    """
    log.info("noise sweep: %d points", len(points))
    map_points(run_point, points, on_result, scheduler=scheduler, workers=workers, check=check)
