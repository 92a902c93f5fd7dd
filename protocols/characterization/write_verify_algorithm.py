"""Array-parallel write-verify: the algorithm that places every conductance.

One iteration is one batched round trip to the board: every cell that is not yet
within tolerance gets one pulse (SET if it reads low, RESET if it reads high), and
the board returns the verify read of those cells in the same reply. Cells whose last
verify read was within tolerance are confirmed by an averaged read that rides in the
same batch (read-only entries, polarity 0, after the pulses), so confirming them costs
no round trip of its own. The algorithm keeps per-cell state in numpy arrays, never
loops over cells in Python.

Variants (all parameters of :class:`WriteVerifyConfig`):

* **ISPP** (incremental step pulse programming): each consecutive pulse of the same
  polarity is ``step`` volts larger; the amplitude restarts when the polarity flips,
  so an overshoot is corrected gently.
* **incremental gate**: SET amplitude stays fixed and the word-line voltage climbs
  instead; the 1T1R compliance then bounds every SET step.
* **adaptive steps**: the next amplitude step scales with the remaining error, large
  far from target, fine close to it.
* **final small RESET**: after a cell converges, one weak RESET pulse removes the
  loosely bound filament tip that relaxes fastest; the cell is then verified again.
* **verify-wait-verify**: a converged cell is read again after ``settle`` seconds and
  reprogrammed if it drifted out of tolerance.
* **read averaging**: each verify uses the mean of ``reads`` reads.
* **stuck detection**: a cell whose conductance does not move after
  ``stuck_after`` pulses at the top of the amplitude range is declared stuck and
  left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from protocols.engine.params import param

log = logging.getLogger("rrambench.write_verify")

SET, RESET = 1, -1


class ArrayAccess(Protocol):
    """What write-verify needs from the bench: the board driver provides exactly this."""

    def pulse_batch(self, macro, row, col, polarity, amplitude, width, gate, *, bias: float = 0.1,
                    window: float = 1e-6) -> np.ndarray:
        """Apply one pulse per cell (polarity 0, amplitude 0: none, the cell is only read); return
        each listed cell's verify read (S) at ``bias`` V over ``window`` s."""

    def read_batch(self, macro, row, col, bias: float = 0.1, window: float = 1e-6) -> np.ndarray:
        """Read each cell (S)."""


