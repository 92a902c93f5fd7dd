"""Read noise as a spectrum and its step-exact generator (instruments/sim/noise_spectrum.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, signal

from instruments.sim.device_params import DeviceParams
from instruments.sim.noise_spectrum import (
    CELL_FLICKER_SPAN,
    FLICKER_FIT_TOLERANCE,
    FLICKER_KAPPA_AIHWKIT,
    FLICKER_KAPPA_FIT,
    CellFlicker,
    ReadNoiseGenerator,
    ReadNoiseSpectrum,
    aihwkit_read_sigma,
    column_amplitudes,
    fit_flicker_kappa,
    flicker_sample_factor,
    flicker_structure,
    protocol_spreads,
)
from protocols.characterization.read_noise import ReadNoise

SPEC = ReadNoiseSpectrum()
G_CELL, V_READ = 30e-6, 0.1     # S, V: a mid-window cell at the read bias
PROTOCOL = ReadNoise.Params()    # the windows, intervals, repeats and targets the protocol uses


def window_means(gen: ReadNoiseGenerator, steps: int, white: float, flicker: float) -> np.ndarray:
    """Mean over ``steps`` consecutive steps of the generator's output, per channel."""
    total = np.zeros(gen.shape)
    for _ in range(steps):
        total += gen.step(white, flicker)
    return total / steps


def assert_variance(samples: np.ndarray, expected: float, n_sigma: float = 4.0) -> None:
    """Sample variance (zero-mean samples) within ``n_sigma`` of its sampling error."""
    var = float(np.mean(samples**2))
    tol = n_sigma * math.sqrt(2.0 / samples.size)
    assert abs(var / expected - 1.0) < tol, f"variance {var:.4g} vs theory {expected:.4g} (tol {tol:.3f})"


# -- (a) white noise: the integral over T does not depend on dt ----------------------------------
@pytest.mark.parametrize("divide", [1, 2, 4])
def test_white_noise_integral_over_fixed_time_is_step_independent(divide: int) -> None:
    psd = float(SPEC.white_psd(G_CELL, V_READ))            # A^2/Hz
    dt, t_window, n = 1e-6 / divide, 16e-6, 20_000
    gen = ReadNoiseGenerator(SPEC, n, dt, np.random.default_rng(10 + divide), t_run=1e-4)
    steps = round(t_window / dt)
    charge = window_means(gen, steps, psd, 0.0) * t_window  # integral of the current over T (C)
    # one-sided PSD S: autocovariance (S/2) delta, so the integral over T has variance S T / 2
    assert_variance(charge, psd * t_window / 2.0)


def test_white_psd_is_thermal_plus_shot() -> None:
    kt = 1.380649e-23 * 300.0
    assert SPEC.white_psd(G_CELL, 0.0) == pytest.approx(4 * kt * G_CELL)           # Johnson at 0 V
    big_v = 2.0                                                                     # qV >> 2kT
    assert SPEC.white_psd(G_CELL, big_v) == pytest.approx(2 * 1.602176634e-19 * G_CELL * big_v, rel=1e-6)
    quiet = ReadNoiseSpectrum(fano=0.0)
    assert quiet.white_psd(G_CELL, V_READ) == pytest.approx(4 * kt * G_CELL)


