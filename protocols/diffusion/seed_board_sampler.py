"""The seed's sampling board as the closed loop of ``sample`` (``docs/seed-board.md``).

The firmware runs one sample per ``Go``: it starts the integrators from its noise DACs
(there is no initial-condition command), integrates the probability-flow ODE with its
own time base (5 ms ticks, t from 0 to 1.2) and cannot take a second ``Go`` for 5 s.
The host therefore, per sample: ``go()`` (lock-out kept, run confirmed on the scope),
then reads the two integrator channels on the scope at the run start (the initial
noise, fed to the software baseline) and at ``SAMPLE_TIME`` (diffusion time 0).

Host settings, once per batch: bias 0.1 V, task type 4 (fixed 0.05 V per embedding
unit, the scale the mapping must give its hidden layers), noise on (it charges the
start value), offsets 0 V, coefficient ``A x_scale / (4 y_scale)``, noise scale
``2 x_scale`` (start spread N(0, 1) in data units). All on the firmware's 0.01 grid.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from instruments.errors import InstrumentError
from instruments.seed_board import RUN_DURATION, SAMPLE_TIME
from protocols.diffusion.board_sampler import CHANNELS, WAVE_POINTS, Batch, LoopSettings, board_specs, record_waveform
from protocols.diffusion.mapping import MappedNetwork
from protocols.engine.datasets import Constant, Spec
from protocols.engine.params import ParameterError

if TYPE_CHECKING:
    from protocols.diffusion.weights import TrainedModel
    from protocols.engine.bench_shape import BenchShape
    from protocols.engine.protocol import Protocol as Run

log = logging.getLogger(__name__)

TASK = 4            # unconditional type with a fixed embedding scale
BIAS = 0.1          # V on the bias rows (D1)
H_SCALE = 0.05      # V per embedding unit of type 4: the mapping's h_scale must be this
GRID = 0.01         # the firmware's step of the coefficient and the noise scale
SCOPE_SPAN = 1.25   # s after the trigger shown on screen (the run lasts RUN_DURATION)
INTEGRATORS = (1, 2)  # scope channels of the two integrators
WORD_TOP = 65535    # WORD code of a point clipped at the top of the screen (1: bottom, 0: hole)
REFRESH_EVERY = 25  # samples between touch-up refreshes of the network on this board (~125 s of bench time)


@dataclass(frozen=True)
class SeedBoardSettings:
    """What the host sends before a batch: task type, bias (V), score coefficient and
    noise scale (dimensionless, on the 0.01 grid)."""

    task: int
    bias: float
    coefficient: float
    noise_scale: float

    def as_array(self) -> np.ndarray:
        return np.array([self.task, self.bias, self.coefficient, self.noise_scale])


def seed_board_settings(mapped: MappedNetwork, model: Any) -> SeedBoardSettings:
    """Settings that make the board integrate ``model``'s probability-flow ODE.

    Refuses (ValueError naming the cause) a conditional model, a mapping whose hidden
    scale or bias is not what the firmware's type 4 latches, and a coefficient or noise
    scale that the 0.01 grid would shift by more than 1 %.
    """
    if model.net.conditional:
        raise ValueError("board=seed_board: this protocol drives the seed board's unconditional type 4 only "
                         "(conditional types embed at 5 x bias, which our mappings do not use)")
    if not math.isclose(mapped.h_scale, H_SCALE, rel_tol=1e-9):
        raise ValueError(f"board=seed_board: the mapping's h_scale is {mapped.h_scale:.4g} V, the firmware's type "
                         f"{TASK} embeds at {H_SCALE} V per unit")
    if not math.isclose(mapped.v_bias, BIAS, rel_tol=1e-9):
        raise ValueError(f"board=seed_board: v_bias must be {BIAS} V (the firmware's D1), got {mapped.v_bias} V")
    wanted = {"coefficient": model.net.amplitude * mapped.x_scale / (4.0 * mapped.y_scale),
              "noise scale": 2.0 * mapped.x_scale}
    got = {name: round(value / GRID) * GRID for name, value in wanted.items()}
    for name, value in wanted.items():
        if abs(got[name] - value) > 0.01 * value:
            raise ValueError(f"board=seed_board: {name} {value:.4g} is more than 1 % off the firmware's "
                             f"0.01 grid (choose another x_scale)")
    return SeedBoardSettings(TASK, BIAS, round(got["coefficient"], 2), round(got["noise scale"], 2))


def configure_board(board: Any, s: SeedBoardSettings) -> None:
    """Bias, init (noise on: it charges the start value), offsets 0 V, coefficient, noise scale."""
    board.set_bias(s.bias)
    board.init(s.task, True)
    board.set_offsets(0.0, 0.0)
    board.set_coefficient(s.coefficient)
    board.set_noise_scale(s.noise_scale)


def configure_scope(scope: Any, v_full: float, embedding_full: float) -> None:
    """Real-time acquisition of one run: 0 .. SCOPE_SPAN s after the board's trigger.

    v_full: integrator volts at the top of the screen (V, > 0); embedding_full: the
    same for the time-embedding channel 3.
    """
    scope.set_realtime()
    for ch in INTEGRATORS:
        scope.configure_channel(ch, scale=v_full / 4)
    scope.configure_channel(3, scale=embedding_full / 4)
    scope.set_timebase(SCOPE_SPAN / 10, SCOPE_SPAN / 2)
    scope.set_edge_trigger("EXT", 0.5)


def read_run(waves: dict[int, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Integrator voltages (2,) V at the run start and at SAMPLE_TIME, interpolated on
    the scope's grid; an off-screen or missing point is an InstrumentError."""
    values = []
    for when in (0.0, SAMPLE_TIME):
        row = []
        for ch in INTEGRATORS:
            wave = waves[ch]
            t, volts = wave.time, wave.volts
            k = int(np.searchsorted(t, when))
            near = slice(max(k - 1, 0), k + 1)
            codes = wave.codes[near]
            if not t[0] <= when <= t[-1] or np.any((codes <= 1) | (codes >= WORD_TOP)):
                raise InstrumentError("scope", f"channel {ch} at {when:g} s is off screen or missing: "
                                      "cannot read the seed board's sample")
            row.append(float(np.interp(when, t, volts)))
        values.append(row)
    return np.array(values[0]), np.array(values[1])


