"""SimClock: virtual time that the whole simulator shares."""

from __future__ import annotations

import math
import threading

import pytest

from instruments.sim.clock import SimClock


def test_sleep_advances_virtual_time_by_exactly_the_request():
    clock = SimClock()
    assert clock.now() == 0.0
    clock.sleep(1e6)  # a retention wait returns at once
    clock.sleep(0.5)
    assert clock.now() == 1e6 + 0.5


def test_clock_can_start_at_a_restored_time():
    assert SimClock(start=42.0).now() == 42.0


@pytest.mark.parametrize("bad", [-1e-9, math.nan, math.inf, "1s", None])
def test_sleep_refuses_negative_or_non_finite_durations_and_keeps_time(bad):
    clock = SimClock(start=3.0)
    with pytest.raises(ValueError, match="seconds"):
        clock.sleep(bad)
    assert clock.now() == 3.0


def test_concurrent_sleeps_are_all_counted():
    clock = SimClock()

    def worker() -> None:
        for _ in range(2000):
            clock.sleep(0.25)  # exact in binary, so the sum is exact

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.now() == 4 * 2000 * 0.25
