"""sample: closed-loop diffusion sampling on the analog solver, with the software baseline.

For each batch the board loads the initial conditions, runs the loop (probability-flow
ODE, or reverse SDE with injected noise) and fires the scope, which keeps one segment
per sample of the integrator channels and one time-embedding channel. The same
initial noise goes through the numpy sampler (the software baseline). The
conditional ``digits`` model is sampled class by class; its latents are decoded to
images in software and through the decoder on simulated RRAM, and classified.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, partial
from typing import Any

import numpy as np

from protocols.diffusion.analog import board_load, board_sample, initial_noise
from protocols.diffusion.loop_streams import LoopStreams, loop_streams
from protocols.diffusion.mapping import MappedNetwork, MappingConfig, map_score_net
from protocols.diffusion.network_programming import program_and_record, refresh_and_record, refresh_specs
from protocols.diffusion.program_model import ProgramModel
from protocols.diffusion.samplers import sample_probability_flow, sample_reverse_sde
from protocols.diffusion.scoring import SampleScoring
from protocols.diffusion.seed_board_sampler import BOARDS, H_SCALE, REFRESH_EVERY, SAMPLE_TIME, SeedBoardSampling
from protocols.engine.datasets import DATA, SCOPE, Constant, Link, Spec, Stream, Traces
from protocols.engine.protocol import Step, param

log = logging.getLogger(__name__)

#: Scope channels: integrators x0, x1 on 1 and 2, the time-embedding probe on 3.
CHANNELS = {"integrator_0": 1, "integrator_1": 2, "embedding": 3}
WAVE_POINTS = 250          # points per stored segment (a divisor of the scope record, 2000)
SCOPE_TIMEOUT = 30.0       # s, wall time to wait for the scope's trigger
BATCH_TIME = 2.0           # s, typical duration of one batch (estimate only)
REFRESH_TIME = 0.5         # s, typical bench time of one touch-up refresh (estimate only)


class Sample(ProgramModel, SampleScoring, SeedBoardSampling):
    """Closed-loop diffusion sampling on the programmed network, with the software baseline."""

    name = "sample"
    signal = "final"
    wave_points, scope_channels = WAVE_POINTS, CHANNELS

    @dataclass
    class Params(ProgramModel.Params):
        samples: int = param(1000, limits=(1, 1_000_000), help="samples (per class for a conditional model)")
        batch: int = param(1000, limits=(2, 1000), help="samples per closed-loop run (one scope segment each)")
        sde: bool = param(False, help="reverse SDE with injected noise instead of the probability-flow ODE")
        steps: int = param(1500, limits=(10, 65535), help="solver steps per sample (DAC updates)")
        dt_step: float = param(1e-6, unit="s", limits=(1e-9, 1e-3), help="time per step (DAC update interval)")
        rc: float = param(1e-3, unit="s", limits=(1e-9, 1.0), help="integrator time constant RC of the board")
        software_steps: int = param(0, limits=(0, 100_000), help="baseline Euler steps (0: the model's own)")
        program: bool = param(True, help="program the network first (false: it is already programmed)")
        placement_run: str = param("", help="program-model run file whose placement to use when program=false")
        waveforms: int = param(20, limits=(0, 1000), help="samples of the first batch whose traces are stored")
        decoder_seed: int = param(0, limits=(0, 2**31 - 1), help="seed of the simulated RRAM decoder (digits)")
        board: str = param("", choices=("", *BOARDS), help="board running the loop: macro_controller (ours) or "
                           "seed_board (the seed's, one sample per 5 s; docs/seed-board.md); empty: the bench config's")
        refresh_every: int = param(-1, unit="samples", limits=(-1, 1_000_000),
                                   help="samples between touch-up write-verifies of the network during the run "
                                   f"(0: never; -1: the board's default: seed_board {REFRESH_EVERY}, "
                                   "macro_controller 0)")

    @cached_property
    def mapped(self) -> MappedNetwork:
        """The mapping; through the seed's board, at the hidden scale its firmware embeds with."""
        if self.sampler_board != "seed_board":
            return ProgramModel.mapped.func(self)
        cfg = MappingConfig(g_min=self.p.g_min, g_max=self.p.g_max, fill=self.p.fill, v_bias=self.p.v_bias,
                            x_scale=self.p.x_scale, first_macro=self.p.first_macro, h_scale=H_SCALE)
        return map_score_net(self.model, cfg)

    @cached_property
    def model(self) -> Any:
        from protocols.diffusion.analog import resolve_model

        return resolve_model(self.p.model)

    @property
    def conditional(self) -> bool:
        return self.model.net.conditional

    @property
    def refresh_interval(self) -> int:
        """Samples between refreshes (0: never): ``refresh_every``, or the board's default."""
        if self.p.refresh_every >= 0:
            return self.p.refresh_every
        return REFRESH_EVERY if self.sampler_board == "seed_board" else 0

    def runs(self) -> list[tuple[int, int | None, int, int, bool]]:
        """(batch index, class or None, size, waveforms to store, refresh before it) of every
        closed-loop run: the batches, split where a refresh falls due."""
        every, done, out = self.refresh_interval, 0, []
        for k, (cond, n) in enumerate(self.batches()):
            left = n
            while left:
                due = every - done % every if every else left
                size = min(left, due)
                waves = max(0, min(size, self.p.waveforms - done)) if k == 0 else 0
                out.append((k, cond, size, waves, bool(every) and done > 0 and done % every == 0))
                done, left = done + size, left - size
        return out

    def batches(self) -> list[tuple[int | None, int]]:
        """(class or None, size) of every closed-loop run, class by class."""
        classes = list(range(self.model.net.n_classes)) if self.conditional else [None]
        full, rest = divmod(self.p.samples, self.p.batch)
        sizes = [self.p.batch] * full + ([rest] if rest else [])
        return [(c, n) for c in classes for n in sizes]

    # -- declared data ----------------------------------------------------------------
    def datasets(self) -> Sequence[Spec]:
        if self.p.program and self.p.placement_run:
            raise ValueError("placement_run applies only with program=false")
        seed_board = self.seed_board_specs()   # the board choice; the seed board's limits are checked here
        specs: list[Spec] = list(super().datasets()) if self.p.program else []
        if self.refresh_interval and any(r[4] for r in self.runs()):
            specs += refresh_specs(self.mapped, with_pulse_table=not self.p.program)
        if not self.p.program:   # a bad placement_run is refused here, before the run starts
            self._placed = self._placement_from_run() if self.p.placement_run else self.mapped
        specs += [
            Stream("final", units="", shape=(2,), long_name="analog samples at the end of the loop, data units"),
            Stream("software", units="", shape=(2,), long_name="software baseline from the same initial noise"),
            Stream("initial", units="", shape=(2,), long_name="initial noise, data units"),
            Constant("duration", units="s", data=np.array(
                SAMPLE_TIME if self.sampler_board == "seed_board" else self.streams_for(None).duration),
                     long_name="physical duration of one closed-loop sample"),
            *seed_board,
        ]
        if self.conditional:
            specs.append(Stream("condition", units="", dtype="i2", long_name="class index of each sample"))
        waves = min(self.p.waveforms, self.batches()[0][1])
        if waves:
            specs += [Traces(name, points=WAVE_POINTS, dtype="u2", channel=f"CHAN{ch}")
                      for name, ch in CHANNELS.items()]
        return specs + self.metric_specs() + self.sample_links(waves > 0)

    def sample_links(self, waveforms: bool) -> list[Link]:
        """The layout of the sample task (/entry/samples, /entry/waveforms) as links to the data."""
        names = ["final", "software"] + (["condition"] if self.conditional else [])
        links = [Link(f"/entry/samples/{n}", f"{DATA}/{n}") for n in names]
        if waveforms:
            links += [Link(f"/entry/waveforms/{n}", f"{SCOPE}/{n}") for n in CHANNELS]
        return links

    # -- plan ---------------------------------------------------------------------------
    def plan(self) -> Iterator[Step]:
        if self.p.program:
            yield Step("write-verify the network and read it back", self.program, estimate=5.0)
        done = 0
        for k, cond, n, waves, refresh in self.runs():
            if refresh:
                yield Step(f"refresh the network after {done} samples (touch-up write-verify)",
                           partial(self.refresh, done), estimate=REFRESH_TIME)
            label = "" if cond is None else f" class {cond}"
            yield Step(f"batch {k}{label}: {n} samples", partial(self.run_batch, k, cond, n, waves),
                       estimate=BATCH_TIME)
            done += n
        yield from self.scoring_steps()

    # -- steps --------------------------------------------------------------------------
    def program(self) -> None:
        """Write-verify the network; later batches use the placement it ended with (recorded)."""
        self._placed = program_and_record(self, self.mapped, self.write_verify_config(), self.p.reads).mapped

    def refresh(self, samples_done: int) -> None:
        """Touch-up write-verify of the placed network against its programming targets."""
        refresh_and_record(self, self.placed, self.write_verify_config(), self.p.reads, samples_done)

    @property
    def placed(self) -> MappedNetwork:
        """The network as programmed in this run (its recorded ``layer_region``, so a resumed
        run keeps a placement moved off stuck cells before the interruption), or as a
        program-model run left it, or as mapped."""
        if getattr(self, "_placed", None) is None:
            if self.p.program:
                self._placed = self._placement(self.recorded("layer_region"), "this run's layer_region")
            else:
                self._placed = self._placement_from_run() if self.p.placement_run else self.mapped
        return self._placed

    def _placement_from_run(self) -> MappedNetwork:
        """The mapping with the layer regions a program-model run file recorded."""
        from analysis.run_reader import RunFileError, open_run

        try:
            run = open_run(self.p.placement_run)
            regions = run.read("layer_region")
        except (RunFileError, KeyError, OSError) as exc:
            raise ValueError(f"placement_run: cannot read a layer placement from {self.p.placement_run!r} "
                             f"({exc})") from None
        if run.parameters.get("model") != self.p.model or len(regions) == 0:
            raise ValueError(f"placement_run: {self.p.placement_run!r} did not program model {self.p.model!r}")
        return self._placement(regions, "placement_run")

    def _placement(self, regions: np.ndarray, source: str) -> MappedNetwork:
        """The mapping moved to the last recorded ``layer_region`` rows (macro, row0, col0, sizes)."""
        if len(regions) == 0:
            raise ValueError(f"{source}: no layer placement recorded")
        layers = []
        for lay, reg in zip(self.mapped.layers, regions[-1], strict=True):
            if (lay.n_in, lay.n_out, lay.bias_rows) != tuple(int(v) for v in reg[3:]):
                raise ValueError(f"{source}: layer sizes {reg[3:].tolist()} differ from this mapping's")
            layers.append(replace(lay, macro=int(reg[0]), row0=int(reg[1]), col0=int(reg[2])))
        return replace(self.mapped, layers=tuple(layers))

    def streams_for(self, cond: int | None) -> LoopStreams:
        return loop_streams(self.mapped, self.model, n_steps=self.p.steps, dt_step=self.p.dt_step, rc=self.p.rc,
                            sde=self.p.sde, cond=cond)

    def run_batch(self, index: int, cond: int | None, n: int, waves: int) -> None:
        """One closed-loop run of n samples, the waveforms of its first ``waves``, and the
        software baseline."""
        board, scope = self.bench.macro_controller, self.bench.scope
        rng = self.rng
        if self.sampler_board == "seed_board":   # the board draws the initial noise: read on the scope
            x0, final = self.run_seed_board_batch(index, n, waves)
            return self._finish_batch(x0, final, cond, n, rng)
        x0 = initial_noise(rng, n, self.model.net.dim, limit=self.mapped.config.v_dac / self.mapped.x_scale)
        streams = self.streams_for(cond)
        board_load(board, self.placed)
        arm = partial(self._arm_scope, streams, n) if waves else None
        final = board_sample(board, self.placed, streams, x0, sde=self.p.sde,
                             seed=int(rng.integers(2**32)), before_run=arm)
        self.check()
        if waves:
            self._store_waveforms(scope, waves)
        self._finish_batch(x0, final, cond, n, rng)

    def _finish_batch(self, x0: np.ndarray, final: np.ndarray, cond: int | None, n: int,
                      rng: np.random.Generator) -> None:
        """The software baseline from the same initial noise; records and collects the batch."""
        software = self.software_baseline(x0, cond, rng)
        self.record_rows("initial", x0)
        self.record_rows("final", final)
        self.record_rows("software", software)
        if self.conditional:
            self.record_rows("condition", np.full(n, cond))
        self.progress(1.0)

    def software_baseline(self, x0: np.ndarray, cond: int | None, rng: np.random.Generator) -> np.ndarray:
        """The numpy sampler of the model from the same initial noise."""
        m = self.model
        steps = self.p.software_steps or m.sampling.n_steps
        labels = None if cond is None else np.full(len(x0), cond)
        if self.p.sde:
            return sample_reverse_sde(m.net, m.sampling_sde, x0, rng, steps, m.sampling.t_end, cond=labels).final
        return sample_probability_flow(m.net, m.sampling_sde, x0, steps, m.sampling.t_end, cond=labels).final

    def _arm_scope(self, streams: LoopStreams, n: int) -> None:
        """Integrator and embedding channels, the run on screen, segmented memory, armed."""
        scope = self.bench.scope
        v_x = self.placed.to_volts(np.array([5.0]))[0]           # the DAC range of the integrators
        for name, ch in CHANNELS.items():
            top = 1.1 * self.mapped.h_scale if name == "embedding" else v_x
            scope.configure_channel(ch, scale=top / 4)
        scope.set_timebase(streams.duration / 10, streams.duration / 2)
        scope.set_edge_trigger("EXT", 0.5)
        scope.set_segmented(max(2, n))
        scope.single()

    def _store_waveforms(self, scope: Any, count: int) -> None:
        scope.wait_triggered(timeout=SCOPE_TIMEOUT)
        for name, ch in CHANNELS.items():
            for wave in scope.fetch_segments(ch, count, fmt="WORD", points=WAVE_POINTS):
                p = wave.preamble
                self.record_trace(name, wave.codes, {
                    "x_increment": p.xincrement, "x_origin": p.xorigin, "x_reference": p.xreference,
                    "y_increment": p.yincrement, "y_origin": p.yorigin, "y_reference": p.yreference})

