"""Virtual time of the simulated bench.

Every time-dependent effect of the simulator (pulse widths, read windows, SMU
points, relaxation, waits of a retention protocol) reads and advances one
:class:`SimClock`. Nothing in the simulator sleeps for real, so a 1e6 s retention
experiment runs in milliseconds.
"""

from __future__ import annotations

import math
import threading


class SimClock:
    """Thread-safe virtual clock in seconds.

    ``now()`` is the virtual time (s) since the world was created (or the time
    restored by ``SimWorld.load``); ``sleep(s)`` advances it at once.
    """

    def __init__(self, start: float = 0.0) -> None:
        """Start at ``start`` s (finite, >= 0)."""
        _check_seconds("start", start)
        self._lock = threading.Lock()
        self._now = float(start)

    def now(self) -> float:
        """Virtual time in s."""
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Advance virtual time by ``seconds`` (finite, >= 0); returns immediately."""
        _check_seconds("seconds", seconds)
        with self._lock:
            self._now += float(seconds)

    advance = sleep

    def __repr__(self) -> str:
        return f"SimClock(now={self.now():.9g} s)"


def _check_seconds(name: str, value: float) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0 s, got {value!r}")
