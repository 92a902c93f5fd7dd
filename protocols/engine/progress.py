"""Progress events of a run and the terminal progress bar.

The engine sends a :class:`ProgressEvent` to every subscriber when a step starts,
when a step reports how far it is, when it ends and when the run changes state.
The CLI draws :class:`TerminalBar` on a TTY; the GUI puts events on its queue.
Subscribers are called on the run's thread and must return quickly.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class ProgressEvent:
    """Where a run is.

    ``index``: current step (0-based; equals ``total`` once all are done).
    ``fraction``: overall progress 0..1 (steps weighted by their estimates).
    ``eta``: expected remaining wall time in s (None until it can be estimated).
    ``state``: the engine state ("running", "paused", ...).
    """

    index: int
    total: int
    name: str
    fraction: float
    eta: float | None
    state: str


class EtaEstimator:
    """Remaining time from the work done so far (weights: per-step estimates or 1 each)."""

    def __init__(self, estimates: list[float], done: int) -> None:
        weights = [e if e > 0 else 0.0 for e in estimates]
        if not any(weights):
            weights = [1.0] * len(estimates)
        self._weights = weights
        self._prefix = [0.0, *itertools.accumulate(weights)]  # work before step i
        self._base = self._prefix[min(done, len(weights))]  # work done before this session (resume)
        self._total = sum(weights) or 1.0
        self._t0 = time.monotonic()

    def fraction(self, index: int, within: float) -> float:
        """Overall fraction done with step ``index`` ``within`` (0..1) of the way."""
        index = min(index, len(self._weights))
        done = self._prefix[index]
        if index < len(self._weights):
            done += within * self._weights[index]
        return min(1.0, done / self._total)

    def eta(self, fraction: float) -> float | None:
        """Seconds left at ``fraction``, extrapolating this session's rate."""
        session = fraction * self._total - self._base
        elapsed = time.monotonic() - self._t0
        if session <= 0 or elapsed <= 0:
            return None
        return elapsed * (self._total * (1.0 - fraction)) / session


def format_duration(seconds: float | None) -> str:
    """'1 h 02 min', '3 min 05 s', '12 s' or '--'."""
    if seconds is None or not math.isfinite(seconds):
        return "--"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


class TerminalBar:
    """A one-line progress bar redrawn in place (use on a TTY only)."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream, self._width = stream, width
        self._last = ""

    def __call__(self, event: ProgressEvent) -> None:
        filled = int(round(event.fraction * self._width))
        bar = "#" * filled + "." * (self._width - filled)
        step = min(event.index + 1, event.total)
        state = "" if event.state == "running" else f" [{event.state}]"
        line = (f"[{bar}] {100 * event.fraction:5.1f}%  step {step}/{event.total}  "
                f"{event.name[:40]}  ETA {format_duration(event.eta)}{state}")
        if line != self._last:
            pad = " " * max(0, len(self._last) - len(line))
            self._stream.write("\r" + line + pad)
            self._stream.flush()
            self._last = line

    def close(self) -> None:
        """End the bar's line."""
        if self._last:
            self._stream.write("\n")
            self._stream.flush()
            self._last = ""
