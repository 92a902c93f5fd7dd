"""Fit the simulated device model (``DeviceParams``) to measured data.

Each fit takes plain arrays (SI units) and a *prior* ``DeviceParams`` that supplies
the parameters the data cannot pin down; it returns the fitted fields only. The
formulas are the device model's own (``docs/device-model.md``), so a world built
from the fitted parameters reproduces the measured statistics. What each fit
uses, and why, is in ``docs/calibration.md``.

* :func:`fit_iv`: switching windows from quasi-static I-V cycles (iv-sweep):
  ``v_set_dc``, ``v_hold``, ``v_reset_dc``, ``reset_dc_scale``.
* :func:`fit_read_noise`: 1/f read-noise coefficient and exponent from repeated
  reads of many cells (read-noise, read-array with repeats): ``read_q0``, ``read_q_exp``.
* :func:`fit_relaxation`: programming spread and drift growing with log time after
  programming (retention, write-noise): ``relax_sigma0``, ``relax_sigma_rel``,
  ``relax_drift_rel``.
* :func:`analysis.calibration_write_simulated.fit_pulse_noise`: programming (write) noise
  ``pulse_c2c`` from pulse histories (write-verify, write-noise), by simulation.

Run files are read by :mod:`analysis.calibration_runs`; the TOML device file is
written by :func:`device_toml` and read back by ``instruments.config``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from scipy import optimize

from instruments.sim.device_params import DeviceParams

#: Fraction of the compliance above which an I-V point counts as "in compliance".
COMPLIANCE_FRACTION = 0.98
#: Cells per conductance bin in the noise fits (pooled variances).
MIN_BIN_CELLS = 8


@dataclass(frozen=True)
class Fit:
    """Fitted device parameters (name -> value, SI units) with where they came from.

    values: fitted ``DeviceParams`` fields; points: data points the fit used;
    source: what data (protocol, file) it came from.
    """

    values: dict[str, float]
    points: int
    source: str = ""


@dataclass
class Calibration:
    """A prior with fitted fields applied, the fits that produced them, and the runs left out."""

    prior: DeviceParams
    fits: list[Fit] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run file, why it feeds no fit)

    @property
    def fitted(self) -> dict[str, float]:
        """Every fitted field (later fits of the same field win)."""
        out: dict[str, float] = {}
        for f in self.fits:
            out.update(f.values)
        return out

    @property
    def params(self) -> DeviceParams:
        """The prior with every fitted field replaced."""
        return DeviceParams(**{**asdict(self.prior), **self.fitted})


# -- helpers ---------------------------------------------------------------------------------
def nonlinearity(volts: np.ndarray, p: DeviceParams) -> np.ndarray:
    """S(V)/S(V_ref) of the device model (sinh gap-model read nonlinearity), dimensionless."""
    def s(v: np.ndarray) -> np.ndarray:
        x = np.maximum(np.abs(np.asarray(v, dtype=float)) / p.nl_v0, 1e-12)
        return np.sinh(x) / x

    return s(volts) / s(p.read_bias_ref)


def _as_2d(name: str, value: np.ndarray) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite (cycles, points) array, got shape {arr.shape}")
    return arr


# -- switching windows -------------------------------------------------------------------------
def fit_iv(voltage: np.ndarray, current: np.ndarray, compliance: float, prior: DeviceParams) -> Fit:
    """Switching windows from quasi-static I-V cycles on one or more cells.

    voltage, current: (cycles, points) V and A, each cycle 0 -> +V -> 0 -> -V -> 0 in
    equal steps; compliance: current limit of the sweep (A, > 0); prior: supplies
    ``nl_v0``, ``read_bias_ref``, ``g_top`` (the RESET fit's ceiling).

    SET voltage: the first point of a cycle at the compliance lies up to one grid step
    above the cycle's threshold, so ``v_set_dc`` = mean - step / 2 (a median of grid values
    would be quantised). ``v_hold``:
    the LRS draws the compliance at v_hold (``G_LRS = I_cc / (v_hold S(v_hold))``).
    RESET: on the descending negative branch the cell follows
    ``G = g_floor + (g_top - g_floor) exp(-(|V| - v_reset) / scale)``; fitted per cycle,
    medians over cycles.
    """
    v, i = _as_2d("voltage", voltage), _as_2d("current", current)
    if v.shape != i.shape:
        raise ValueError(f"voltage {v.shape} and current {i.shape} must have the same shape")
    if not (math.isfinite(compliance) and compliance > 0):
        raise ValueError(f"compliance must be a positive current in A, got {compliance!r}")
    step = float(np.median(np.abs(np.diff(v, axis=1))[np.abs(np.diff(v, axis=1)) > 0]))
    in_cc = np.abs(i) >= COMPLIANCE_FRACTION * compliance
    g = np.where(v != 0, i / np.where(v != 0, v * nonlinearity(v, prior), 1.0), np.nan)
    v_set, v_hold, onset, scale = [], [], [], []
    for k in range(v.shape[0]):
        hits = np.flatnonzero((v[k] > 0) & in_cc[k])
        if hits.size == 0:
            continue  # this cycle never SET (stuck or unformed cell)
        first = hits[0]
        v_set.append(v[k, first])
        peak = int(np.argmax(v[k]))
        down = np.flatnonzero((np.arange(v.shape[1]) > peak) & (v[k] > 0) & (v[k] <= 0.5) & ~in_cc[k])
        if down.size:
            g_lrs = float(np.median(g[k, down]))
            v_hold.append(_solve_hold(compliance / g_lrs, prior))
        fit = _fit_reset_branch(v[k], g[k], in_cc[k], prior)
        if fit is not None:
            onset.append(fit[0])
            scale.append(fit[1])
    if not v_set or not onset:
        raise ValueError("I-V data show no SET at the compliance or no gradual RESET: cannot fit")
    values = {"v_set_dc": float(np.mean(v_set)) - step / 2, "v_reset_dc": float(np.median(onset)),
              "reset_dc_scale": float(np.median(scale))}
    if v_hold:
        values["v_hold"] = float(np.median(v_hold))
    return Fit(values, points=v.size, source="iv")


def _solve_hold(volts_times_s: float, prior: DeviceParams) -> float:
    """v with v S(v)/S(V_ref) = I_cc / G_LRS (V)."""
    def f(x: float) -> float:
        return x * float(nonlinearity(np.array(x), prior)) - volts_times_s

    return float(optimize.brentq(f, 1e-3, 10.0))


def _fit_reset_branch(v: np.ndarray, g: np.ndarray, in_cc: np.ndarray,
                      prior: DeviceParams) -> tuple[float, float] | None:
    """(onset V, scale V) of one cycle's gradual RESET, or None without enough points."""
    going_down = np.r_[False, np.diff(v) < 0]
    neg = (v < 0) & going_down & ~in_cc
    idx = np.flatnonzero(neg)
    if idx.size < 4:
        return None
    g_lrs = float(np.max(g[idx]))
    falling = idx[g[idx] < 0.97 * g_lrs]
    if falling.size < 3:
        return None
    x, y = -v[falling], g[falling]

    def model(theta: np.ndarray) -> np.ndarray:
        on, sc, floor = theta
        return np.log(floor + (prior.g_top - floor) * np.exp(-(x - on) / sc))

    start = np.array([prior.v_reset_dc, prior.reset_dc_scale, max(float(y.min()) * 0.5, 1e-9)])
    res = optimize.least_squares(lambda th: model(th) - np.log(np.maximum(y, 1e-12)), start,
                                 bounds=([0.0, 1e-3, 1e-9], [5.0, 2.0, float(y.min())]))
    return float(res.x[0]), float(res.x[1])