class SeedBoardSampler:
    """The seed's board: one sample per ``Go`` from a start value it draws itself; both
    ends of every run read on the scope."""

    board = "seed_board"
    h_scale = H_SCALE              # the firmware's type 4 embeds at this scale: the mapping must too
    refresh_every = REFRESH_EVERY  # 5 s per sample: the network relaxes during a batch

    def __init__(self, mapped: MappedNetwork, model: TrainedModel, loop: LoopSettings) -> None:
        if loop.sde:
            raise ValueError("board=seed_board: the seed board integrates the probability-flow ODE only (sde=false)")
        self.settings = seed_board_settings(mapped, model)

    @staticmethod
    def time_base(rc: float, dt_step: float, shape: BenchShape) -> tuple[float, float]:
        """None of ours: the firmware keeps its own fixed time base, so the parameters must
        stay 0; returns (0, 0)."""
        for name, given in (("rc", rc), ("dt_step", dt_step)):
            if given:
                raise ParameterError(f"{name}={given:g} s: board=seed_board runs on its firmware's own fixed time "
                                     f"base (5 ms ticks, t from 0 to 1.2); leave {name} at 0")
        return 0.0, 0.0

    def specs(self) -> list[Spec]:
        return board_specs(self.board, SAMPLE_TIME) + [
            Constant("seed_board_settings", units="", data=self.settings.as_array(),
                     long_name="seed board: task type, bias (V), coefficient, noise scale")]

    def load(self, run: Run, placed: MappedNetwork) -> None:
        """The layer regions on our controller (it wires the macros the seed board drives),
        the board's settings, the scope on one run."""
        bench = run.bench
        bench.macro_controller.load_mapping(list(placed.layers), placed.v_bias)
        configure_board(bench.seed_board, self.settings)
        configure_scope(bench.scope, placed.to_volts(np.array([5.0]))[0], 1.1 * placed.h_scale)

    def run_batch(self, run: Run, placed: MappedNetwork, batch: Batch,
                  x0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One ``Go`` per sample (the board keeps its lock-out); start and end read on the scope.
        The board draws its own initial noise: ``x0`` must be None."""
        if x0 is not None:
            raise ValueError("the seed board draws its own initial noise; it cannot start from given states")
        board, scope, n = run.bench.seed_board, run.bench.scope, batch.size
        start, end = np.empty((n, 2)), np.empty((n, 2))
        for k in range(n):
            run.check()
            board.go()
            stored = k < batch.waveforms
            fetched = scope.fetch_channels([*INTEGRATORS, 3] if stored else list(INTEGRATORS), fmt="WORD",
                                           points=WAVE_POINTS)
            start[k], end[k] = read_run(fetched)
            if stored:
                for name, ch in CHANNELS.items():
                    record_waveform(run, name, fetched[ch])
            run.progress((k + 1) / n)
        log.info("batch %d: %d samples on the seed board (%d runs so far)", batch.index, n, board.runs)
        return placed.from_volts(start), placed.from_volts(end)


__all__ = ["H_SCALE", "REFRESH_EVERY", "RUN_DURATION", "SAMPLE_TIME", "SeedBoardSampler", "SeedBoardSettings",
           "configure_board", "configure_scope", "read_run", "seed_board_settings"]
