"""The hand-off from the bench worker thread to the Qt thread, with decimation.

The worker never touches a widget; it puts what it learns here and the Qt thread
drains the queue on a timer (about 30 times a second). Three kinds of items:

* events (connected, run finished, errors, ...): kept in order, never dropped;
* latest values (a conductance map, the progress, a scope acquisition): only the
  newest value per key survives until the next drain, so a fast producer cannot
  pile up redraws;
* series (points of a convergence curve, an I-V loop): appended, and decimated to
  at most ``max_points`` per key per drain, so a long run never stalls the window.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Batch:
    """Everything put on the queue since the previous drain."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    latest: dict[Hashable, Any] = field(default_factory=dict)
    series: dict[Hashable, np.ndarray] = field(default_factory=dict)
    dropped: int = 0  # latest values replaced before they were drawn, plus points decimated away

    def __bool__(self) -> bool:
        return bool(self.events or self.latest or self.series)


def decimate(values: np.ndarray, max_points: int) -> np.ndarray:
    """At most ``max_points`` rows of ``values``, evenly spread, first and last kept."""
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")
    n = len(values)
    if n <= max_points:
        return values
    keep = np.linspace(0, n - 1, max_points).round().astype(int)
    return values[keep]


class LiveQueue:
    """Thread-safe queue of events, latest values and decimated series.

    ``max_points``: largest number of points of one series handed over per drain (>= 2).
    """

    def __init__(self, max_points: int = 5000) -> None:
        if max_points < 2:
            raise ValueError(f"max_points must be >= 2, got {max_points}")
        self.max_points = max_points
        self._lock = threading.Lock()
        self._batch = Batch()
        self._pending: dict[Hashable, list[np.ndarray]] = {}

    def event(self, kind: str, payload: Any = None) -> None:
        """An ordered event the GUI must see (never dropped)."""
        with self._lock:
            self._batch.events.append((kind, payload))

    def latest(self, key: Hashable, value: Any) -> None:
        """A value where only the newest matters (replaces an undrawn older one)."""
        with self._lock:
            if key in self._batch.latest:
                self._batch.dropped += 1
            self._batch.latest[key] = value

    def extend(self, key: Hashable, points: Any) -> None:
        """Append points (rows of an array, e.g. (n,) values or (n, 2) x/y pairs) to a series."""
        rows = np.atleast_1d(np.asarray(points, dtype=float))
        with self._lock:
            self._pending.setdefault(key, []).append(rows)

    def drain(self) -> Batch:
        """Take everything queued so far (called on the Qt thread)."""
        with self._lock:
            batch, pending = self._batch, self._pending
            self._batch, self._pending = Batch(), {}
        for key, parts in pending.items():
            rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
            kept = decimate(rows, self.max_points)
            batch.dropped += len(rows) - len(kept)
            batch.series[key] = kept
        return batch
