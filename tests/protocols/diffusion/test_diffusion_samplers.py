"""VP-SDE formulas and the two samplers, checked against the exactly solvable case:
Gaussian data, whose score is known in closed form at every diffusion time."""

import numpy as np
import pytest

from protocols.diffusion.samplers import (
    sample_probability_flow,
    sample_reverse_sde,
    time_grid,
)
from protocols.diffusion.sde import VPSDE

MU = np.array([0.5, -0.3])   # data mean
S = 0.2                      # data standard deviation per coordinate
SDE = VPSDE().scaled(2.0)    # the ring's sampling schedule


def marginal_var(sde, t):
    m, s = sde.marginal(t)
    return m**2 * S**2 + s**2


def exact_score(sde):
    def score(x, t):
        m, _ = sde.marginal(t)
        return -(x - m * MU) / marginal_var(sde, t)
    return score


def start_states(sde, n, seed):
    m1, _ = sde.marginal(1.0)
    z = np.random.default_rng(seed).standard_normal((n, 2))
    return m1 * MU + np.sqrt(marginal_var(sde, 1.0)) * z


def test_marginal_matches_a_simulation_of_the_forward_sde():
    sde = VPSDE(0.1, 20.0)
    rng = np.random.default_rng(0)
    x = np.full((20000, 1), 2.0)
    grid = np.linspace(0.0, 0.5, 2001)
    for t0, t1 in zip(grid[:-1], grid[1:], strict=True):
        dt = t1 - t0
        x = x + sde.drift(x, t0) * dt + sde.diffusion(t0) * np.sqrt(dt) * rng.standard_normal(x.shape)
    m, s = sde.marginal(0.5)
    assert abs(x.mean() - 2.0 * m) < 0.02
    assert abs(x.std() - s) < 0.02


def test_marginal_is_variance_preserving_and_starts_at_the_data():
    sde = VPSDE()
    t = np.linspace(0, 1, 11)
    m, s = sde.marginal(t)
    assert m[0] == 1.0 and s[0] == 0.0
    np.testing.assert_allclose(m**2 + s**2, 1.0)
    assert np.all(np.diff(m) < 0)


def test_probability_flow_maps_exact_gaussian_marginal_onto_the_data_per_sample():
    x1 = start_states(SDE, 500, seed=1)
    res = sample_probability_flow(exact_score(SDE), SDE, x1, n_steps=2000, t_end=1e-4)
    m1, _ = SDE.marginal(1.0)
    m_end, _ = SDE.marginal(1e-4)
    ratio = np.sqrt(marginal_var(SDE, 1e-4) / marginal_var(SDE, 1.0))
    exact = m_end * MU + ratio * (x1 - m1 * MU)     # closed-form PF-ODE flow for Gaussians
    assert np.max(np.abs(res.final - exact)) < 2e-3


def test_probability_flow_error_shrinks_with_more_euler_steps():
    x1 = start_states(SDE, 200, seed=2)
    m1, _ = SDE.marginal(1.0)
    ratio = np.sqrt(marginal_var(SDE, 1e-4) / marginal_var(SDE, 1.0))
    exact = SDE.marginal(1e-4)[0] * MU + ratio * (x1 - m1 * MU)
    errors = [np.abs(sample_probability_flow(exact_score(SDE), SDE, x1, n).final - exact).max()
              for n in (50, 200)]
    assert errors[1] < errors[0] / 2


def test_reverse_sde_recovers_the_gaussian_data_distribution():
    x1 = start_states(SDE, 20000, seed=3)
    res = sample_reverse_sde(exact_score(SDE), SDE, x1, np.random.default_rng(4), n_steps=500)
    np.testing.assert_allclose(res.final.mean(axis=0), MU, atol=0.01)
    np.testing.assert_allclose(res.final.std(axis=0), S, rtol=0.03)


def test_snapshots_hold_the_start_the_requested_times_and_the_end():
    x1 = start_states(SDE, 10, seed=5)
    res = sample_probability_flow(exact_score(SDE), SDE, x1, n_steps=100,
                                  snapshot_times=[0.5])
    np.testing.assert_allclose(res.times, [1.0, 0.5, 1e-4], atol=1e-2)
    np.testing.assert_array_equal(res.snapshots[0], x1)
    np.testing.assert_array_equal(res.snapshots[-1], res.final)


@pytest.mark.parametrize("n_steps,t_end", [(0, 1e-4), (10, 0.0), (10, 1.5), (2.5, 1e-4)])
def test_bad_time_grids_are_refused(n_steps, t_end):
    with pytest.raises(ValueError):
        time_grid(n_steps, 1.0, t_end)


def test_negative_beta_schedule_is_refused():
    with pytest.raises(ValueError, match="beta_min"):
        VPSDE(0.5, 0.1)