# -- (b) 1/f noise: PSD ~ K I^2 / f, window means independent of dt --------------------------------
def test_flicker_generator_psd_is_one_over_f_over_two_decades() -> None:
    dt, t_run, n_ch, n_steps = 1e-6, 1e-2, 48, 2**15
    gen = ReadNoiseGenerator(SPEC, n_ch, dt, np.random.default_rng(3), t_run=t_run)
    assert gen.corners[0] < 1e3 and gen.corners[-1] > 1e5      # 1 kHz..100 kHz lies between corners
    series = np.empty((n_steps, n_ch))
    for k in range(n_steps):
        series[k] = gen.step(0.0, 1.0)                          # unit 1/f: S(f) = 1/f
    f, pxx = signal.welch(series, fs=1.0 / dt, nperseg=4096, axis=0)
    pxx = pxx.mean(axis=1)
    edges = np.logspace(3, 5, 9)                                # 8 bands over 2 decades
    ratios = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        band = (f >= lo) & (f < hi)
        # the step average is a boxcar of dt: |H|^2 = sinc^2(f dt)
        theory = np.sinc(f[band] * dt) ** 2 / f[band]
        ratios.append(pxx[band].sum() / theory.sum())
    assert np.allclose(ratios, 1.0, atol=0.08), np.round(ratios, 3)
    slope = np.polyfit(np.log(f[(f > 1e3) & (f < 1e5)]), np.log(pxx[(f > 1e3) & (f < 1e5)]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.05)


@pytest.mark.parametrize("divide", [1, 2, 4])
def test_flicker_window_mean_variance_is_step_independent(divide: int) -> None:
    dt, t_window, t_run, n = 1e-6 / divide, 16e-6, 1e-3, 20_000
    gen = ReadNoiseGenerator(SPEC, n, dt, np.random.default_rng(20 + divide), t_run=t_run)
    means = window_means(gen, round(t_window / dt), 0.0, 1.0)
    assert_variance(means, float(SPEC.generator_window_var(t_window, t_run)))


def test_generator_band_matches_hard_band_theory() -> None:
    """The OU sum stands for 1/f between 1/t_run and f_high: window means agree within 1 %
    for 10 / f_high <= T <= t_run / 100 (the OU sum's edges are soft, the band's hard)."""
    t_run = 1e-2
    windows = np.array([1e-6, 1e-5, 1e-4])
    hard = (SPEC.window_mean_var(1.0, 1.0, windows, t_run) - SPEC.white_psd(1.0, 1.0) / (2 * windows)) \
        / SPEC.flicker_amplitude(1.0, 1.0)
    assert np.allclose(SPEC.generator_window_var(windows, t_run), hard, rtol=0.01)


def test_window_mean_var_matches_numerical_integral_of_the_psd() -> None:
    t_run, window = 1e-3, 2e-6
    def integrand(log_f: float) -> float:
        f = math.exp(log_f)
        return f * float(SPEC.psd(f, G_CELL, V_READ, t_run) - SPEC.white_psd(G_CELL, V_READ)) \
            * np.sinc(f * window) ** 2
    flick = integrate.quad(integrand, math.log(1 / t_run), math.log(SPEC.f_high), limit=400)[0]
    white = float(SPEC.white_psd(G_CELL, V_READ)) / (2 * window)
    assert SPEC.window_mean_var(G_CELL, V_READ, window, t_run) == pytest.approx(white + flick, rel=1e-6)


def test_state_persists_across_steps_and_reset_restarts_from_stationary() -> None:
    gen = ReadNoiseGenerator(SPEC, 20_000, 1e-6, np.random.default_rng(4), t_run=1e-3, stationary=False)
    assert not np.any(gen.unit_flicker_state())
    first = gen.step(0.0, 1.0)
    second = gen.step(0.0, 1.0)
    # adjacent step means of 1/f noise are strongly correlated (the slow components persist)
    assert np.corrcoef(first, second)[0, 1] > 0.3
    gen.reset()
    assert_variance(gen.unit_flicker_state(), gen.n_components * gen.component_var)
    assert gen.n_components * gen.component_var == pytest.approx(math.log(SPEC.f_high * 1e-3))


# -- (c) consistency with the device model's read noise --------------------------------------------
def test_fit_to_read_noise_protocol_reproduces_kappa_and_stated_residuals() -> None:
    fit = fit_flicker_kappa(DeviceParams(), PROTOCOL.targets, PROTOCOL.windows, PROTOCOL.intervals,
                            PROTOCOL.repeats, PROTOCOL.bias)
    assert fit.kappa == pytest.approx(FLICKER_KAPPA_FIT, rel=1e-3)
    assert fit.max_abs_residual <= FLICKER_FIT_TOLERANCE
    assert fit.rms_residual == pytest.approx(0.72, abs=0.01)


def test_device_model_window_dependence_is_inconsistent_with_a_spectrum() -> None:
    """The former device model grew 4.5x from 100 ns to 1 ms; a spectrum's spread of reads cannot grow.

    Reads at a fixed spacing: the window-nT mean averages n window-T means, and the sample
    variance is convex, so its expectation cannot rise (any stationary noise). Back to back,
    1/f noise is scale-free: the spread is K I^2 ln N at every window.
    """
    windows = PROTOCOL.windows
    device = aihwkit_read_sigma(np.array(PROTOCOL.targets)[:, None], np.array(windows), DeviceParams())
    assert np.all(np.diff(device, axis=1) > 0) and np.all(device[:, -1] / device[:, 0] > 4.5)
    for spec in (SPEC, ReadNoiseSpectrum.from_device(DeviceParams(), 3.0, fano=0.0)):
        for interval in PROTOCOL.intervals:
            spread = np.array([spec.protocol_spread(G_CELL, V_READ, w, interval, PROTOCOL.repeats)
                               for w in windows])
            assert np.all(np.diff(spread) <= 1e-12 * spread[0])
    for w in windows:
        assert flicker_sample_factor(w, 0.0, PROTOCOL.repeats) == pytest.approx(math.log(PROTOCOL.repeats))


def test_consistent_replacement_reads_device_window_as_observed_span() -> None:
    """With K_f = Q^2 (the world's spectrum now), the former device sigma(G, W) is the spectrum read
    over t_r = 250 ns observed over W: the calibration carried over."""
    p = DeviceParams()
    spec = ReadNoiseSpectrum.from_device(p, FLICKER_KAPPA_AIHWKIT)
    g = np.array([2e-6, 10e-6, 30e-6, 65e-6, 130e-6])
    for span in (1e-5, 1e-4, 1e-3, 1.0):
        ratio = spec.read_sigma(g, p.read_t_r, span) / aihwkit_read_sigma(g, span, p)
        assert np.all(np.abs(np.log(ratio)) < 0.15), (span, ratio)


def test_protocol_spread_matches_generated_back_to_back_reads() -> None:
    repeats, window = 50, 1e-6
    gen = ReadNoiseGenerator(SPEC, 4000, window, np.random.default_rng(6), t_run=1.0)
    white, flicker = SPEC.white_psd(G_CELL, V_READ), SPEC.flicker_amplitude(G_CELL, V_READ)
    reads = np.array([gen.step(white, flicker) for _ in range(repeats)])   # one step = one read
    spread2 = np.mean(np.var(reads, axis=0))
    expected = SPEC.protocol_spread(G_CELL, V_READ, window, 0.0, repeats) ** 2
    assert spread2 == pytest.approx(expected, rel=0.05)


def test_flicker_structure_matches_numerical_integral() -> None:
    def plain(u: float) -> float:
        return math.sin(u) ** 2 / u**3
    for lam in (0.5, 1.0, 3.0, 100.0):
        def near_zero(u: float, lam: float = lam) -> float:
            return math.sin(u) ** 2 * (1 - math.cos(2 * lam * u)) / u**3
        # beyond u = 1 the cosine goes to quad's Fourier-integral rule
        tail = integrate.quad(plain, 1, np.inf, limit=400)[0] \
            - integrate.quad(plain, 1, np.inf, weight="cos", wvar=2 * lam)[0]
        num = integrate.quad(near_zero, 0, 1)[0] + tail
        assert flicker_structure(lam) == pytest.approx(num, rel=1e-4)


def test_protocol_spreads_shape_and_device_column() -> None:
    ours, theirs = protocol_spreads(DeviceParams(), 1.0, [2e-6, 30e-6], [1e-6, 1e-3], [0.0, 1.0], 50, 0.1)
    assert ours.shape == theirs.shape == (2, 2, 2)
    assert np.allclose(theirs[..., 0], theirs[..., 1])      # the former device model ignored the interval


# -- (d) longer integration averages white noise down -----------------------------------------------
def test_longer_integration_averages_white_noise_down() -> None:
    dt, n = 1e-6, 20_000
    psd = float(SPEC.white_psd(G_CELL, V_READ))
    gen = ReadNoiseGenerator(SPEC, n, dt, np.random.default_rng(8), t_run=1e-4)
    stds = [math.sqrt(np.mean(window_means(gen, steps, psd, 0.0) ** 2)) for steps in (4, 16, 64)]
    assert stds[0] / stds[1] == pytest.approx(2.0, rel=0.05)
    assert stds[1] / stds[2] == pytest.approx(2.0, rel=0.05)
    windows = np.array([1e-7, 1e-6, 1e-5, 1e-3])
    theory = SPEC.white_psd(G_CELL, V_READ) / (2 * windows)
    assert np.allclose(np.sqrt(theory[:-1] / theory[1:]), np.sqrt(windows[1:] / windows[:-1]))
    total = SPEC.window_mean_var(G_CELL, V_READ, windows, 1e-2)
    assert np.all(np.diff(total) < 0)                                  # 1/f cannot undo it


# -- crossbar columns ----------------------------------------------------------------------------------
def test_column_amplitudes_sum_the_cells() -> None:
    rng = np.random.default_rng(9)
    g_pos, g_neg = rng.uniform(2e-6, 100e-6, (2, 5, 3))
    v = rng.uniform(-0.3, 0.3, (4, 5))
    white, flicker = column_amplitudes(SPEC, g_pos, g_neg, v)
    for t in range(4):
        for j in range(3):
            w = sum(SPEC.white_psd(g[i, j], v[t, i]) for g in (g_pos, g_neg) for i in range(5))
            f = sum(SPEC.flicker_amplitude(g[i, j], v[t, i]) for g in (g_pos, g_neg) for i in range(5))
            assert white[t, j] == pytest.approx(w, rel=1e-12)
            assert flicker[t, j] == pytest.approx(f, rel=1e-12)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="fano"):
        ReadNoiseSpectrum(fano=1.5)
    with pytest.raises(ValueError, match="dt"):
        ReadNoiseGenerator(SPEC, 3, 0.0, np.random.default_rng(), t_run=1e-3)
    with pytest.raises(ValueError, match="t_run"):
        ReadNoiseGenerator(SPEC, 3, 1e-6, np.random.default_rng(), t_run=1e-7)


