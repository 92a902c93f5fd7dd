"""Array-parallel write-verify: the algorithm that places every conductance.

One iteration is one batched round trip to the board: every cell that is not yet
within tolerance gets one pulse (SET if it reads low, RESET if it reads high), and
the board returns the verify read of those cells in the same reply. The algorithm
keeps per-cell state in numpy arrays, never loops over cells in Python.

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

log = logging.getLogger("rrambench.write_verify")

SET, RESET = 1, -1


class ArrayAccess(Protocol):
    """What write-verify needs from the bench: the board driver provides exactly this."""

    def pulse_batch(self, macro, row, col, polarity, amplitude, width, gate) -> np.ndarray:
        """Apply one pulse per cell; return each cell's verify read (S)."""

    def read_batch(self, macro, row, col, bias: float = 0.1, window: float = 1e-6) -> np.ndarray:
        """Read each cell (S)."""


@dataclass
class WriteVerifyConfig:
    """Write-verify settings; voltages in V, widths in s, conductances in S."""

    tolerance: float = 0.4e-6  # S, accepted |G - target|
    max_pulses: int = 60  # per cell; a cell still off target then is reported as failed
    set_start: float = 0.9  # V, first SET amplitude
    set_stop: float = 1.6  # V, largest SET amplitude
    reset_start: float = 0.9  # V, first RESET amplitude (magnitude)
    reset_stop: float = 2.0  # V, largest RESET amplitude (magnitude)
    step: float = 0.05  # V, ISPP amplitude increment
    width: float = 100e-9  # s, pulse width
    gate: float = 1.8  # V, word-line voltage for SET (fixed unless incremental_gate)
    reset_gate: float = 3.0  # V, word-line voltage for RESET (transistor fully on)
    incremental_gate: bool = False  # climb the gate instead of the SET amplitude
    gate_start: float = 0.9  # V, first gate voltage with incremental_gate
    gate_step: float = 0.05  # V, gate increment with incremental_gate
    gate_stop: float = 2.5  # V, highest gate voltage with incremental_gate
    adaptive: bool = True  # scale amplitude steps with the remaining error
    final_reset: bool = False  # one weak RESET after convergence, then verify again
    final_reset_amplitude: float = 0.7  # V
    settle: float = 0.0  # s, verify-wait-verify delay (0: off)
    reads: int = 1  # reads averaged per verify
    read_bias: float = 0.1  # V
    read_window: float = 1e-6  # s, integration window of each read
    stuck_after: int = 6  # pulses at the top amplitude without movement
    stuck_motion: float = 0.2e-6  # S, movement below this counts as "did not move"

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
    """Outcome per cell (arrays over the cell list) and the run's history."""

    target: np.ndarray  # S
    final: np.ndarray  # S, last verify read
    pulses: np.ndarray  # pulses applied per cell
    converged: np.ndarray  # bool
    stuck: np.ndarray  # bool
    iterations: int  # batched round trips after the initial read
    round_trips: int  # all board round trips, initial read included
    error_per_iteration: list[float]  # S, RMS error over active cells after each iteration
    active_per_iteration: list[int]
    pulse_log: PulseLog

    @property
    def failed(self) -> np.ndarray:
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
    """Program ``target`` (S) into the cells (macro, row, col), all cells at once.

    ``now``/``sleep`` are the bench clock; ``check`` is called between iterations
    (the run's cancellation token raises there); ``on_iteration`` receives progress.
    """
    cfg = config or WriteVerifyConfig()
    macro, row, col = (np.asarray(a, dtype=np.int64).ravel() for a in (macro, row, col))
    target = np.asarray(target, dtype=float).ravel()
    if not (macro.shape == row.shape == col.shape == target.shape):
        raise ValueError("macro, row, col and target must have the same number of cells")
    if not np.all(np.isfinite(target)) or np.any(target <= 0):
        raise ValueError("target conductances must be positive and finite (S)")
    n = target.size

    def read(idx: np.ndarray) -> np.ndarray:
        reads = [access.read_batch(macro[idx], row[idx], col[idx], cfg.read_bias, cfg.read_window)
                 for _ in range(cfg.reads)]
        return np.mean(reads, axis=0)

    g = read(np.arange(n))
    round_trips = cfg.reads
    pulses = np.zeros(n, dtype=np.int64)
    converged = np.zeros(n, dtype=bool)
    stuck = np.zeros(n, dtype=bool)
    last_polarity = np.zeros(n, dtype=np.int8)
    streak = np.zeros(n, dtype=np.int64)  # consecutive pulses of the same polarity
    top_still = np.zeros(n, dtype=np.int64)  # pulses at the top amplitude without movement
    final_reset_done = np.zeros(n, dtype=bool)
    log_ = PulseLog()
    errors: list[float] = []
    actives: list[int] = []
    iteration = 0

    def finish(mask: np.ndarray) -> None:
        converged[mask] = True

    def _result() -> WriteVerifyResult:
        return WriteVerifyResult(
            target=target, final=g.copy(), pulses=pulses.copy(), converged=converged.copy(),
            stuck=stuck.copy(), iterations=iteration, round_trips=round_trips,
            error_per_iteration=list(errors), active_per_iteration=list(actives), pulse_log=log_,
        )

    while True:
        check()
        err = g - target
        within = np.abs(err) <= cfg.tolerance
        newly = within & ~converged & ~stuck
        if newly.any() and cfg.final_reset:
            fresh = newly & ~final_reset_done
            if fresh.any():
                idx = np.flatnonzero(fresh)
                amp = np.full(idx.size, cfg.final_reset_amplitude)
                gate = np.full(idx.size, cfg.reset_gate)
                g[idx] = access.pulse_batch(macro[idx], row[idx], col[idx], np.full(idx.size, RESET),
                                            amp, cfg.width, gate)
                round_trips += 1
                pulses[idx] += 1
                final_reset_done[idx] = True
                log_.add(iteration, now(), idx, np.full(idx.size, RESET), amp, cfg.width, gate, g[idx])
                continue  # verify the weak RESET's result before accepting
        if newly.any() and cfg.settle > 0 and sleep is not None:
            idx = np.flatnonzero(newly)
            sleep(cfg.settle)
            g[idx] = read(idx)
            round_trips += cfg.reads
            newly[idx] = np.abs(g[idx] - target[idx]) <= cfg.tolerance
        finish(newly)

        out_of_budget = ~converged & ~stuck & (pulses >= cfg.max_pulses)
        active = ~converged & ~stuck & ~out_of_budget
        errors.append(float(np.sqrt(np.mean(err[~stuck] ** 2))) if (~stuck).any() else 0.0)
        actives.append(int(active.sum()))
        if on_iteration is not None:
            on_iteration(iteration, _result())
        if not active.any():
            break
        iteration += 1

        idx = np.flatnonzero(active)
        polarity = np.where(err[idx] < 0, SET, RESET).astype(np.int8)
        same = polarity == last_polarity[idx]
        streak[idx] = np.where(same, streak[idx] + 1, 0)
        last_polarity[idx] = polarity
        amplitude, gate = _amplitudes(cfg, polarity, streak[idx], err[idx], target[idx])
        before = g[idx].copy()
        g[idx] = access.pulse_batch(macro[idx], row[idx], col[idx], polarity, amplitude, cfg.width, gate)
        round_trips += 1
        pulses[idx] += 1
        log_.add(iteration, now(), idx, polarity, amplitude, cfg.width, gate, g[idx])

        at_top = amplitude >= np.where(polarity == SET, cfg.set_stop, cfg.reset_stop) - 1e-9
        if cfg.incremental_gate:
            at_top = np.where(polarity == SET, gate >= cfg.gate_stop - 1e-9, at_top)
        still = np.abs(g[idx] - before) < cfg.stuck_motion
        top_still[idx] = np.where(at_top & still, top_still[idx] + 1, 0)
        newly_stuck = idx[top_still[idx] >= cfg.stuck_after]
        if newly_stuck.size:
            stuck[newly_stuck] = True
            log.info("write-verify: %d cell(s) declared stuck", newly_stuck.size)

    return _result()


def _amplitudes(cfg: WriteVerifyConfig, polarity, streak, err, target):
    """Pulse amplitude and gate voltage of each active cell for this iteration."""
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