# -- read noise ---------------------------------------------------------------------------------
def fit_read_noise(series: Sequence[tuple[np.ndarray, float]], prior: DeviceParams,
                   bias: float | None = None) -> Fit:
    """1/f read-noise coefficient ``read_q0`` and exponent ``read_q_exp`` from repeated reads.

    series: one or more (reads, window) pairs: reads (repeats >= 2, cells) S, the same
    cells read back to back over ``window`` (s, > 0); bias: read voltage (V; default
    the prior's ``read_bias_ref``); prior: supplies g_max, temperature (white part) and
    read_q_max.
    Each cell's read variance is estimated from successive differences,
    ``mean((r[k+1] - r[k])^2) / 2``, which ignores slow relaxation drift during the
    series; cells are binned by mean conductance and the pooled bin variances of all
    series are fitted in log space with what the device's read-noise spectrum gives for
    two successive windows (``docs/circuit-noise.md``): white ``S_w / (2 T)`` plus the 1/f
    part ``K_f G^2 G(1)`` with ``G(1) = 2 ln 2`` (``flicker_structure``), the same at every
    window (1/f noise is scale-free), ``K_f = (kappa Q)^2``.
    """
    from instruments.sim.noise_spectrum import ReadNoiseSpectrum, flicker_structure

    g_all, s_all, w_all = [], [], []
    for k, (reads, window) in enumerate(series):
        r = np.asarray(reads, dtype=float)
        if r.ndim != 2 or r.shape[0] < 2 or not np.all(np.isfinite(r)):
            raise ValueError(f"series[{k}] reads must be a finite (repeats >= 2, cells) array in S, got {r.shape}")
        if not (math.isfinite(window) and window > 0):
            raise ValueError(f"series[{k}] window must be a positive time in s, got {window!r}")
        g_mean, var = r.mean(axis=0), 0.5 * np.mean(np.diff(r, axis=0) ** 2, axis=0)
        keep = g_mean > 0
        g_bin, var_bin = _bin_mean(np.log(g_mean[keep]), [g_mean[keep], var[keep]], 20)
        g_all.append(g_bin)
        s_all.append(np.sqrt(var_bin))
        w_all.append(np.full(g_bin.size, float(window)))
    if not g_all:
        raise ValueError("series: no read series given")
    g, s, w = np.concatenate(g_all), np.concatenate(s_all), np.concatenate(w_all)
    v = prior.read_bias_ref if bias is None else abs(float(bias))
    white2 = ReadNoiseSpectrum.from_device(prior).white_psd(g, v) / (2.0 * w) / v ** 2
    successive = float(flicker_structure(1.0))

    def model(theta: np.ndarray) -> np.ndarray:
        spec = ReadNoiseSpectrum.from_device(
            DeviceParams(**{**asdict(prior), "read_q0": float(np.exp(theta[0])), "read_q_exp": float(theta[1])}))
        return 0.5 * np.log(spec.flicker_coefficient(g) * g ** 2 * successive + white2)

    start = np.array([math.log(prior.read_q0), prior.read_q_exp])
    res = optimize.least_squares(lambda th: model(th) - np.log(s), start, bounds=([-20, 0.0], [0.0, 3.0]))
    points = int(sum(np.asarray(r).size for r, _ in series))
    return Fit({"read_q0": float(np.exp(res.x[0])), "read_q_exp": float(res.x[1])}, points=points,
               source="read-noise")