# -- the world's cells -----------------------------------------------------------------------------------
def test_cell_flicker_reads_have_the_band_and_keep_each_cells_memory() -> None:
    """Unit 1/f means of 20k cells: a read's variance is the OU band's over [1 / CELL_FLICKER_SPAN,
    f_high]; the next read, back to back, or the same cell listed twice in one batch (read twice
    in a row), keeps the OU covariance; a cell read again much later than the span has forgotten."""
    n, window = 20_000, 1e-6
    idx = np.arange(n)
    cells = CellFlicker(SPEC, n)
    rng = np.random.default_rng(12)
    first = cells.read(idx, 0.0, window, rng)
    second = cells.read(idx, window, window, rng)
    pair = cells.read(np.repeat(idx, 2), 2 * window, window, rng).reshape(n, 2)
    later = cells.read(idx, 1e4 * CELL_FLICKER_SPAN, window, rng)
    corners, var = SPEC.flicker_components(CELL_FLICKER_SPAN)
    a = 2 * math.pi * corners * window
    cov = float(np.sum(var * np.expm1(-a) ** 2 / a**2))
    assert_variance(first, float(SPEC.generator_window_var(window, CELL_FLICKER_SPAN)))
    for x, y in ((first, second), (pair[:, 0], pair[:, 1])):
        assert np.mean(x * y) == pytest.approx(cov, abs=4 * np.var(x) / math.sqrt(n))
    assert abs(np.corrcoef(first, later)[0, 1]) < 4 / math.sqrt(n)
    assert np.all(cells.t == 1e4 * CELL_FLICKER_SPAN + window)


def test_world_state_without_flicker_arrays_loads_with_unseen_cells() -> None:
    cells = CellFlicker(SPEC, 4)
    cells.read(np.arange(4), 0.0, 1e-6, np.random.default_rng(0))
    saved = cells.state_dict()
    fresh = CellFlicker(SPEC, 4)
    fresh.load_state_dict({})                                  # a file from before issue 14
    assert np.all(np.isneginf(fresh.t))
    fresh.load_state_dict(saved)
    np.testing.assert_array_equal(fresh.state, cells.state)
    np.testing.assert_array_equal(fresh.t, cells.t)
