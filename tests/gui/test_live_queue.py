"""The worker-to-window queue keeps events, keeps only the newest value, and decimates series."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gui.live_queue import LiveQueue, decimate


def test_events_arrive_in_order_and_none_is_dropped():
    q = LiveQueue()
    for k in range(100):
        q.event("n", k)
    assert [p for _, p in q.drain().events] == list(range(100))
    assert not q.drain()


def test_only_the_newest_value_of_a_key_is_drawn():
    q = LiveQueue()
    for k in range(50):
        q.latest(("map", 0), k)
    q.latest(("map", 1), -1)
    batch = q.drain()
    assert batch.latest == {("map", 0): 49, ("map", 1): -1}
    assert batch.dropped == 49


def test_a_long_series_is_decimated_to_the_cap_keeping_both_ends():
    q = LiveQueue(max_points=1000)
    for part in np.array_split(np.arange(100_000.0), 100):
        q.extend(("series", "x"), part)
    rows = q.drain().series[("series", "x")]
    assert len(rows) == 1000
    assert rows[0] == 0 and rows[-1] == 99_999
    assert np.all(np.diff(rows) > 0), "order is kept"
    assert 90 <= np.median(np.diff(rows)) <= 110, "points evenly spread"


def test_pairs_stay_pairs_and_short_series_are_untouched():
    xy = np.column_stack([np.arange(10.0), np.arange(10.0) ** 2])
    assert decimate(xy, 100) is xy
    kept = decimate(np.column_stack([np.arange(1e4), np.arange(1e4) ** 2]), 50)
    assert kept.shape == (50, 2) and np.all(kept[:, 1] == kept[:, 0] ** 2)
    with pytest.raises(ValueError, match="max_points"):
        decimate(xy, 1)


def test_producers_on_other_threads_lose_no_series_points_below_the_cap():
    q = LiveQueue(max_points=100_000)

    def produce(start: int) -> None:
        for k in range(1000):
            q.extend("s", [start + k])

    threads = [threading.Thread(target=produce, args=(i * 1000,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(q.drain().series["s"]) == list(range(4000))
