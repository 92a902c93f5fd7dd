"""sample: closed-loop diffusion sampling on the analog solver, with the software baseline.

The procedure: program the network (unless it is programmed already), run the samples
batch by batch on the board that runs the loop, then score them. The board is our
macro controller or the seed's board (:mod:`~protocols.diffusion.board_sampler`);
through the seed's board (5 s per sample) the network relaxes during the run, so a
touch-up write-verify refreshes it every ``refresh_every`` samples, between batches.
Each batch's initial noise also goes through the numpy sampler (the software
baseline). A conditional model (``digits``, a ``letters`` model) is sampled class by
class; its VAE's deconvolution decoder is write-verified into macros the score network
leaves free (:mod:`~protocols.diffusion.rram_decoder`), and the latents are decoded to
images through the board (EVAL_LAYER) and in software, then classified
(:mod:`~protocols.diffusion.scoring`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any

import numpy as np

from analysis.schema import DATA, SCOPE
from instruments.config import SAMPLER_BOARDS
from protocols.diffusion.analog import resolve_model
from protocols.diffusion.board_sampler import CHANNELS, WAVE_POINTS, Batch, BoardSampler, LoopSettings
from protocols.diffusion.conv_vae import reference_latents
from protocols.diffusion.macro_controller_sampler import MacroControllerSampler
from protocols.diffusion.mapping import MappedNetwork, map_score_net
from protocols.diffusion.network_programming import (
    program_and_record,
    programming_specs,
    refresh_and_record,
    refresh_specs,
)
from protocols.diffusion.placement import placement_from_run, recorded_placement
from protocols.diffusion.program_model import (
    PROGRAM_TIME,
    ProgramModel,
    check_fits_board,
    check_window,
    mapping_config,
    write_verify_config,
)
from protocols.diffusion.rram_decoder import PREFIX, MappedDecoder, map_decoder
from protocols.diffusion.samplers import sample_probability_flow, sample_reverse_sde
from protocols.diffusion.scoring import DigitsScorer, RingScorer
from protocols.diffusion.seed_board_sampler import REFRESH_EVERY, SeedBoardSampler
from protocols.diffusion.weights import TrainedModel
from protocols.engine.bench_shape import BenchShape
from protocols.engine.datasets import Constant, Link, Plot, Spec, Stream, Traces
from protocols.engine.protocol import ParameterError, Protocol, Step, param

#: The sampler of each board that can run the loop, by its name (``board``, ``[sampler] board``).
SAMPLERS: dict[str, type[BoardSampler]] = {s.board: s for s in (MacroControllerSampler, SeedBoardSampler)}
BATCH_TIME = 2.0           # s, typical duration of one batch (estimate only)
REFRESH_TIME = 0.5         # s, typical bench time of one touch-up refresh (estimate only)


class Sample(Protocol):
    """Closed-loop diffusion sampling on the programmed network, with the software baseline."""

    name = "sample"
    signal = "final"

    @dataclass
    class Params(ProgramModel.Params):   # program-model's parameters (it programs the same way), then these
        samples: int = param(1000, limits=(1, 1_000_000), help="samples (per class for a conditional model)")
        batch: int = param(1000, limits=(2, 1000), help="samples per closed-loop run (one scope segment each)")
        sde: bool = param(False, help="reverse SDE with injected noise instead of the probability-flow ODE")
        steps: int = param(1500, limits=(10, 65535), help="solver steps per sample (DAC updates)")
        dt_step: float = param(0.0, unit="s", limits=(0.0, 1e-3), help="time per step (DAC update interval): the "
                               "board's own fine step (0: as the board reports it; another value is refused)")
        rc: float = param(0.0, unit="s", limits=(0.0, 1.0), help="integrator time constant RC: the board's own "
                          "(0: as the board reports it; another value is refused)")
        software_steps: int = param(0, limits=(0, 100_000), help="baseline Euler steps (0: the model's own)")
        program: bool = param(True, help="program the network first (false: it is already programmed)")
        placement_run: str = param("", help="program-model run file whose placement to use when program=false")
        waveforms: int = param(20, limits=(0, 1000),
                               help="samples of the first batch (of each class) whose traces are stored")
        decoder_seed: int = param(0, limits=(0, 2**31 - 1),
                                  help="seed of the read noise of the decoder on the bench (conditional models)")
        decoder_macro: int = param(-1, limits=(-1, 255), help="first macro the VAE decoder may take (conditional "
                                   "models; -1: any macro the score network leaves free)")
        shared_noise: bool = param(False, help="every class starts from the same initial noise, sample by sample "
                                   "(Fig. 4f; conditional models on the macro controller)")
        board: str = param("", choices=("", *SAMPLER_BOARDS), help="board running the loop: macro_controller "
                           "(ours) or seed_board (the seed's, one sample per 5 s; docs/seed-board.md); empty: the "
                           "bench config's")
        refresh_every: int = param(-1, unit="samples", limits=(-1, 1_000_000),
                                   help="samples between touch-up write-verifies of the network during the run "
                                   f"(0: never; -1: the board's default: seed_board {REFRESH_EVERY}, "
                                   "macro_controller 0)")

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        check_window(self.p)
        self._placed: MappedNetwork | None = None
        self._decoder: MappedDecoder | None = None
        self._shape = BenchShape()  # the bench validate checked against (the board as built before)
        self._time: tuple[float, float] | None = None  # (rc, dt_step) s the loop runs with (sampler)

    # -- the procedure ----------------------------------------------------------------------
    def plan(self) -> Iterator[Step]:
        if self.p.program:
            yield Step("write-verify the network and read it back", self.program, estimate=PROGRAM_TIME)
        if self.conditional:
            yield Step("write-verify the VAE decoder and read it back", self.program_decoder, estimate=PROGRAM_TIME)
        for batch in self.batches():
            if batch.refresh_before:   # between runs of the board: a run cannot pause for a write-verify
                yield Step(f"refresh the network after {batch.samples_before} samples (touch-up write-verify)",
                           partial(self.refresh, batch.samples_before), estimate=REFRESH_TIME)
            label = "" if batch.condition is None else f" class {batch.condition}"
            yield Step(f"batch {batch.index}{label}: {batch.size} samples", partial(self.run_batch, batch),
                       estimate=BATCH_TIME)
        yield Step(self.scorer.name, self.score, estimate=self.scorer.estimate)

    # -- steps ------------------------------------------------------------------------------
    def program(self) -> None:
        """Write-verify the network; later batches use the placement it ended with (recorded)."""
        self._placed = program_and_record(self, self.mapped, write_verify_config(self.p), self.p.reads).mapped

    def program_decoder(self) -> None:
        """Write-verify the VAE decoder's tiles into the macros the placed network leaves free."""
        mapped = self.decoder_mapping(self.placed)
        placed = program_and_record(self, mapped.network, write_verify_config(self.p), self.p.reads,
                                    prefix=PREFIX).mapped
        self._decoder = mapped.placed(placed)

    def refresh(self, samples_done: int) -> None:
        """Touch-up write-verify of the placed network against its programming targets."""
        refresh_and_record(self, self.placed, write_verify_config(self.p), self.p.reads, samples_done)

    def run_batch(self, batch: Batch) -> None:
        """One closed-loop run on the sampling board, and the software baseline from the same
        initial noise."""
        self.sampler.load(self, self.placed)
        initial, final = self.sampler.run_batch(self, self.placed, batch, self.shared_initial(batch))
        software = self.software_baseline(initial, batch.condition)
        self.record_rows("initial", initial)
        self.record_rows("final", final)
        self.record_rows("software", software)
        self.record_rows("final_x", final[:, 0])
        self.record_rows("final_y", final[:, 1])
        self.record_rows("final_radius", np.hypot(final[:, 0], final[:, 1]))
        if self.conditional:
            self.record_rows("condition", np.full(batch.size, batch.condition))
            if batch.waveforms:
                self.record_rows("waveform_condition", np.full(batch.waveforms, batch.condition))
        self.progress(1.0)

    def shared_initial(self, batch: Batch) -> np.ndarray | None:
        """With ``shared_noise``, a later class's batch starts from the initial noise class 0
        drew for the same samples (read back from the run, so a resumed run shares it too)."""
        if not self.p.shared_noise or not batch.condition:
            return None
        start = batch.samples_before - batch.condition * self.p.samples
        return self.recorded("initial")[start : start + batch.size]

    def score(self) -> None:
        """Score every sample recorded in the run (a resumed run's earlier batches too)."""
        self.scorer.score(self)

    def outcome(self) -> dict:
        """Samples taken and the scorer's key metrics (ring: KL, radius, MMD; digits: accuracy)."""
        return {"samples": (len(self.recorded("final")), ""), **self.scorer.outcome(self)}

    def software_baseline(self, x0: np.ndarray, condition: int | None) -> np.ndarray:
        """The numpy sampler of the model from the same initial noise (the reverse SDE draws
        its noise from the step's generator, after the board's draws)."""
        m = self.model
        steps = self.p.software_steps or m.sampling.n_steps
        labels = None if condition is None else np.full(len(x0), condition)
        if self.p.sde:
            return sample_reverse_sde(m.net, m.sampling_sde, x0, self.rng, steps, m.sampling.t_end,
                                      cond=labels).final
        return sample_probability_flow(m.net, m.sampling_sde, x0, steps, m.sampling.t_end, cond=labels).final

    # -- what the run is made of --------------------------------------------------------------
    @property
    def sampler_board(self) -> str:
        """"macro_controller" or "seed_board": the ``board`` parameter, else the bench config's choice."""
        if self.p.board:
            return self.p.board
        return self.bench.config.sampler_board if self.bench is not None else self._shape.sampler_board

    @cached_property
    def sampler(self) -> BoardSampler:
        """The sampler of the board running the loop, on the board's time base (its RC and fine
        step, as it reports them). Built in ``validate``, where it refuses what its board cannot
        run (an ``rc`` or ``dt_step`` that is not the board's too), before anything is sent."""
        board = SAMPLERS[self.sampler_board]
        rc, dt_step = self._time = board.time_base(self.p.rc, self.p.dt_step, self._shape)
        return board(self.mapped, self.model, LoopSettings(steps=self.p.steps, dt_step=dt_step, rc=rc, sde=self.p.sde))

    def parameters(self) -> dict[str, Any]:
        """The parameters as run: ``rc`` and ``dt_step`` the board's once validated (0 for the
        seed board, which takes neither)."""
        values = super().parameters()
        if self._time is not None:
            values["rc"], values["dt_step"] = self._time
        return values

    @cached_property
    def scorer(self) -> RingScorer | DigitsScorer:
        """The metrics of the model's task: the ring's, or decoded digits classified per condition."""
        if self.conditional:
            return DigitsScorer(self.model, self.p.model, lambda: self.placed_decoder, self.p.decoder_seed)
        return RingScorer()

    @cached_property
    def model(self) -> TrainedModel:
        return resolve_model(self.p.model)

    @property
    def conditional(self) -> bool:
        return self.model.net.conditional

    @cached_property
    def mapped(self) -> MappedNetwork:
        """The mapping; at the hidden scale the sampling board imposes, if it does (the seed
        board's firmware embeds at a fixed scale)."""
        return map_score_net(self.model, mapping_config(self.p, h_scale=SAMPLERS[self.sampler_board].h_scale))

    @property
    def placed(self) -> MappedNetwork:
        """The network as programmed in this run (its recorded ``layer_region``, so a resumed
        run keeps a placement moved off stuck cells before the interruption), or as a
        program-model run left it, or as mapped."""
        if self._placed is None:
            if self.p.program:
                self._placed = recorded_placement(self.mapped, self.recorded("layer_region"),
                                                  "this run's layer_region")
            else:
                self._placed = self._placement_given()
        return self._placed

    def decoder_mapping(self, network: MappedNetwork) -> MappedDecoder:
        """The VAE decoder mapped onto the macros the score network placed as ``network``
        leaves free (from ``decoder_macro`` on), on the board validate checked against."""
        start = max(0, self.p.decoder_macro)
        taken = {lay.macro for lay in network.layers}
        macros = [m for m in range(start, self._shape.n_macros) if m not in taken]
        vae = self.scorer.vae()
        return map_decoder(vae, mapping_config(self.p), self._shape.geometry, macros, reference_latents(vae))

    @property
    def placed_decoder(self) -> MappedDecoder:
        """The decoder as programmed in this run (its recorded ``decoder_layer_region`` after a resume)."""
        if self._decoder is None:
            mapped = self.decoder_mapping(self.placed)
            self._decoder = mapped.placed(recorded_placement(
                mapped.network, self.recorded(PREFIX + "layer_region"), "this run's decoder_layer_region"))
        return self._decoder

    def _placement_given(self) -> MappedNetwork:
        """With program=false: the placement of the ``placement_run`` file, else the mapping's."""
        if self.p.placement_run:
            return placement_from_run(self.p.placement_run, self.p.model, self.mapped)
        return self.mapped

    @property
    def refresh_interval(self) -> int:
        """Samples between refreshes (0: never): ``refresh_every``, or the board's default."""
        if self.p.refresh_every >= 0:
            return self.p.refresh_every
        return SAMPLERS[self.sampler_board].refresh_every

    def batches(self) -> list[Batch]:
        """Every closed-loop run, in order: class by class, ``batch`` samples each (the last
        the rest), split where a refresh falls due."""
        classes = list(range(self.model.net.n_classes)) if self.conditional else [None]
        full, rest = divmod(self.p.samples, self.p.batch)
        sizes = [self.p.batch] * full + ([rest] if rest else [])
        every, done, out = self.refresh_interval, 0, []
        for index, (condition, n) in enumerate((c, n) for c in classes for n in sizes):
            left = n
            # each class's first batch stores its traces (Fig. 4e: every class's time evolution)
            first_of_class = index % len(sizes) == 0
            class_start = index // len(sizes) * self.p.samples
            while left:
                size = min(left, every - done % every if every else left)
                waveforms = max(0, min(size, self.p.waveforms - (done - class_start))) if first_of_class else 0
                refresh = bool(every) and done > 0 and done % every == 0
                out.append(Batch(index, condition, size, waveforms, refresh, done))
                done, left = done + size, left - size
        return out

    # -- declared data ----------------------------------------------------------------------
    def validate(self, shape: BenchShape) -> None:
        """placement_run only with program=false, and a readable run of this model; the board
        exists and can run the loop (the model, the mapping's scales, the DAC streams, ``rc``
        and ``dt_step`` the board's own); the network fits the board."""
        if self.p.program and self.p.placement_run:
            raise ParameterError("placement_run applies only with program=false")
        if shape != self._shape:  # another bench than the last check's: its board decides again
            self.__dict__.pop("sampler", None)
            self._time = None
        self._shape = shape
        if self.p.shared_noise and not self.conditional:
            raise ParameterError("shared_noise applies to a conditional model (one initial noise, every class)")
        if self.p.shared_noise and self.sampler_board == "seed_board":
            raise ParameterError("shared_noise: the seed board draws its own initial noise")
        if self.sampler_board == "seed_board" and not shape.seed_board:
            raise ParameterError("board=seed_board: this bench has no seed board (set [resources].seed_board)")
        self.sampler.specs()
        if self.p.program:
            check_fits_board(shape, self.mapped, self.p.first_macro)
        else:
            self._placed = self._placement_given()
        if self.conditional:
            try:
                self.decoder_mapping(self._placed or self.mapped)
            except ValueError as exc:
                raise ParameterError(f"model={self.p.model!r}, decoder_macro={self.p.decoder_macro}: {exc}") from None

    def datasets(self) -> Sequence[Spec]:
        sampler = self.sampler
        specs: list[Spec] = []
        if self.p.program:
            specs += programming_specs(self.mapped)
        batches = self.batches()
        refreshes = any(b.refresh_before for b in batches)
        if refreshes:
            specs += refresh_specs(self.mapped, with_pulse_table=not self.p.program)
        if self.conditional:
            decoder = self.decoder_mapping(self.mapped)
            specs += programming_specs(decoder.network, prefix=PREFIX, pulses=not (self.p.program or refreshes))
            specs.append(Constant(PREFIX + "layer_scales", units="V", data=np.array(decoder.scales),
                                  long_name="V per unit at the input of each decoder layer and at its output"))
        specs += [
            Stream("final", units="", shape=(2,), long_name="analog samples at the end of the loop, data units"),
            Stream("software", units="", shape=(2,), long_name="software baseline from the same initial noise"),
            Stream("initial", units="", shape=(2,), long_name="initial noise, data units"),
            # The analog samples' coordinates one per row: the default plot is their 2-D scatter.
            Stream("final_x", units="", long_name="first coordinate of each analog sample, data units"),
            Stream("final_y", units="", long_name="second coordinate of each analog sample, data units"),
            Stream("final_radius", units="", long_name="distance of each analog sample from the origin, data units"),
            Plot("final_radius", ("final_x", "final_y"), title="analog samples (colour: radius)"),
            *sampler.specs(),
        ]
        if self.conditional:
            specs.append(Stream("condition", units="", dtype="i2", long_name="class index of each sample"))
        waveforms = any(b.waveforms for b in batches)
        if waveforms:
            specs += [Traces(name, points=WAVE_POINTS, dtype="u2", channel=f"CHAN{ch}")
                      for name, ch in CHANNELS.items()]
            if self.conditional:
                specs.append(Stream("waveform_condition", units="", dtype="i2",
                                    long_name="class index of each stored scope segment, in order"))
        return specs + self.scorer.specs() + self.sample_links(waveforms)

    def sample_links(self, waveforms: bool) -> list[Link]:
        """The layout of the sample task (/entry/samples, /entry/waveforms) as links to the data."""
        names = ["final", "software"] + (["condition"] if self.conditional else [])
        links = [Link(f"/entry/samples/{n}", f"{DATA}/{n}") for n in names]
        if waveforms:
            links += [Link(f"/entry/waveforms/{n}", f"{SCOPE}/{n}") for n in CHANNELS]
        return links
