"""Read noise of a cell as a spectrum, and its step-exact generator for the circuit simulator.

A cell read at voltage V with chord conductance G carries a noise current with the
one-sided power spectral density (A^2/Hz, ``docs/circuit-noise.md``)::

    S_I(f) = S_w + K_f(G) I^2 / f          for 1/t_run <= f <= f_high,   I = G V
    S_w    = 4 k T G [(1 - F) + F u coth u],   u = q V / (2 k T)

S_w is white: thermal (4 k T G) and shot noise (2 q I F) joined as in a mesoscopic
conductor, so that V -> 0 leaves Johnson noise and qV >> kT leaves shot noise without
counting the same fluctuation twice. The 1/f term is a Hooge-type conductance
fluctuation; K_f is dimensionless and falls with G (fewer carriers, more relative noise
in a thin filament). Below 1/t_run, 1/f noise is a constant offset during a run: a
conductance error, not read noise.

A window of length T averages the current; its mean has variance::

    S_w / (2 T) + K_f I^2 [Fc(pi T / t_run) - Fc(pi f_high T)]
    Fc(x) = int_x^inf sin^2(u) / u^3 du = sin^2 x / (2 x^2) + sin(2x) / (2x) - Ci(2x)

(:meth:`ReadNoiseSpectrum.window_mean_var`): white noise averages down as 1/T, the
1/f band between 1/t_run and ~1/T contributes K_f I^2 (ln(t_run / T) - 0.915).

:class:`ReadNoiseGenerator` draws the noise current averaged over each simulator step
dt, exactly (not approximately) in distribution, so every window that is a whole number
of steps sees the statistics above whatever dt is: white noise enters each step with
variance S_w / (2 dt); 1/f noise is a sum of Ornstein-Uhlenbeck processes with
log-spaced corners, each stepped by its exact transition and exact step integral.

The simulated world's cells carry this spectrum (:func:`device_spectrum`, K_f = Q^2 of the
device parameters): :class:`CellFlicker` keeps every cell's 1/f state over the world's
life, so repeated reads are correlated as 1/f noise is, and :func:`read_noise_sigma`
gives the spread of one read about the cell's conductance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from instruments.sim.device_params import DeviceParams
from instruments.sim.device_physics import BOLTZMANN

ELEMENTARY_CHARGE = 1.602176634e-19  # C (SI 2019, exact)

#: kappa of the least-squares fit of the spectrum to the former device model
#: (:func:`aihwkit_read_sigma`, read noise before issue 14) over the
#: read-noise protocol's windows (1e-7, 1e-6, 1e-5, 1e-3 s), intervals (0, 1 s), 50
#: repeats, targets 2, 10, 30, 65 uS at 0.1 V: K_f(G) = (kappa Q(G))^2 with Q the
#: device model's 1/f coefficient. :func:`fit_flicker_kappa` recomputes it (tested).
FLICKER_KAPPA_FIT = 0.5141

#: Largest |ln(spectrum spread / device spread)| of that fit (a factor 3.9; rms 0.72, a
#: factor 2.1): no stationary spectrum reproduces the former device model's growth with
#: the window (``docs/circuit-noise.md``).
FLICKER_FIT_TOLERANCE = 1.36

#: kappa of the device model's spectrum (the world's read noise): K_f = Q^2 reads aihwkit's
#: sigma = G Q sqrt(ln((t + t_r) / (2 t_r))) as 1/f noise observed over t, read over t_r.
FLICKER_KAPPA_AIHWKIT = 1.0

#: s, the slowest time scale of a world cell's 1/f read noise: its band starts at
#: 1 / CELL_FLICKER_SPAN = 0.1 Hz. Slower conductance changes are relaxation (ln t after
#: programming, ``device_physics.relaxation_sigma``); 10 s keeps the whole span of the
#: read-noise protocol's back-to-back series (<= 50 ms) inside the band (its spread
#: then differs from pure 1/f by < 0.1 %).
CELL_FLICKER_SPAN = 10.0

_EULER_GAMMA = 0.5772156649015329


def _fc(x: np.ndarray) -> np.ndarray:
    """Fc(x) = int_x^inf sin^2 u / u^3 du (x > 0): per unit K I^2, the 1/f power above x / (pi T) a window T passes.

    Closed form by parts; below x = 1e-3 the series ln(1/x) + 3/2 - gamma - ln 2 + x^2/6
    avoids the cancellation of the closed form.
    """
    from scipy import special  # here, not at the top: the world imports this module, scipy costs ~1 s

    x = np.asarray(x, dtype=float)
    small = x < 1e-3
    xs = np.where(small, 1.0, x)
    _, ci = special.sici(2.0 * xs)
    closed = np.sin(xs) ** 2 / (2.0 * xs**2) + np.sin(2.0 * xs) / (2.0 * xs) - ci
    xt = np.where(small, x, 1.0)
    series = -np.log(xt) + 1.5 - _EULER_GAMMA - math.log(2.0) + xt**2 / 6.0
    return np.where(small, series, closed)


def _x2lnx(y: np.ndarray) -> np.ndarray:
    y = np.abs(np.asarray(y, dtype=float))
    return np.where(y > 0, y**2 * np.log(np.where(y > 0, y, 1.0)), 0.0)


def flicker_structure(lag_over_window: np.ndarray) -> np.ndarray:
    """E[(m_a - m_b)^2] / (2 K I^2) of two window means of pure 1/f noise, starts ``L`` apart.

    Argument lambda = L / T (>= 0). Closed form of int_0^inf sinc^2(pi f T)(1 - cos 2 pi f L) df / f:
    G = [(1+l)^2 ln(1+l) + (1-l)^2 ln|1-l| - 2 l^2 ln l] / 2 = ln l + 3/2 - 1/(12 l^2) - ...
    Finite without any low-frequency cutoff: differences of reads see no offset.
    """
    lam = np.asarray(lag_over_window, dtype=float)
    # the closed form subtracts terms ~ l^2 ln l: beyond l = 30 its asymptotic series instead
    large = lam > 30.0
    ll = np.where(large, lam, 1.0)
    inv2 = 1.0 / ll**2
    series = np.log(ll) + 1.5 - inv2 / 12.0 - inv2**2 / 60.0 - inv2**3 / 168.0
    ls = np.where(large, 0.0, lam)
    closed = 0.5 * (_x2lnx(1.0 + ls) + _x2lnx(1.0 - ls) - 2.0 * _x2lnx(ls))
    return np.where(large, series, closed)


def flicker_sample_factor(window: float, interval: float, repeats: int) -> float:
    """Expected sample variance (ddof 0) of ``repeats`` reads, over K I^2, of pure 1/f noise.

    Reads average over ``window`` (s) and start every ``window + interval`` s, as the
    read-noise protocol takes them. E[s^2] = (1/N^2) sum_{k<l} E[(m_k - m_l)^2].
    """
    n = int(repeats)
    m = np.arange(1, n)
    lam = m * (window + interval) / window
    return float(2.0 * np.sum((n - m) * flicker_structure(lam)) / n**2)


@dataclass(frozen=True)
class ReadNoiseSpectrum:
    """Current-noise spectrum of one cell (SI units); see the module docstring for the formula.

    Defaults: :meth:`from_device` of the default :class:`DeviceParams` (kappa = 1): the
    simulated world's cells.

    temperature: K, of the cell (Johnson noise). fano: shot-noise Fano factor (0..1;
    1 = full 2 q I, an upper bound: filaments near the conductance quantum 77.5 uS
    suppress it). kf_ref: K_f (dimensionless) at ``g_ref`` (S); kf_exp: K_f grows as
    (G / g_ref)^-kf_exp below g_ref; kf_max: cap on K_f. f_high: Hz, upper edge of the
    1/f band (cutting it there changes the std of windows >= 100 ns by < 0.3 %,
    of windows >= 1 us by < 0.01 %: the white floor takes over near 30-100 MHz anyway). per_decade: OU components per
    decade of the generator's 1/f band (2 keeps the PSD ripple below 0.1 %).
    """

    temperature: float = DeviceParams.temperature
    fano: float = 1.0
    kf_ref: float = (FLICKER_KAPPA_FIT * DeviceParams.read_q0) ** 2
    kf_exp: float = 2.0 * DeviceParams.read_q_exp
    kf_max: float = (FLICKER_KAPPA_FIT * DeviceParams.read_q_max) ** 2
    g_ref: float = DeviceParams.g_max
    f_high: float = 1e7
    per_decade: float = 2.0

    def __post_init__(self) -> None:
        for name in ("temperature", "g_ref", "f_high", "per_decade"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ReadNoiseSpectrum.{name} must be a positive finite number, got {value!r}")
        for name in ("kf_ref", "kf_max"):           # 0: no 1/f noise (a device with read_q0 = 0)
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"ReadNoiseSpectrum.{name} must be a finite number >= 0, got {value!r}")
        if not 0.0 <= self.fano <= 1.0:
            raise ValueError(f"ReadNoiseSpectrum.fano must lie in [0, 1], got {self.fano!r}")
        if not (math.isfinite(self.kf_exp) and self.kf_exp >= 0):
            raise ValueError(f"ReadNoiseSpectrum.kf_exp must be >= 0, got {self.kf_exp!r}")

    @classmethod
    def from_device(cls, params: DeviceParams, kappa: float = FLICKER_KAPPA_FIT,
                    **kw: float) -> ReadNoiseSpectrum:
        """Spectrum whose 1/f coefficient is (kappa Q)^2, Q = min(q0 / x^qe, q_max) of ``params``.

        kappa = 1 reads aihwkit's form sigma = G Q sqrt(ln((t + t_r) / (2 t_r))) as 1/f
        noise between 1/t (time observed) and ~1/(2 t_r) (read window): K_f = Q^2.
        """
        return cls(temperature=params.temperature, kf_ref=(kappa * params.read_q0) ** 2,
                   kf_exp=2.0 * params.read_q_exp, kf_max=(kappa * params.read_q_max) ** 2,
                   g_ref=params.g_max, **kw)

    # -- the spectrum of one cell ----------------------------------------------------------
    def thermal_psd(self, g: np.ndarray | float) -> np.ndarray:
        """Johnson current noise 4 k T G (A^2/Hz, one-sided) of conductance ``g`` (S)."""
        return 4.0 * BOLTZMANN * self.temperature * np.abs(np.asarray(g, dtype=float))

    def white_psd(self, g: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
        """White current noise (A^2/Hz, one-sided) of ``g`` (S) read at ``v`` (V): thermal plus shot.

        4 k T G [(1 - F) + F u coth u], u = q|V| / 2kT: for F = 1 this is 2 q I coth u, the
        full shot noise 2 q I at |V| >> 2kT/q = 52 mV (1.9x thermal at 0.1 V), thermal at 0 V.
        """
        u = ELEMENTARY_CHARGE * np.abs(np.asarray(v, dtype=float)) / (2.0 * BOLTZMANN * self.temperature)
        return self.thermal_psd(g) * (1.0 + self.fano * _u_coth_u_minus_1(u))

    def flicker_coefficient(self, g: np.ndarray | float) -> np.ndarray:
        """Hooge coefficient K_f (dimensionless) of conductance ``g`` (S): S_1/f = K_f I^2 / f."""
        x = np.maximum(np.abs(np.asarray(g, dtype=float)) / self.g_ref, 1e-12)
        return np.minimum(self.kf_ref * x ** -self.kf_exp, self.kf_max)

    def flicker_amplitude(self, g: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
        """K_f I^2 (A^2): the 1/f noise power per unit of ln f, I = G V."""
        i = np.asarray(g, dtype=float) * np.asarray(v, dtype=float)
        return self.flicker_coefficient(g) * i**2

    def psd(self, f: np.ndarray | float, g: np.ndarray | float, v: np.ndarray | float,
            t_run: float) -> np.ndarray:
        """One-sided current PSD (A^2/Hz) at frequency ``f`` (Hz, > 0), 1/f band [1/t_run, f_high]."""
        f = np.asarray(f, dtype=float)
        in_band = (f >= 1.0 / t_run) & (f <= self.f_high)
        return self.white_psd(g, v) + np.where(in_band, self.flicker_amplitude(g, v) / f, 0.0)

    # -- what a read of a window sees ------------------------------------------------------
    def window_mean_var(self, g: np.ndarray | float, v: np.ndarray | float, window: np.ndarray | float,
                        t_run: float) -> np.ndarray:
        """Variance (A^2) of the current averaged over ``window`` T (s, < t_run).

        S_w / (2T) (a boxcar's noise bandwidth is 1/(2T)) plus the 1/f band from 1/t_run
        (s) to f_high through the boxcar's |H|^2 = sinc^2(pi f T).
        """
        window = np.asarray(window, dtype=float)
        band = _fc(math.pi * window / t_run) - _fc(math.pi * self.f_high * window)
        return self.white_psd(g, v) / (2.0 * window) + self.flicker_amplitude(g, v) * band

    def read_sigma(self, g: np.ndarray | float, window: np.ndarray | float, t_run: float,
                   bias: float = 0.1) -> np.ndarray:
        """Std (S) of the conductance I/V read over ``window`` (s) within ``t_run`` (s) at ``bias`` (V).

        The device model's read noise (:func:`read_noise_sigma`): it falls with the window and
        grows (as sqrt(ln t_run)) with the time observed.
        """
        return np.sqrt(self.window_mean_var(g, bias, window, t_run)) / abs(bias)

    def protocol_spread(self, g: np.ndarray | float, v: float, window: float, interval: float,
                        repeats: int) -> np.ndarray:
        """Expected std (A, ddof 0) of ``repeats`` reads as the read-noise protocol takes them.

        Reads average over ``window`` (s), ``interval`` (s) apart; non-overlapping windows make
        the white parts independent. No t_run: the spread of the reads sees only 1/f noise
        faster than their span. (f_high is ignored: < 0.3 % for windows >= 100 ns.)
        """
        n = int(repeats)
        white = self.white_psd(g, v) / (2.0 * window) * (1.0 - 1.0 / n)
        flicker = self.flicker_amplitude(g, v) * flicker_sample_factor(window, interval, n)
        return np.sqrt(white + flicker)

    def generator_protocol_spread(self, g: np.ndarray | float, v: float, window: float, interval: float,
                                  repeats: int, t_run: float) -> np.ndarray:
        """:meth:`protocol_spread` of the generator's OU sum over [1/t_run, f_high] (A, ddof 0), exact.

        What the simulated world's cells give (``t_run = CELL_FLICKER_SPAN``): the same as
        :meth:`protocol_spread` within 1 % for windows >= 1 us read back to back (7 % less
        variance at 100 ns: the OU sum's soft upper edge), less where the reads span more than ~t_run / 10
        (no 1/f band below 1/t_run). Window means of a component (variance v, rate lambda,
        a = lambda T) have variance v 2 (a - 1 + e^-a) / a^2 and, with starts L >= T apart,
        covariance v (1 - e^-a)^2 / a^2 exp(-lambda (L - T)).
        """
        n = int(repeats)
        corners, var = self.flicker_components(t_run)
        rate = 2.0 * math.pi * corners
        a = rate * window
        lag = np.arange(1, n)[:, None] * (window + interval) - window
        cov = np.sum(var * np.expm1(-a) ** 2 / a**2 * np.exp(-rate * lag), axis=1)
        factor = float(np.sum(var * _ou_mean_var(a))) * (1.0 - 1.0 / n) \
            - 2.0 / n**2 * float(np.sum((n - np.arange(1, n)) * cov))
        white = self.white_psd(g, v) / (2.0 * window) * (1.0 - 1.0 / n)
        return np.sqrt(white + self.flicker_amplitude(g, v) * factor)

    # -- the generator's 1/f band ------------------------------------------------------------
    def flicker_components(self, t_run: float) -> tuple[np.ndarray, float]:
        """Corner frequencies (Hz) and the variance per unit K I^2 of each OU component.

        M = ceil(per_decade x decades) components, ratio r = (f_high t_run)^(1/M), corners
        f_j = r^(j + 1/2) / t_run. Equal variances ln r give sum_j 4 ln(r) tau_j / (1 + (2 pi f
        tau_j)^2) ~= 1/f between the corners; the total, M ln r = ln(f_high t_run), equals
        the band's, so the sum stands for the band [1/t_run, f_high].
        """
        decades = math.log10(self.f_high * t_run)
        if decades <= 0:
            raise ValueError(f"t_run must exceed 1 / f_high = {1 / self.f_high:g} s, got {t_run!r}")
        m = max(1, math.ceil(self.per_decade * decades - 1e-9))
        ratio = (self.f_high * t_run) ** (1.0 / m)
        corners = ratio ** (np.arange(m) + 0.5) / t_run
        return corners, math.log(ratio)

    def generator_window_var(self, window: np.ndarray | float, t_run: float) -> np.ndarray:
        """Variance of the window mean of the generator's unit 1/f process (per unit K I^2).

        Exact for the OU sum: each component adds 2 v (a - 1 + e^-a) / a^2, a = T / tau.
        """
        corners, var = self.flicker_components(t_run)
        a = np.multiply.outer(np.asarray(window, dtype=float), 2.0 * math.pi * corners)
        return np.sum(var * _ou_mean_var(a), axis=-1)


def _u_coth_u_minus_1(u: np.ndarray) -> np.ndarray:
    """u coth u - 1 (>= 0), by its series u^2/3 - u^4/45 where the closed form cancels."""
    u = np.asarray(u, dtype=float)
    small = u < 1e-3
    us = np.where(small, 1.0, u)
    return np.where(small, u**2 / 3.0 - u**4 / 45.0, us / np.tanh(us) - 1.0)


def _ou_mean_var(a: np.ndarray) -> np.ndarray:
    """Var of the mean of a unit-variance OU process over a = T / tau correlation times.

    2 (a - 1 + e^-a) / a^2, by its series 1 - a/3 + a^2/12 for small a (cancellation).
    """
    a = np.asarray(a, dtype=float)
    small = a < 1e-4
    al = np.where(small, 1.0, a)
    return np.where(small, 1.0 - a / 3.0 + a**2 / 12.0, 2.0 * (al + np.expm1(-al)) / al**2)


def _ou_bridge_var(a: np.ndarray) -> np.ndarray:
    """Var of an OU step mean given both ends, unit variance: 2 (a - 2 tanh(a/2)) / a^2.

    The series a/6 - a^3/60 + 17 a^5/10080 below a = 1e-2, where the closed form cancels.
    """
    a = np.asarray(a, dtype=float)
    small = a < 1e-2
    al = np.where(small, 1.0, a)
    return np.where(small, a / 6.0 - a**3 / 60.0 + 17.0 * a**5 / 10080.0,
                    2.0 * (al - 2.0 * np.tanh(al / 2.0)) / al**2)


@dataclass(frozen=True)
class OUStep:
    """Exact step of Ornstein-Uhlenbeck components over ``dt``: its transition and its step mean.

    For a component of variance v and time constant tau, a = dt / tau, phi = exp(-a):
    end state ``phi x0 + s1 e``; step mean ``alpha x0 + c e + sqrt(bridge) eta`` (the
    Gaussian conditional on both ends; e, eta standard normals). Arrays broadcast as
    the ``corners`` and ``dt`` given to :meth:`of`.
    """

    phi: np.ndarray
    s1: np.ndarray
    alpha: np.ndarray
    c: np.ndarray
    bridge: np.ndarray

    @classmethod
    def of(cls, corners: np.ndarray, var: np.ndarray | float, dt: np.ndarray | float) -> OUStep:
        """Coefficients for corner frequencies ``corners`` (Hz), variances ``var`` and step ``dt`` (s, > 0)."""
        a = 2.0 * math.pi * np.asarray(corners, dtype=float) * np.asarray(dt, dtype=float)
        one_minus_phi = -np.expm1(-a)
        var = np.asarray(var, dtype=float)
        return cls(phi=1.0 - one_minus_phi, s1=np.sqrt(-var * np.expm1(-2.0 * a)), alpha=one_minus_phi / a,
                   c=np.sqrt(var) * one_minus_phi**1.5 / (a * np.sqrt(2.0 - one_minus_phi)),
                   bridge=var * _ou_bridge_var(a))


def column_amplitudes(spectrum: ReadNoiseSpectrum, g_pos: np.ndarray, g_neg: np.ndarray,
                      v_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """White PSD (A^2/Hz) and 1/f amplitude K I^2 (A^2) of every column current of a crossbar.

    g_pos, g_neg: (n_rows, n_out) S; v_rows: (n, n_rows) V on the rows. Returns two (n, n_out)
    arrays: sums over the independent cells of the column (both cells of each pair). Thermal
    noise needs no voltage; the shot excess and 1/f noise go with the row voltage.
    """
    g_sum = np.abs(g_pos) + np.abs(g_neg)
    kt4 = 4.0 * BOLTZMANN * spectrum.temperature
    u = ELEMENTARY_CHARGE * np.abs(v_rows) / (2.0 * BOLTZMANN * spectrum.temperature)
    white = kt4 * g_sum.sum(axis=0) + (kt4 * spectrum.fano * _u_coth_u_minus_1(u)) @ g_sum
    kg2 = spectrum.flicker_coefficient(g_pos) * g_pos**2 + spectrum.flicker_coefficient(g_neg) * g_neg**2
    return white, np.asarray(v_rows, dtype=float) ** 2 @ kg2


class ReadNoiseGenerator:
    """Noise current (A) averaged over each step ``dt`` of independent channels of shape ``shape``.

    ``step(white_psd, flicker)`` returns one step for channels whose white PSD (A^2/Hz) and
    1/f amplitude K I^2 (A^2) are given (broadcast to ``shape``; they may change from step
    to step, e.g. with the row voltages: each step's variance is then exact, the 1/f
    process is the channel's normalised one scaled by the step's amplitude). Pass 1 and 1
    for unit noise (white PSD 1 /Hz, 1/f PSD 1/f).

    Exact discretisation, so statistics do not depend on dt: white noise of one-sided PSD
    S has autocovariance (S/2) delta, its mean over dt variance S / (2 dt). Each OU
    component x (variance v, tau) steps as x1 = phi x0 + s1 e, phi = exp(-dt/tau), and its
    step mean is alpha x0 + c e + rho eta: the Gaussian conditional on both ends. The rho
    parts of all components and the white noise are independent of the states, so they
    share one normal: M + 1 normals per channel and step for M components.

    The 1/f state persists across ``step`` calls (one run); ``reset`` starts a new run, from
    the stationary distribution by default (a run starting mid-stream of a cell's noise).
    """

    def __init__(self, spectrum: ReadNoiseSpectrum, shape: int | Sequence[int], dt: float,
                 rng: np.random.Generator, t_run: float, stationary: bool = True) -> None:
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive time (s), got {dt!r}")
        if not (math.isfinite(t_run) and t_run >= dt):
            raise ValueError(f"t_run must be a time (s) >= dt = {dt:g}, got {t_run!r}")
        self.spectrum = spectrum
        self.shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        self.dt = float(dt)
        self.rng = rng
        corners, var = spectrum.flicker_components(t_run)
        ou = OUStep.of(corners, var, self.dt)
        self.corners = corners
        self.component_var = var
        self._phi = ou.phi[:, None]
        self._s1 = ou.s1[:, None]
        self._coef = np.concatenate([ou.alpha, ou.c])      # step mean = coef . [state; e] + rho eta
        self._rho2 = float(np.sum(ou.bridge))
        m, n = corners.size, math.prod(self.shape)
        # one buffer: rows 0..M-1 the OU states, M..2M-1 their innovations e, 2M the normal eta,
        # so that the step mean is a single matrix-vector product
        self._work = np.zeros((2 * m + 1, n))
        self._state = self._work[:m]
        self.reset(stationary)

    @property
    def n_components(self) -> int:
        """M, the OU components of the 1/f band."""
        return self.corners.size

    @property
    def n_normals(self) -> int:
        """Standard normals one step uses per channel (M + 1)."""
        return self.corners.size + 1

    def reset(self, stationary: bool = True) -> None:
        """Start a new run: 1/f state from its stationary distribution, or zero."""
        if stationary:
            self._state[...] = math.sqrt(self.component_var) * self.rng.standard_normal(self._state.shape)
        else:
            self._state.fill(0.0)

    def unit_flicker_state(self) -> np.ndarray:
        """Current value of the unit 1/f process (sum of the components), shape ``shape``."""
        return self._state.sum(axis=0).reshape(self.shape)

    def step(self, white_psd: np.ndarray | float, flicker: np.ndarray | float,
             z: np.ndarray | None = None) -> np.ndarray:
        """Noise current (A) averaged over the next step, a new float64 array of shape ``shape``.

        white_psd: A^2/Hz; flicker: K_f I^2 (A^2); both >= 0, broadcast to ``shape``. z:
        optional (M + 1, *shape) standard normals (e.g. from a faster source; not modified);
        drawn from ``rng`` when None.
        """
        m = self.corners.size
        work = self._work
        normals = work[m:]
        if z is None:
            self.rng.standard_normal(out=normals)
        else:
            normals[...] = np.reshape(z, normals.shape)
        # the step mean depends on the start state and on the innovation of the end state
        mean = np.dot(self._coef, work[:2 * m])
        e, eta = work[m:2 * m], work[2 * m]
        self._state *= self._phi
        e *= self._s1
        self._state += e
        white = np.broadcast_to(np.asarray(white_psd, dtype=float), self.shape).reshape(-1)
        amp = np.broadcast_to(np.asarray(flicker, dtype=float), self.shape).reshape(-1)
        mean *= np.sqrt(amp)
        mean += np.sqrt(amp * self._rho2 + white / (2.0 * self.dt)) * eta
        return mean.reshape(self.shape)


# -- the world's cells ----------------------------------------------------------------------------
def read_noise_sigma(g: np.ndarray | float, window: np.ndarray | float, params: DeviceParams,
                     bias: np.ndarray | float | None = None, span: float = CELL_FLICKER_SPAN,
                     since: float | None = None) -> np.ndarray:
    """Std (S) of one read of conductance ``g`` (S) over ``window`` (s) about the cell's mean over ``span`` (s).

    From the cell's spectrum (:meth:`ReadNoiseSpectrum.from_device` of ``params``): white
    noise S_w / (2 T) plus the 1/f band from 1 / span to f_high through the window,
    divided by ``bias`` (V, non-zero; default ``params.read_bias_ref``). With the default
    span this is the spread of one world read about the cell's conductance for a cell
    programmed long before. It falls with the window (white as 1/T, 1/f only
    logarithmically) and grows as sqrt(ln span) with the time over which reads are compared.
    since: the time (s) from the cell's programming to the read's end, if known: the 1/f
    part is then that of the world's restarted process (:class:`CellFlicker`), each OU
    component of time constant tau grown to 1 - exp(-2 since / tau) of its variance.
    """
    v = params.read_bias_ref if bias is None else np.abs(np.asarray(bias, dtype=float))
    spec = ReadNoiseSpectrum.from_device(params)
    g = np.abs(np.asarray(g, dtype=float))
    if since is None:
        return spec.read_sigma(g, window, span, v)
    corners, var = spec.flicker_components(span)
    rate = 2.0 * math.pi * corners
    grown = -np.expm1(-2.0 * rate * max(float(since) - float(window), 0.0))
    unit = float(np.sum(var * grown * _ou_mean_var(rate * float(window))))
    return np.sqrt(spec.white_psd(g, v) / (2.0 * window) + spec.flicker_amplitude(g, v) * unit) / v


class CellFlicker:
    """The unit 1/f process of every cell of a world, from its programming on.

    One OU sum per cell (:meth:`ReadNoiseSpectrum.flicker_components` over
    ``span``, i.e. the band [1 / span, f_high]); a cell's 1/f read noise is
    sqrt(K_f(G)) G times its unit process, averaged over the read's window.
    Programming a cell restarts its process from 0 (:meth:`restart`): a component of
    time constant tau has grown to its stationary variance only once t >> tau after
    programming, so a read t after programming sees the band from ~1/t up, aihwkit's
    sigma = G Q sqrt(ln((t + t_r) / (2 t_r))) with t the time since programming, until
    the band is full (t >> span). Lazy like relaxation: ``t`` holds the time (s) up to
    which each cell's state is known; a gap between reads is bridged by the exact
    transition, so the statistics do not depend on how often cells are looked at.
    ``t0``: the cells' programming times (s; -inf: stationary, never programmed).
    """

    def __init__(self, spectrum: ReadNoiseSpectrum, n: int, span: float = CELL_FLICKER_SPAN,
                 t0: np.ndarray | float = -np.inf) -> None:
        self.corners, self.component_var = spectrum.flicker_components(span)
        self.state = np.zeros((n, self.corners.size))
        self.t = np.array(np.broadcast_to(np.asarray(t0, dtype=float), (n,)))

    def restart(self, idx: np.ndarray, now: float | np.ndarray) -> None:
        """Cells ``idx`` were programmed at ``now`` (s): their 1/f process starts again from 0."""
        self.state[idx] = 0.0
        self.t[idx] = now

    def state_dict(self) -> dict[str, np.ndarray]:
        """``flicker_state`` (n, M) and ``flicker_t`` (n,) s, copied."""
        return {"flicker_state": self.state.copy(), "flicker_t": self.t.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict`; a missing or differently shaped state (an older file)
        keeps the state given at construction."""
        st, t = state.get("flicker_state"), state.get("flicker_t")
        if st is not None and t is not None and np.shape(st) == self.state.shape and np.shape(t) == self.t.shape:
            self.state, self.t = np.array(st, dtype=float), np.array(t, dtype=float)

    def read(self, idx: np.ndarray, start: float, window: float, rng: np.random.Generator) -> np.ndarray:
        """Unit 1/f means of cells ``idx`` (flat indices) over [start, start + window] (s); (idx.size,).

        A cell listed k times is read k times back to back (windows start, start + window,
        ...). A read that starts before a cell's state time (back-to-back reads of the
        repeats, then the clock's next read) continues from that time.
        """
        idx = np.asarray(idx)
        out = np.empty(idx.size)
        if idx.size == 0:
            return out
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        first = np.r_[True, sorted_idx[1:] != sorted_idx[:-1]]
        rank = np.empty(idx.size, dtype=np.int64)
        rank[order] = np.arange(idx.size) - np.maximum.accumulate(np.where(first, np.arange(idx.size), 0))
        ou = OUStep.of(self.corners, self.component_var, window)
        rate = 2.0 * math.pi * self.corners
        m = self.corners.size
        for r in range(int(rank.max()) + 1):
            sel = np.flatnonzero(rank == r)
            cells = idx[sel]
            t0 = start + r * window
            # the gap since a cell's state time (inf for a stationary cell): per distinct gap,
            # the law of (end state x1, window mean) given the state x0 there. Gap and window
            # steps joined: x1 = a_x x0 + sd_x z_j per component, and the mean's part left
            # given every x1 (independent across components) is one normal for all of them
            gaps, which = np.unique(np.maximum(t0 - self.t[cells], 0.0), return_inverse=True)
            phi_gap = np.exp(-rate * gaps[:, None])
            var_gap = self.component_var * -np.expm1(-2.0 * rate * gaps[:, None])    # innovation over the gap
            var_x = ou.phi**2 * var_gap + ou.s1**2
            cov = ou.alpha * ou.phi * var_gap + ou.c * ou.s1
            gain = cov / var_x
            a_x = ou.phi * phi_gap
            rest = np.sqrt(np.sum(ou.alpha**2 * var_gap + ou.c**2 + ou.bridge - cov * gain, axis=1))
            start_coef = ou.alpha * phi_gap - gain * a_x          # the mean = start_coef x0 + gain x1 + rest z
            z = rng.standard_normal((cells.size, m + 1))
            x0 = self.state[cells]
            if gaps.size == 1:                     # the usual case (a batch read at once): broadcast
                x1 = a_x[0] * x0 + np.sqrt(var_x[0]) * z[:, :m]
                out[sel] = x0 @ start_coef[0] + x1 @ gain[0] + rest[0] * z[:, m]
            else:
                x1 = a_x[which] * x0 + np.sqrt(var_x)[which] * z[:, :m]
                out[sel] = np.sum(start_coef[which] * x0 + gain[which] * x1, axis=1) + rest[which] * z[:, m]
            self.state[cells] = x1
            self.t[cells] = np.maximum(self.t[cells], t0) + window
        return out


# -- the former device model, and the fit of a spectrum to it ---------------------------------
def aihwkit_read_sigma(g: np.ndarray | float, window: np.ndarray | float, params: DeviceParams,
                       bias: np.ndarray | float | None = None) -> np.ndarray:
    """The device model's read noise before issue 14 (S): independent reads whose spread grows with the window.

    1/f part (aihwkit PCM-like form) g Q sqrt(ln(1 + window / t_r)), Q = min(q0 / x^qe, q_max),
    x = g / g_max; thermal part sqrt(4 k T g / (2 window)) / |bias|. Kept for the fit
    that shows no spectrum reproduces it (``docs/circuit-noise.md``); the world now reads
    with :class:`CellFlicker` and :func:`read_noise_sigma`.
    """
    p = params
    g = np.abs(np.asarray(g, dtype=float))
    window = np.asarray(window, dtype=float)
    v = p.read_bias_ref if bias is None else np.abs(np.asarray(bias, dtype=float))
    x = np.maximum(g / p.g_max, 1e-12)
    q = np.minimum(p.read_q0 / x ** p.read_q_exp, p.read_q_max)
    flicker = g * q * np.sqrt(np.log1p(window / p.read_t_r))
    thermal = np.sqrt(4.0 * BOLTZMANN * p.temperature * g / (2.0 * window)) / v
    return np.sqrt(flicker ** 2 + thermal ** 2)


# -- fit against the former device model ------------------------------------------------------
@dataclass(frozen=True)
class FlickerFit:
    """Result of :func:`fit_flicker_kappa`.

    kappa: K_f = (kappa Q)^2. residual: ln(spectrum spread / device spread), shape
    (conductances, windows, intervals). spectrum, device: the two spreads (S), same shape.
    """

    kappa: float
    residual: np.ndarray
    spectrum: np.ndarray
    device: np.ndarray

    @property
    def max_abs_residual(self) -> float:
        return float(np.max(np.abs(self.residual)))

    @property
    def rms_residual(self) -> float:
        return float(np.sqrt(np.mean(self.residual**2)))


def protocol_spreads(params: DeviceParams, kappa: float, conductances: Sequence[float], windows: Sequence[float],
                     intervals: Sequence[float], repeats: int, bias: float) -> tuple[np.ndarray, np.ndarray]:
    """Spreads (S) of the protocol's reads from the spectrum (kappa) and from the former device model.

    Shapes (conductances, windows, intervals). The former model's reads are independent
    with ``aihwkit_read_sigma``, so its ddof-0 spread is sigma sqrt(1 - 1/N) at any interval.
    """
    spec = ReadNoiseSpectrum.from_device(params, kappa)
    g = np.asarray(conductances, dtype=float)
    shape = (g.size, len(windows), len(intervals))
    ours, theirs = np.empty(shape), np.empty(shape)
    for k, w in enumerate(windows):
        sigma = aihwkit_read_sigma(g, w, params, bias=bias) * math.sqrt(1.0 - 1.0 / repeats)
        for j, iv in enumerate(intervals):
            ours[:, k, j] = spec.protocol_spread(g, bias, w, iv, repeats) / abs(bias)
            theirs[:, k, j] = sigma
    return ours, theirs


def fit_flicker_kappa(params: DeviceParams, conductances: Sequence[float], windows: Sequence[float],
                      intervals: Sequence[float], repeats: int, bias: float) -> FlickerFit:
    """Least-squares fit in log spread of kappa (K_f = (kappa Q)^2) to ``aihwkit_read_sigma``.

    Over every conductance (S), window (s) and interval (s) of a read-noise protocol run
    with ``repeats`` reads at ``bias`` (V). Log residuals weigh every point alike.
    """
    from scipy import optimize

    def cost(log_kappa: float) -> float:
        ours, theirs = protocol_spreads(params, math.exp(log_kappa), conductances, windows, intervals,
                                        repeats, bias)
        return float(np.sum(np.log(ours / theirs) ** 2))

    best = optimize.minimize_scalar(cost, bounds=(-5.0, 5.0), method="bounded",
                                    options={"xatol": 1e-6})
    kappa = math.exp(best.x)
    ours, theirs = protocol_spreads(params, kappa, conductances, windows, intervals, repeats, bias)
    return FlickerFit(kappa=kappa, residual=np.log(ours / theirs), spectrum=ours, device=theirs)