@dataclass
class WriteVerifyConfig:
    """Write-verify settings; voltages in V, widths in s, conductances in S.

    The one declaration of every setting: unit, limits, help and safety-envelope check
    ride in each field (:func:`~protocols.engine.params.param`). The exposed fields,
    first and in this order, are the programming protocols' parameters
    (:data:`protocols.characterization.programming.WriteVerifyParams`); the others keep
    their defaults there. The limits bound what a protocol accepts; the algorithm
    itself checks only the consistency below (``__post_init__``).
    """

    # -- exposed as protocol parameters (``rrambench list`` shows them in this order)
    tolerance: float = param(0.4e-6, unit="S", limits=(0.05e-6, 10e-6), help="accepted |G - target|")
    # a cell still off target after max_pulses is reported as failed
    max_pulses: int = param(60, limits=(1, 1000), help="pulse budget per cell")
    # one confirmation batch lists each cell ``reads`` times
    reads: int = param(4, limits=(1, 64), help="reads averaged per confirmation and read-back")
    settle: float = param(0.0, unit="s", limits=(0.0, 10.0), help="verify-wait-verify delay (0: off)")
    final_reset: bool = param(False, help="one weak RESET after convergence, then verify again")
    incremental_gate: bool = param(False, help="climb the gate voltage instead of the SET amplitude")
    adaptive: bool = param(True, help="scale the amplitude step with the remaining error")
    step: float = param(0.05, unit="V", limits=(0.005, 0.5), help="ISPP amplitude increment")
    set_stop: float = param(1.6, unit="V", limits=(0.5, 3.0), envelope="set_pulse", help="largest SET amplitude")
    reset_stop: float = param(2.0, unit="V", limits=(0.5, 3.0), envelope="reset_pulse",
                              help="largest RESET amplitude (magnitude)")
    width: float = param(100e-9, unit="s", limits=(10e-9, 10e-3), envelope="pulse_width", help="pulse width")
    # fixed unless incremental_gate
    gate: float = param(1.8, unit="V", limits=(0.0, 3.3), envelope="gate", help="word-line voltage of SET pulses")
    read_window: float = param(1e-6, unit="s", limits=(1e-8, 1e-2), help="integration window of each read")
    # -- algorithm settings the protocols keep at their defaults
    set_start: float = param(0.9, unit="V", help="first SET amplitude", expose=False)
    reset_start: float = param(0.9, unit="V", help="first RESET amplitude (magnitude)", expose=False)
    reset_gate: float = param(3.0, unit="V", envelope="gate", expose=False,
                              help="word-line voltage of RESET pulses (transistor fully on)")
    gate_start: float = param(0.9, unit="V", help="first gate voltage with incremental_gate", expose=False)
    gate_step: float = param(0.05, unit="V", help="gate increment with incremental_gate", expose=False)
    gate_stop: float = param(2.5, unit="V", envelope="gate", expose=False,
                             help="highest gate voltage with incremental_gate")
    final_reset_amplitude: float = param(0.7, unit="V", help="amplitude of the weak RESET of final_reset",
                                         expose=False)
    read_bias: float = param(0.1, unit="V", envelope="read_bias", help="voltage of every read", expose=False)
    stuck_after: int = param(6, help="pulses at the top amplitude without movement that make a cell stuck",
                             expose=False)
    stuck_motion: float = param(0.2e-6, unit="S", help="movement below this counts as 'did not move'",
                                expose=False)

    def __post_init__(self) -> None:
        for name in ("tolerance", "width", "step", "read_window", "stuck_motion"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.max_pulses < 1 or self.reads < 1 or self.stuck_after < 1:
            raise ValueError("max_pulses, reads and stuck_after must be >= 1")
        if not 0 < self.set_start <= self.set_stop:
            raise ValueError(f"need 0 < set_start <= set_stop, got {self.set_start}, {self.set_stop}")
        if not 0 < self.reset_start <= self.reset_stop:
            raise ValueError(f"need 0 < reset_start <= reset_stop, got {self.reset_start}, {self.reset_stop}")
        if self.settle < 0:
            raise ValueError(f"settle must be >= 0 s, got {self.settle}")


@dataclass
class PulseLog:
    """Every pulse applied, in order (one row per pulse)."""

    cell: list[np.ndarray] = field(default_factory=list)  # index into the cell list
    polarity: list[np.ndarray] = field(default_factory=list)
    amplitude: list[np.ndarray] = field(default_factory=list)  # V
    width: list[np.ndarray] = field(default_factory=list)  # s
    gate: list[np.ndarray] = field(default_factory=list)  # V
    read: list[np.ndarray] = field(default_factory=list)  # S, verify read after the pulse
    time: list[np.ndarray] = field(default_factory=list)  # s, bench clock
    iteration: list[np.ndarray] = field(default_factory=list)

    def add(self, iteration: int, t: float, cells, polarity, amplitude, width, gate, read) -> None:
        """Append one batch: cell indices, polarity, V, s, V, S at bench time t (s)."""
        n = len(cells)
        self.cell.append(np.asarray(cells, dtype=np.int32))
        self.polarity.append(np.asarray(polarity, dtype=np.int8))
        self.amplitude.append(np.asarray(amplitude, dtype=np.float32))
        self.width.append(np.broadcast_to(np.asarray(width, dtype=np.float32), (n,)).copy())
        self.gate.append(np.asarray(gate, dtype=np.float32))
        self.read.append(np.asarray(read, dtype=np.float64))
        self.time.append(np.full(n, t))
        self.iteration.append(np.full(n, iteration, dtype=np.int32))

    def arrays(self) -> dict[str, np.ndarray]:
        """Concatenated columns; empty arrays when no pulse was applied."""
        dtypes = {"cell": np.int32, "polarity": np.int8, "amplitude": np.float32, "width": np.float32,
                  "gate": np.float32, "read": np.float64, "time": np.float64, "iteration": np.int32}
        return {
            name: np.concatenate(getattr(self, name)) if getattr(self, name) else np.zeros(0, dtype)
            for name, dtype in dtypes.items()
        }


@dataclass
class WriteVerifyResult:
    """Outcome per cell (arrays over the cell list) and the run's history.

    Every iteration is exactly one batched board round trip: the initial averaged
    read, a pulse batch (pulses plus the verify read of the pulsed cells, returned
    in the same reply, and the averaged read of the cells whose last verify read was
    within tolerance, listed as read-only entries after the pulses) or, where no pulse
    batch carries them (no cell left to pulse, or a batch too big for one frame), a
    confirmation batch of those reads alone. So ``iterations == round_trips``.
    """

    target: np.ndarray  # S
    final: np.ndarray  # S, last verify read (averaged for converged cells)
    pulses: np.ndarray  # pulses applied per cell
    converged: np.ndarray  # bool
    stuck: np.ndarray  # bool
    iterations: int  # batched round trips, initial read included
    pulse_batches: int  # of which pulse batches
    confirm_batches: int  # of which averaged confirmation reads alone
    confirm_along: int  # pulse batches that also carried confirmation reads (polarity 0 entries)
    error_per_iteration: list[float]  # S, RMS |G - target| over non-stuck cells after each pulse batch
    active_per_iteration: list[int]  # cells pulsed in each pulse batch
    pulse_log: PulseLog

    @property
    def round_trips(self) -> int:
        """Board round trips: one per iteration, by construction."""
        return self.iterations

    @property
    def failed(self) -> np.ndarray:
        """Cells neither converged nor stuck (out of pulse budget)."""
        return ~self.converged & ~self.stuck


def write_verify(
    access: ArrayAccess,
    macro: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    target: np.ndarray,
    config: WriteVerifyConfig | None = None,
    *,
    now: Callable[[], float] = lambda: 0.0,
    sleep: Callable[[float], None] | None = None,
    check: Callable[[], None] = lambda: None,
    on_iteration: Callable[[int, WriteVerifyResult], None] | None = None,
) -> WriteVerifyResult:
    """Program ``target`` (S, > 0) into the cells (macro, row, col), all cells at once.

    ``now``/``sleep`` are the bench clock (s); ``check`` is called before every
    round trip (the run's cancellation token raises there); ``on_iteration``
    receives (iteration, partial result) after every round trip.
    """
    cfg = config or WriteVerifyConfig()
    macro, row, col = (np.asarray(a, dtype=np.int64).ravel() for a in (macro, row, col))
    target = np.asarray(target, dtype=float).ravel()
    if not (macro.shape == row.shape == col.shape == target.shape):
        raise ValueError("macro, row, col and target must have the same number of cells")
    if not np.all(np.isfinite(target)) or np.any(target <= 0):
        raise ValueError("target conductances must be positive and finite (S)")
    n = target.size
    confirm = cfg.reads > 1 or cfg.settle > 0
    s = _State(n)
    log_ = PulseLog()
    errors: list[float] = []
    actives: list[int] = []
    counts = {"iterations": 0, "pulse": 0, "confirm": 0, "along": 0}

    def verify_read(idx: np.ndarray) -> np.ndarray:
        """One round trip: the mean of ``cfg.reads`` reads of cells ``idx``."""
        return averaged_read(access, macro[idx], row[idx], col[idx], cfg.reads, cfg.read_bias, cfg.read_window)

    def result() -> WriteVerifyResult:
        return WriteVerifyResult(
            target=target, final=s.g.copy(), pulses=s.pulses.copy(), converged=s.converged.copy(),
            stuck=s.stuck.copy(), iterations=counts["iterations"], pulse_batches=counts["pulse"],
            confirm_batches=counts["confirm"], confirm_along=counts["along"], error_per_iteration=list(errors),
            active_per_iteration=list(actives), pulse_log=log_,
        )

    def done_trip(kind: str) -> None:
        counts["iterations"] += 1
        counts[kind] += 1
        if on_iteration is not None:
            on_iteration(counts["iterations"], result())

    # Cells per round trip of a pulse batch (None: no limit; 0: the access takes no read-only
    # entries); confirmation reads ride in a pulse batch only where the whole batch fits one
    # frame, else they take a trip of their own. Asked before the first trip: a board driver
    # not told its board's protocol yet asks it (a trip that is not one of the iterations).
    per_frame = getattr(access, "pulse_cells_per_frame", 0)
    check()
    s.g[:] = verify_read(np.arange(n))
    counts["iterations"] += 1
    s.pending[:] = confirm  # the initial read is already averaged: no extra confirmation needed
    while True:
        within = np.abs(s.g - target) <= cfg.tolerance
        open_ = ~s.converged & ~s.stuck
        # cells within tolerance: a weak final RESET first (if asked), then confirmation
        needs_reset = within & open_ & cfg.final_reset & ~s.final_reset_done
        accept = within & open_ & ~needs_reset
        if confirm:
            s.converged |= accept & ~s.pending
            s.pending = accept & s.pending
        else:
            s.converged |= accept
        open_ = ~s.converged & ~s.stuck
        out_of_budget = open_ & ~within & (s.pulses >= cfg.max_pulses)
        to_pulse = open_ & ~within & ~out_of_budget
        to_confirm = open_ & s.pending & within if confirm else np.zeros(n, bool)
        pulsing = to_pulse.any() or needs_reset.any()
        if not (pulsing or to_confirm.any()):
            break
        check()
        confirming = np.flatnonzero(to_confirm)
        if confirming.size and cfg.settle > 0 and sleep is not None:
            sleep(cfg.settle)  # verify-wait-verify: the wait before the confirming read
        if pulsing:
            along = confirming
            if per_frame is not None and int((to_pulse | needs_reset).sum()) + cfg.reads * along.size > per_frame:
                along = confirming[:0]
            _pulse_round(access, cfg, s, macro, row, col, target, to_pulse, needs_reset, log_,
                         counts["iterations"], now, along)
            errors.append(float(np.sqrt(np.mean((s.g - target)[~s.stuck] ** 2))) if (~s.stuck).any() else 0.0)
            actives.append(int(to_pulse.sum() + needs_reset.sum()))
            counts["along"] += bool(along.size)
            done_trip("pulse")
            if along.size == confirming.size:
                continue
            check()
        # read averaging: the confirming read of the cells no pulse batch carried
        s.g[confirming] = verify_read(confirming)
        s.pending[confirming] = False  # the averaged read is the verdict: within -> converged next pass
        done_trip("confirm")
    return result()


def averaged_read(access: ArrayAccess, macro: np.ndarray, row: np.ndarray, col: np.ndarray, reads: int,
                  bias: float = 0.1, window: float = 1e-6) -> np.ndarray:
    """Mean of ``reads`` reads of each cell (S), in one read batch listing each cell ``reads`` times.

    ``reads``: >= 1; ``bias``: read voltage (V); ``window``: integration window of each read (s).
    """
    k = int(reads)
    g = access.read_batch(np.repeat(macro, k), np.repeat(row, k), np.repeat(col, k), bias, window)
    return np.asarray(g, dtype=float).reshape(-1, k).mean(axis=1)


class _State:
    """Per-cell programming state, numpy arrays over the cell list."""

    def __init__(self, n: int) -> None:
        self.g = np.zeros(n)  # S, latest read
        self.pulses = np.zeros(n, dtype=np.int64)
        self.converged = np.zeros(n, dtype=bool)
        self.stuck = np.zeros(n, dtype=bool)
        self.pending = np.zeros(n, dtype=bool)  # latest read is a single verify read, not yet confirmed
        self.last_polarity = np.zeros(n, dtype=np.int8)
        self.streak = np.zeros(n, dtype=np.int64)  # consecutive pulses of the same polarity
        self.top_still = np.zeros(n, dtype=np.int64)  # pulses at the top amplitude without movement
        self.final_reset_done = np.zeros(n, dtype=bool)


def _pulse_round(access, cfg, s: _State, macro, row, col, target, to_pulse, needs_reset,
                 log_: PulseLog, iteration: int, now, confirming: np.ndarray) -> None:
    """One pulse batch: ISPP pulses on cells off target, weak RESETs on fresh arrivals, and the
    averaged confirmation read of the cells ``confirming`` (``cfg.reads`` read-only entries each,
    polarity 0: read after the pulses, in the same round trip)."""
    idx = np.flatnonzero(to_pulse | needs_reset)
    err = s.g[idx] - target[idx]
    weak = needs_reset[idx]
    polarity = np.where(weak | (err > 0), RESET, SET).astype(np.int8)
    same = polarity == s.last_polarity[idx]
    s.streak[idx] = np.where(same & ~weak, s.streak[idx] + 1, 0)
    s.last_polarity[idx] = np.where(weak, 0, polarity)
    amplitude, gate = _amplitudes(cfg, polarity, s.streak[idx], err, target[idx])
    amplitude = np.where(weak, cfg.final_reset_amplitude, amplitude)
    gate = np.where(weak, cfg.reset_gate, gate)
    before = s.g[idx].copy()
    t = now()
    k = cfg.reads
    if confirming.size:
        cells = np.concatenate([idx, np.repeat(confirming, k)])
        zeros = np.zeros(confirming.size * k)
        answer = np.asarray(access.pulse_batch(
            macro[cells], row[cells], col[cells], np.concatenate([polarity, zeros.astype(np.int8)]),
            np.concatenate([amplitude, zeros]), cfg.width, np.concatenate([gate, zeros]),
            bias=cfg.read_bias, window=cfg.read_window), dtype=float)
        read = answer[:idx.size]
        s.g[confirming] = answer[idx.size:].reshape(-1, k).mean(axis=1)
        s.pending[confirming] = False  # the averaged read is the verdict: within -> converged next pass
    else:
        read = np.asarray(access.pulse_batch(macro[idx], row[idx], col[idx], polarity, amplitude, cfg.width, gate,
                                             bias=cfg.read_bias, window=cfg.read_window), dtype=float)
    s.g[idx] = read
    s.pulses[idx] += 1
    s.final_reset_done[idx] |= weak
    s.pending[idx] = True
    log_.add(iteration, t, idx, polarity, amplitude, cfg.width, gate, read)

    at_top = amplitude >= np.where(polarity == SET, cfg.set_stop, cfg.reset_stop) - 1e-9
    if cfg.incremental_gate:
        at_top = np.where(polarity == SET, gate >= cfg.gate_stop - 1e-9, at_top)
    still = np.abs(read - before) < cfg.stuck_motion
    s.top_still[idx] = np.where(at_top & still & ~weak, s.top_still[idx] + 1, 0)
    newly_stuck = idx[s.top_still[idx] >= cfg.stuck_after]
    if newly_stuck.size:
        s.stuck[newly_stuck] = True
        log.info("write-verify: %d cell(s) declared stuck", newly_stuck.size)


def _amplitudes(cfg: WriteVerifyConfig, polarity, streak, err, target):
    """Pulse amplitude and gate voltage (V) of each pulsed cell for this iteration."""
    step = np.full(polarity.shape, cfg.step)
    if cfg.adaptive:
        # Far from target: bigger steps (up to 3x); within 3 tolerances: the base step.
        step = step * np.clip(np.abs(err) / (3 * cfg.tolerance), 1.0, 3.0)
    is_set = polarity == SET
    set_amp = np.minimum(cfg.set_start + streak * step, cfg.set_stop)
    reset_amp = np.minimum(cfg.reset_start + streak * step, cfg.reset_stop)
    gate = np.where(is_set, cfg.gate, cfg.reset_gate)
    if cfg.incremental_gate:
        set_amp = np.full(polarity.shape, cfg.set_start)
        gate = np.where(is_set, np.minimum(cfg.gate_start + streak * cfg.gate_step, cfg.gate_stop), gate)
    return np.where(is_set, set_amp, reset_amp), gate
