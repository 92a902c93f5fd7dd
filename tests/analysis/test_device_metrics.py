"""Device metrics on inputs whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import device_metrics as dm


def test_write_verify_stats_counts_errors_pulses_and_flags():
    target = np.full(4, 10e-6)
    programmed = target + np.array([0.1e-6, -0.1e-6, 0.3e-6, np.nan])
    s = dm.write_verify_stats(target, programmed, pulses_per_cell=np.array([1, 3, 5, 60]),
                              converged=np.array([1, 1, 0, 0]), stuck=np.array([0, 0, 0, 1]), tolerance=0.2e-6)
    assert s.cells == 4 and s.converged_fraction == 0.5 and s.stuck_fraction == 0.25
    assert s.pulses_max == 60 and s.pulses_median == 4
    assert s.error_rms == pytest.approx(np.sqrt((0.01 + 0.01 + 0.09) / 3) * 1e-6)
    assert s.within_tolerance_fraction == pytest.approx(2 / 3), "NaN read-backs are left out"


def test_convergence_gives_each_cells_error_after_its_kth_pulse_and_holds_the_last():
    target = np.array([10e-6, 20e-6])
    cell = np.array([0, 1, 0, 1, 1])
    read = np.array([5e-6, 15e-6, 9e-6, 18e-6, 20e-6])
    k, err = dm.convergence(cell, read, target)
    assert k.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(err[0, 1:], [5e-6, 1e-6, 1e-6])  # cell 0 stopped after 2 pulses
    np.testing.assert_allclose(err[1, 1:], [5e-6, 2e-6, 0.0], atol=1e-18)
    assert np.isnan(err[:, 0]).all(), "no initial read given"


def test_cell_index_finds_pulse_cells_in_the_programmed_list():
    idx = dm.cell_index([0, 1, 0], [2, 0, 9], [3, 1, 9], cell_macro=[1, 0], cell_row=[0, 2], cell_col=[1, 3])
    assert idx.tolist() == [1, 0, -1]


def _loop(v_set: float, v_reset: float, g_on: float, g_off: float) -> tuple[np.ndarray, np.ndarray]:
    """Ideal bipolar loop: HRS up to v_set, LRS down through 0 to v_reset, then HRS again."""
    up = np.arange(0.0, 1.5, 0.02)
    v = np.concatenate([up, up[::-1], -up, -up[::-1]])
    state_on = np.concatenate([up >= v_set, np.ones(up.size, bool), -up > v_reset, np.zeros(up.size, bool)])
    return v, v * np.where(state_on, g_on, g_off)


def test_iv_parameters_recover_set_reset_voltages_and_on_off_ratio():
    v, i = _loop(v_set=1.0, v_reset=-0.8, g_on=100e-6, g_off=5e-6)
    p = dm.iv_parameters(v, i)
    assert p.set_voltage == pytest.approx(1.0, abs=0.021)
    assert p.reset_voltage == pytest.approx(-0.8, abs=0.021)
    assert p.on_off_ratio == pytest.approx(20.0, rel=1e-6)


def test_levels_well_apart_are_all_separable_and_overlapping_ones_are_not():
    rng = np.random.default_rng(0)
    target = np.linspace(2e-6, 65e-6, 64)
    level = np.repeat(np.arange(64), 50)
    tight = dm.level_separability(target[level] + rng.normal(0, 0.1e-6, level.size), level, target)
    assert tight.separable == 64 and tight.overlap == 0.0 and tight.min_gap_over_sigma > 6
    loose = dm.level_separability(target[level] + rng.normal(0, 1e-6, level.size), level, target)
    assert loose.separable < 64 and 0.2 < loose.overlap < 0.8


def test_retention_fit_recovers_the_growth_of_spread_per_decade():
    rng = np.random.default_rng(1)
    t = np.geomspace(1, 1e6, 13)
    sigma = 0.5e-6 + 0.2e-6 * np.log10(t)  # S
    level = np.repeat(np.arange(4), 2000)
    noise = rng.standard_normal((t.size, level.size)) * sigma[:, None]
    g = np.array([10e-6, 30e-6, 50e-6, 70e-6])[level][None, :] + noise
    fit = dm.retention_fit(t, g, level)
    assert fit.slope_per_decade == pytest.approx(0.2e-6, rel=0.05)
    assert fit.sigma_1s == pytest.approx(0.5e-6, rel=0.05)
    assert fit.sigma_at["1e+06"] == pytest.approx(1.7e-6, rel=0.05)
    assert abs(fit.drift_per_decade) < 0.02e-6


def test_read_noise_exponent_is_minus_half_for_thermal_like_noise():
    rng = np.random.default_rng(2)
    w = np.geomspace(1e-7, 1e-3, 5)
    rel = 1e-3 * np.sqrt(1e-6 / w)
    reads = 20e-6 * (1 + rel[:, None, None] * rng.standard_normal((5, 400, 30)))
    rn = dm.read_noise_vs_window(w, reads)
    assert rn.exponent == pytest.approx(-0.5, abs=0.05)
    np.testing.assert_allclose(rn.relative_sigma, rel, rtol=0.1)


def test_noise_spectrum_of_white_reads_is_flat_at_two_sigma_squared_dt():
    rng = np.random.default_rng(3)
    sigma, dt = 0.1e-6, 1e-3
    f, psd = dm.noise_spectrum(20e-6 + sigma * rng.standard_normal((1024, 64)), dt)
    assert f[0] == pytest.approx(1 / (1024 * dt)) and f[-1] == pytest.approx(1 / (2 * dt))
    assert np.median(psd) == pytest.approx(2 * sigma**2 * dt, rel=0.1)


@pytest.mark.parametrize(("call", "name"), [
    (lambda: dm.write_verify_stats(np.array([]), np.array([])), "target"),
    (lambda: dm.iv_parameters(np.zeros(5), np.zeros(4)), "voltage, current"),
    (lambda: dm.retention_fit(np.array([0.0, 1.0]), np.zeros((2, 3))), "time"),
    (lambda: dm.noise_spectrum(np.zeros((8, 2)), dt=0), "dt"),
    (lambda: dm.read_noise_vs_window(np.array([1e-6]), np.zeros((1, 1, 3))), "reads"),
])
def test_bad_input_is_refused_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
