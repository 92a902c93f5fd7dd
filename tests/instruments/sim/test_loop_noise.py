"""Read noise of the circuit-level loop from the cells' spectrum (instruments/sim/loop_noise.py)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from instruments.sim.device_params import DeviceParams
from instruments.sim.loop_noise import (
    FLICKER_BLOCK,
    LOOP_PER_DECADE,
    BlockNoise,
    UnitUniforms,
    flicker_block,
    layer_noise,
)
from instruments.sim.noise_spectrum import ReadNoiseSpectrum, column_amplitudes

R_F, H = 20e3, 1e-6
SPEC = ReadNoiseSpectrum.from_device(DeviceParams(), per_decade=LOOP_PER_DECADE)


def one_cell_layer(t_run: float, h: float = H, interval: float = H):
    """A layer of one input row and one output (its pair 30 uS / 2 uS), no bias rows."""
    g_pos, g_neg = np.array([[30e-6]]), np.array([[2e-6]])
    return layer_noise(g_pos, g_neg, n_bias=0, v_bias=0.0, r_feedback=R_F, device=DeviceParams(), scale=1.0,
                       h=h, interval=interval, t_run=t_run)


def unit_flicker(t_run: float, n: int, intervals: int, seed: int) -> np.ndarray:
    """(intervals, n) interval means of the unit 1/f process the loop draws (row held at 0.4 V)."""
    ln = one_cell_layer(t_run)
    noise = BlockNoise([ln], n, np.random.default_rng(seed))
    u = np.full((1, n), 0.4, dtype=np.float32)
    amp = math.sqrt(float(ln.amplitudes(u[:, :1])[1][0, 0]))
    zero = np.zeros((1, n), dtype=np.float32)
    out = np.empty((intervals, n))
    for i in range(intervals):
        noise.interval(0, u)
        out[i] = noise.substep(0, zero)[0] / amp
    return out


@pytest.mark.parametrize("t_run", [2e-4, 1e-3])
def test_block_draws_have_the_generator_window_variances(t_run: float) -> None:
    """Blocks of L intervals drawn jointly: windows of 1..64 intervals, inside a block or across
    block edges, have the variance of the OU sum stepped interval by interval (exact law)."""
    n, intervals = 20_000, 64
    means = unit_flicker(t_run, n, intervals, seed=1)
    for start, length in ((0, 1), (5, 1), (6, 3), (0, 8), (4, 8), (3, 20), (0, 64)):
        window = means[start:start + length].mean(axis=0)
        expected = float(SPEC.generator_window_var(length * H, t_run))
        tol = 4 * math.sqrt(2 / n)
        assert abs(np.var(window) / expected - 1) < tol, (start, length, np.var(window), expected)
    # the state persists across blocks: the first and the last interval keep the OU sum's covariance
    corners, var = SPEC.flicker_components(t_run)
    a = 2 * math.pi * corners * H
    expected = float(np.sum(var * (-np.expm1(-a)) ** 2 / a**2 * np.exp(-a * (intervals - 1))))
    assert np.mean(means[0] * means[-1]) == pytest.approx(expected, abs=4 * np.var(means[0]) / math.sqrt(n))


def test_flicker_block_is_a_square_root_of_the_stepwise_covariance() -> None:
    """The block's (means, end states) covariance from b, c equals the one of L single steps."""
    b, c, std = flicker_block(SPEC, H, 1e-3, FLICKER_BLOCK)
    m = b.shape[1]
    cov = b @ np.diag(std**2) @ b.T + c @ c.T                 # x0 stationary
    # stationarity: the end states' covariance is the start's
    np.testing.assert_allclose(np.diag(cov)[FLICKER_BLOCK:], std**2, rtol=1e-9)
    # one interval mean has the generator's variance
    assert cov[0, 0] == pytest.approx(float(SPEC.generator_window_var(H, 1e-3)), rel=1e-9)
    assert cov.shape == (FLICKER_BLOCK + m, FLICKER_BLOCK + m)


def test_layer_amplitudes_are_the_column_amplitudes_at_the_tia_output() -> None:
    rng = np.random.default_rng(3)
    g_pos, g_neg = rng.uniform(2e-6, 100e-6, (2, 6, 3))       # 5 input rows and 1 bias row
    v_bias, scale, h = 0.2, 3.0, 0.5e-6
    ln = layer_noise(g_pos, g_neg, n_bias=1, v_bias=v_bias, r_feedback=R_F, device=DeviceParams(), scale=scale,
                     h=h, interval=1e-6, t_run=1e-3)
    v = rng.uniform(-0.5, 0.5, (4, 5))
    white, flicker = ln.amplitudes(v.T)
    spec = ReadNoiseSpectrum.from_device(DeviceParams())
    w_ref, f_ref = column_amplitudes(spec, g_pos, g_neg, np.hstack([v, np.full((4, 1), v_bias)]))
    gain = (scale * R_F) ** 2
    np.testing.assert_allclose(white.T, gain * w_ref / (2 * h), rtol=1e-5)      # variance per sub-step
    np.testing.assert_allclose(flicker.T, gain * f_ref, rtol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_interval_charge_does_not_depend_on_the_substep(k: int) -> None:
    """What an integrator collects over a board interval: the 1/f interval mean (held) plus
    white noise of variance S / 2h per sub-step, i.e. S / (2 dt) for the interval's mean."""
    n = 40_000
    ln = one_cell_layer(1e-3, h=H / k, interval=H)
    noise = BlockNoise([ln], n, np.random.default_rng(10 + k))
    u = np.full((1, n), 0.4, dtype=np.float32)
    white, flicker = (float(a[0, 0]) for a in ln.amplitudes(u[:, :1]))
    source = np.random.default_rng(20 + k)
    noise.interval(0, u)
    total = sum(noise.substep(0, source.standard_normal((1, n), dtype=np.float32)).astype(float)
                for _ in range(k)) / k
    expected = flicker * float(SPEC.generator_window_var(H, 1e-3)) + white / k
    assert np.var(total) == pytest.approx(expected, rel=4 * math.sqrt(2 / n))


def test_white_share_of_an_interval_is_small_but_there() -> None:
    ln = one_cell_layer(1e-3)
    white, flicker = (float(a[0, 0]) for a in ln.amplitudes(np.array([[0.1]])))
    share = white / (white + flicker * float(SPEC.generator_window_var(H, 1e-3)))
    assert 1e-4 < share < 1e-2


def test_spectrum_with_more_components_per_decade_changes_windows_little() -> None:
    fine = replace(SPEC, per_decade=4.0)
    windows = np.array([1, 10, 100]) * H
    np.testing.assert_allclose(SPEC.generator_window_var(windows, 1e-3), fine.generator_window_var(windows, 1e-3),
                               rtol=0.02)


def test_white_variates_have_unit_variance_and_are_independent() -> None:
    source = UnitUniforms(np.random.default_rng(4), 50_000, 3)
    a, b = source.draw().astype(float), source.draw().astype(float)
    assert a.shape == (3, 50_000)
    assert abs(a.mean()) < 0.01 and abs(a.var() - 1) < 0.01
    assert np.abs(a).max() <= math.sqrt(3) and abs(np.corrcoef(a[0], b[0])[0, 1]) < 0.02
    assert abs(np.corrcoef(a[0], a[1])[0, 1]) < 0.02
