"""Multi-level programming, relaxation over log time and retention of the simulated cells."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.sim.device import Polarity
from instruments.sim.world import SimWorld

US = 1e-6  # S per uS


def program_and_verify(world: SimWorld, m, r, c, targets, *, tol=0.25 * US, gate=1.5,
                       step=0.01, max_iter=300) -> None:
    """Incremental-step pulse programming, vectorised over all cells.

    Each iteration reads every cell (10 us window); cells below target - tol get a
    SET pulse, cells above target + tol a RESET pulse (100 ns). Repeating the same
    polarity raises its amplitude by ``step`` V; a change of direction backs off by
    5 steps. Cells inside the tolerance are left alone.
    """
    start = {Polarity.SET: 0.7, Polarity.RESET: 0.8}
    amp = {s: np.full(targets.size, v) for s, v in start.items()}
    last = np.zeros(targets.size, dtype=int)
    for _ in range(max_iter):
        err = world.read(m, r, c, window=10e-6) - targets
        pol = np.where(err < -tol, 1, np.where(err > tol, -1, 0))
        act = pol != 0
        if not act.any():
            return
        for s in (Polarity.SET, Polarity.RESET):
            same, flip = (pol == s) & (last == s), (pol == s) & (last == -s)
            amp[s][same] += step
            amp[s][flip] = np.maximum(amp[s][flip] - 5 * step, start[s])
        amplitude = np.where(pol == 1, amp[Polarity.SET], amp[Polarity.RESET])
        world.pulse(m[act], r[act], c[act], pol[act], amplitude[act], 100e-9, gate)
        last = np.where(act, pol, last)


def _cells(n: int, world: SimWorld):
    m, r, c = np.unravel_index(np.arange(n), world.shape)
    return m, r, c


def _wait_until(world: SimWorld, t: float) -> None:
    world.clock.sleep(max(t - world.clock.now(), 0.0))


def test_64_levels_land_within_half_a_microsiemens_and_spread_grows_with_log_time():
    world = SimWorld(seed=7, n_macros=2)
    m, r, c = _cells(2048, world)
    targets = np.repeat(np.arange(2, 66) * US, 32)  # 64 levels, 32 cells each
    program_and_verify(world, m, r, c, targets)
    t_programmed = world.clock.now()
    err = world.conductance()[m, r, c] - targets
    assert np.mean(np.abs(err) <= 0.5 * US) >= 0.99  # all 64 levels distinguishable
    spread = {}
    for t in (1.0, 1e3, 1e6):
        _wait_until(world, t_programmed + t)
        err = world.conductance()[m, r, c] - targets
        spread[t] = np.percentile(err, 84) - np.percentile(err, 16)  # ~2 sigma, robust
    assert spread[1.0] < spread[1e3] < spread[1e6]
    assert spread[1e6] > 2 * spread[1.0]


def test_eight_levels_spanning_the_window_stay_separable_after_1e6_s():
    world = SimWorld(seed=8, n_macros=1)
    m, r, c = _cells(1024, world)
    levels = np.linspace(3, 115, 8) * US
    targets = np.repeat(levels, 128)
    program_and_verify(world, m, r, c, targets, gate=3.3)
    _wait_until(world, world.clock.now() + 1e6)
    g = world.conductance()[m, r, c].reshape(8, 128)
    for k in range(7):
        mid = 0.5 * (np.median(g[k]) + np.median(g[k + 1]))
        crossed = np.count_nonzero(g[k] > mid) + np.count_nonzero(g[k + 1] < mid)
        assert crossed / 256 <= 0.05, f"levels {k} and {k + 1} overlap"


def test_relaxation_spread_does_not_depend_on_how_often_cells_are_observed():
    finals = []
    for observe_often in (False, True):
        world = SimWorld(seed=9, n_macros=1)
        m, r, c = _cells(1024, world)
        targets = np.full(1024, 30 * US)
        program_and_verify(world, m, r, c, targets)
        t0 = world.clock.now()
        if observe_often:
            for t in np.geomspace(1e-3, 1e5, 25):
                _wait_until(world, t0 + t)
                world.conductance()
        _wait_until(world, t0 + 1e5)
        finals.append(world.conductance()[m, r, c] - targets)
    rare, often = finals
    assert np.std(often) == pytest.approx(np.std(rare), rel=0.15)
    assert abs(np.mean(often) - np.mean(rare)) < 0.2 * np.std(rare)
