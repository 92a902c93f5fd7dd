"""Time of the simulated bench: virtual for the embedded bench, wall time for ``sim serve``.

Every time-dependent effect of the simulator (pulse widths, read windows, SMU
points, relaxation, waits of a retention protocol, the seed board's lock-out) reads
and advances one clock.

* :class:`SimClock` (the embedded bench): virtual time that only the bench's own
  drivers advance; nothing sleeps for real, so a 1e6 s retention runs in milliseconds.
* :class:`WallTimeClock` (``rrambench sim serve``): time that passes with the wall
  clock, ``time_scale`` times faster, as on hardware. A client that lives in wall
  time (a terminal, PyMeasure, a hardware-config bench) sees lock-outs, delays and
  relaxation happen while it waits; an operation that takes time on the instrument
  (a pulse, an SMU point) takes that time divided by ``time_scale``.
"""

from __future__ import annotations

import math
import threading
import time


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


class WallTimeClock:
    """Bench time that follows the wall clock, ``time_scale`` times faster.

    ``now()`` is ``start + time_scale * (wall seconds since creation)``; ``sleep(s)``
    blocks for ``s / time_scale`` wall seconds, so time spent by an operation and
    time spent waiting by a client are the same time.
    """

    def __init__(self, start: float = 0.0, *, time_scale: float = 1.0) -> None:
        """Start at ``start`` s (finite, >= 0); ``time_scale`` (finite, > 0): bench s per wall s."""
        _check_seconds("start", start)
        scale = float(time_scale)
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"time_scale must be finite and > 0, got {time_scale!r}")
        self.time_scale = scale
        self._start = float(start)
        self._t0 = time.monotonic()

    def now(self) -> float:
        """Bench time in s."""
        return self._start + self.time_scale * (time.monotonic() - self._t0)

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of bench time pass (blocks ``seconds / time_scale`` wall seconds)."""
        _check_seconds("seconds", seconds)
        time.sleep(float(seconds) / self.time_scale)

    advance = sleep

    def __repr__(self) -> str:
        return f"WallTimeClock(now={self.now():.9g} s, time_scale={self.time_scale:g})"


def _check_seconds(name: str, value: float) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0 s, got {value!r}")