def _bin_mean(key: np.ndarray, values: list[np.ndarray], max_bins: int) -> list[np.ndarray]:
    """Means of ``values`` over quantile bins of ``key`` (at least MIN_BIN_CELLS per bin)."""
    n_bins = max(1, min(max_bins, key.size // MIN_BIN_CELLS))
    edges = np.quantile(key, np.linspace(0, 1, n_bins + 1))
    which = np.clip(np.searchsorted(edges, key, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    ok = counts > 0
    return [np.bincount(which, v, n_bins)[ok] / counts[ok] for v in values]


# -- relaxation ----------------------------------------------------------------------------------
def fit_relaxation(times: np.ndarray, reads: np.ndarray, g_prog: np.ndarray, prior: DeviceParams,
                   read_sigma: np.ndarray | None = None) -> Fit:
    """Relaxation spread and drift after programming, from reads at several times.

    times: (T >= 2,) s after programming of each read row; reads: (T, cells) S;
    g_prog: (cells,) S, what each cell was programmed to; prior: supplies relax_t0
    and relax_d2d; read_sigma: (cells,) S, the noise of one read (default: the
    prior's read-noise model at a 1 us window).

    Changes relative to the first read row isolate the relaxation (the programming
    error cancels): with ``dL = ln(1 + t/t0) - ln(1 + t1/t0)`` and
    ``dL2 = ln(1 + t/t0)^2 - ln(1 + t1/t0)^2``, the model gives
    ``mean = -drift_rel g dL`` and ``var = E[scale^2] (sigma0 + sigma_rel g)^2 dL2 + 2 s_read^2``
    with ``E[scale^2] = exp(2 relax_d2d^2)`` (lognormal per-cell scale of median 1).
    Cells are binned by g_prog; the bins' means and variances are fitted by linear least squares.
    """
    t = np.asarray(times, dtype=float).ravel()
    r = np.asarray(reads, dtype=float)
    g0 = np.asarray(g_prog, dtype=float).ravel()
    if t.size < 2 or r.shape != (t.size, g0.size) or not (np.all(np.isfinite(r)) and np.all(np.isfinite(t))):
        raise ValueError(f"need times (T >= 2,), reads (T, cells) and g_prog (cells,); got {t.shape}, "
                         f"{r.shape}, {g0.shape}")
    if np.any(np.diff(t) <= 0) or t[0] < 0:
        raise ValueError("times must be increasing and >= 0 s")
    from instruments.sim.noise_spectrum import read_noise_sigma

    s_read = read_noise_sigma(g0, 1e-6, prior) if read_sigma is None else np.asarray(read_sigma, float)
    ell = np.log1p(t / prior.relax_t0)
    d = r[1:] - r[0]
    dl, dl2 = ell[1:] - ell[0], ell[1:] ** 2 - ell[0] ** 2
    n_bins = max(1, min(16, g0.size // MIN_BIN_CELLS))
    edges = np.quantile(g0, np.linspace(0, 1, n_bins + 1))
    which = np.clip(np.searchsorted(edges, g0, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    ok = np.flatnonzero(counts >= 2)
    g_bin = np.bincount(which, g0, n_bins)[ok] / counts[ok]
    s_read2 = np.bincount(which, s_read ** 2, n_bins)[ok] / counts[ok]
    mean = np.stack([np.bincount(which, row, n_bins)[ok] / counts[ok] for row in d])       # (T-1, bins)
    var = np.stack([np.array([row[which == b].var(ddof=1) for b in ok]) for row in d])     # (T-1, bins)
    # drift: mean = -drift_rel * g * dL, weighted by the inverse variance of each bin's mean
    x = (g_bin[None, :] * dl[:, None]).ravel()
    inv = (counts[ok][None, :] / np.maximum(var, 1e-30)).ravel()
    drift = float(-np.sum(inv * mean.ravel() * x) / np.sum(inv * x * x))
    # spread: sqrt((var - 2 s_read^2) / (E[s^2] dL2)) = sigma0 + sigma_rel g, weighted by dL2
    e_s2 = math.exp(2.0 * prior.relax_d2d ** 2)
    excess = np.maximum(var - 2.0 * s_read2[None, :], 0.0) / (e_s2 * dl2[:, None])
    weight = np.broadcast_to(np.sqrt(dl2)[:, None], excess.shape).ravel()
    design = np.stack([np.ones(excess.size), np.broadcast_to(g_bin, excess.shape).ravel()], axis=1)
    coef, *_ = np.linalg.lstsq(design * weight[:, None], np.sqrt(excess).ravel() * weight, rcond=None)
    values = {"relax_sigma0": float(max(coef[0], 0.0)), "relax_sigma_rel": float(max(coef[1], 0.0)),
              "relax_drift_rel": max(drift, 0.0)}
    return Fit(values, points=r.size, source="relaxation")


# -- device file -----------------------------------------------------------------------------------
def device_toml(cal: Calibration, sources: list[str] | None = None) -> str:
    """The calibrated device file: ``[device]`` (every ``DeviceParams`` field, SI units) and a
    ``[calibration]`` table saying which fields were fitted from which data."""
    params, fitted = cal.params, cal.fitted
    lines = ["# rrambench device file: DeviceParams of the simulated TaOx 1T1R cell (SI units).",
             "# Load it with `[sim] device = \"<this file>\"` in a bench config (docs/calibration.md).", "",
             "[device]"]
    for f in fields(params):
        value = float(getattr(params, f.name))
        note = "  # fitted" if f.name in fitted else ""
        lines.append(f"{f.name} = {value!r}{note}")
    lines += ["", "[calibration]", f"fitted = [{', '.join(repr(k) for k in sorted(fitted))}]",
              f"sources = [{', '.join(_toml_str(s) for s in (sources or []))}]"]
    for fit in cal.fits:
        lines.append(f"# {fit.source}: {fit.points} points -> " +
                     ", ".join(f"{k} = {v:.6g}" for k, v in fit.values.items()))
    lines += [f"# skipped {path}: {why}" for path, why in cal.skipped]
    return "\n".join(lines) + "\n"


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
