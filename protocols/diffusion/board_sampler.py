"""What ``sample`` asks of the board that runs its closed loop, whichever board it is.

A sampler loads the programmed network onto its board and runs one batch: it returns
the batch's initial states and final samples (data units) and records the scope
traces of its first samples. ``sample`` does the rest (software baseline, records,
refreshes, scoring). The two boards, our macro controller
(:mod:`~protocols.diffusion.macro_controller_sampler`) and the seed's board
(:mod:`~protocols.diffusion.seed_board_sampler`), differ in who draws the initial
noise, how many samples one run takes and how the scope sees them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from instruments.config import SAMPLER_BOARDS
from protocols.engine.datasets import Constant, Spec
from protocols.engine.params import ParameterError

if TYPE_CHECKING:
    from protocols.diffusion.mapping import MappedNetwork
    from protocols.diffusion.weights import TrainedModel
    from protocols.engine.bench_shape import BenchShape
    from protocols.engine.protocol import Protocol as Run

#: Scope channels: integrators x0, x1 on 1 and 2, the time-embedding probe on 3.
CHANNELS = {"integrator_0": 1, "integrator_1": 2, "embedding": 3}
WAVE_POINTS = 250          # points per stored trace (a divisor of the scope record, 2000)


@dataclass(frozen=True)
class Batch:
    """One closed-loop run of ``sample``: a batch, or its part before or after a refresh."""

    index: int              # the batch's number (the parts of a split batch share it)
    condition: int | None   # class of every sample (None: unconditional model)
    size: int               # samples
    waveforms: int          # samples, the first ones, whose scope traces are stored
    refresh_before: bool    # a touch-up write-verify of the network comes first
    samples_before: int     # samples the run has taken before this one


#: Relative difference within which a host's ``rc`` or ``dt_step`` is the board's own (rounding).
TIME_TOLERANCE = 1e-6


@dataclass(frozen=True)
class LoopSettings:
    """How the loop integrates on our board: solver steps per sample, time per step (s),
    integrator time constant RC (s), reverse SDE (True) or probability-flow ODE. The two
    times are the board's own (:meth:`BoardSampler.time_base`)."""

    steps: int
    dt_step: float
    rc: float
    sde: bool


class BoardSampler(Protocol):
    """A board running ``sample``'s loop; built from the mapping before any instrument is
    asked (``Sample.validate``), refusing there (ValueError) what the board cannot run."""

    board: ClassVar[str]                # its name in SAMPLER_BOARDS (the ``board`` parameter)
    h_scale: ClassVar[float | None]     # hidden scale (V per unit) it imposes on the mapping, None: free
    refresh_every: ClassVar[int]        # default samples between refreshes of the network (0: never)

    def __init__(self, mapped: MappedNetwork, model: TrainedModel, loop: LoopSettings) -> None: ...

    @staticmethod
    def time_base(rc: float, dt_step: float, shape: BenchShape) -> tuple[float, float]:
        """(rc, dt_step) in s the loop runs with: the board's own, whatever the host says.
        ``rc``, ``dt_step``: the ``sample`` parameters (0: the board's); a value that is
        not the board's is refused (ParameterError, one line) before anything runs."""
        ...

    def specs(self) -> list[Spec]:
        """What it records besides the samples: ``duration``, ``sampler_board``, its settings."""
        ...

    def load(self, run: Run, placed: MappedNetwork) -> None:
        """Load the network as programmed (``placed``) and set the board up for a batch."""
        ...

    def run_batch(self, run: Run, placed: MappedNetwork, batch: Batch,
                  x0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run ``batch`` (from the initial states ``x0``, (n, 2) data units, where the board takes
        them from the host; None: drawn); returns its initial states and final samples, (n, 2)
        data units each."""
        ...


def board_specs(board: str, duration: float) -> list[Spec]:
    """The constants every sampler records: one sample's duration (s) and the board."""
    return [
        Constant("duration", units="s", data=np.array(duration),
                 long_name="physical duration of one closed-loop sample"),
        Constant("sampler_board", units="", data=np.array(SAMPLER_BOARDS.index(board), dtype="i1"),
                 long_name="board that ran the closed loop: 0 macro_controller (ours), 1 seed_board (the seed's)"),
    ]


def board_time(name: str, given: float, board: float, what: str) -> float:
    """The board's time ``board`` (s) for the parameter ``name``, given as ``given`` (0: the
    board's); a given value more than :data:`TIME_TOLERANCE` off the board's is refused."""
    if given and not math.isclose(given, board, rel_tol=TIME_TOLERANCE):
        raise ParameterError(f"{name}={given:g} s is not the board's: the macro controller's {what} is {board:g} s "
                             f"(leave {name} at 0 to take the board's)")
    return board


def record_waveform(run: Run, name: str, wave: Any) -> None:
    """Record one scope trace (an ``infiniivision.Waveform``) of ``CHANNELS`` name ``name``."""
    p = wave.preamble
    run.record_trace(name, wave.codes, {
        "x_increment": p.xincrement, "x_origin": p.xorigin, "x_reference": p.xreference,
        "y_increment": p.yincrement, "y_origin": p.yorigin, "y_reference": p.yreference})
