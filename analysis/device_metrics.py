"""Device-level numbers from run data: write-verify, I-V, levels, retention, read noise.

Inputs are plain numpy arrays in SI units (S, V, A, s), usually from
:mod:`analysis.characterization_data`; every function is vectorised over cells and refuses
empty or mis-shaped input with a ``ValueError`` naming the argument. Results are
frozen dataclasses whose ``as_dict()`` goes straight into a report's summary.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

READ_BIAS = 0.1  # V, default read voltage of the simulated bench (device-model.md)


class _Dict:
    def as_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}


def _array(name: str, a: np.ndarray | None, ndim: int | None = None) -> np.ndarray:
    if a is None:
        raise ValueError(f"{name}: missing")
    a = np.asarray(a, dtype=float)
    if a.size == 0:
        raise ValueError(f"{name}: empty (nothing recorded)")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: need {ndim}-D, got shape {a.shape}")
    return a


# -- write-verify ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class WriteVerifyStats(_Dict):
    """Outcome of programming n cells: errors in S (programmed - target), pulse counts."""

    cells: int
    converged_fraction: float
    stuck_fraction: float
    pulses_median: float
    pulses_p90: float
    pulses_max: int
    error_mean: float
    error_std: float
    error_rms: float
    error_abs_p99: float
    within_tolerance_fraction: float | None


def write_verify_stats(target: np.ndarray, programmed: np.ndarray, pulses_per_cell: np.ndarray | None = None,
                       converged: np.ndarray | None = None, stuck: np.ndarray | None = None,
                       tolerance: float | None = None) -> WriteVerifyStats:
    """Statistics of one programming pass.

    target, programmed: (n,) conductances in S; NaN read-backs (cells never reached)
    are left out. pulses_per_cell, converged, stuck: (n,) counts / flags or None.
    tolerance: accepted |error| in S (> 0) or None.
    """
    t = _array("target", target).ravel()
    g = _array("programmed", programmed).ravel()
    if t.shape != g.shape:
        raise ValueError(f"target, programmed: shapes {t.shape} != {g.shape}")
    if tolerance is not None and not tolerance > 0:
        raise ValueError(f"tolerance: must be > 0 S, got {tolerance}")
    ok = np.isfinite(g)
    err = g[ok] - t[ok]
    if err.size == 0:
        raise ValueError("programmed: no cell has a read-back")
    pulses = np.zeros(t.size) if pulses_per_cell is None else np.asarray(pulses_per_cell, float).ravel()
    return WriteVerifyStats(
        cells=int(t.size),
        converged_fraction=float(np.mean(converged)) if converged is not None else float("nan"),
        stuck_fraction=float(np.mean(stuck)) if stuck is not None else float("nan"),
        pulses_median=float(np.median(pulses)),
        pulses_p90=float(np.percentile(pulses, 90)),
        pulses_max=int(pulses.max()),
        error_mean=float(err.mean()),
        error_std=float(err.std()),
        error_rms=float(np.sqrt(np.mean(err**2))),
        error_abs_p99=float(np.percentile(np.abs(err), 99)),
        within_tolerance_fraction=None if tolerance is None else float(np.mean(np.abs(err) <= tolerance)),
    )


def convergence(cell: np.ndarray, read: np.ndarray, target_of_cell: np.ndarray,
                initial: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """|error| (S) of every cell after its k-th pulse, from the pulse history.

    cell: (p,) cell index 0..n-1 of each pulse, in time order; read: (p,) verify read
    after it (S); target_of_cell: (n,) S; initial: (n,) S before the first pulse
    (default NaN). Returns ``(k, abs_error)`` with k = 0..K (pulses applied) and
    abs_error (n, K+1); a cell that stopped keeps its last error (it is done).
    """
    cell = np.asarray(cell, dtype=np.int64).ravel()
    read = np.asarray(read, dtype=float).ravel()
    target = _array("target_of_cell", target_of_cell).ravel()
    n = target.size
    if cell.shape != read.shape:
        raise ValueError(f"cell, read: shapes {cell.shape} != {read.shape}")
    if cell.size and (cell.min() < 0 or cell.max() >= n):
        raise ValueError(f"cell: indices must lie in 0..{n - 1}")
    order = np.argsort(cell, kind="stable")
    counts = np.bincount(cell, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(cell.size) - np.repeat(starts, counts)  # k-1 of each pulse within its cell
    k_max = int(counts.max()) if cell.size else 0
    err = np.full((n, k_max + 1), np.nan)
    err[:, 0] = np.nan if initial is None else np.abs(np.asarray(initial, float).ravel() - target)
    err[cell[order], rank + 1] = np.abs(read[order] - target[cell[order]])
    # forward fill along k: a cell that has stopped keeps its last error
    idx = np.where(np.isfinite(err), np.arange(k_max + 1), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    filled = err[np.arange(n)[:, None], idx]
    return np.arange(k_max + 1), filled


def cell_index(macro: np.ndarray, row: np.ndarray, col: np.ndarray, cell_macro: np.ndarray,
               cell_row: np.ndarray, cell_col: np.ndarray) -> np.ndarray:
    """Index into the programmed cell list of each (macro, row, col); -1 for cells not in it."""
    keys = (np.asarray(cell_macro, np.int64) << 32) | (np.asarray(cell_row, np.int64) << 16) | np.asarray(
        cell_col, np.int64)
    query = (np.asarray(macro, np.int64) << 32) | (np.asarray(row, np.int64) << 16) | np.asarray(col, np.int64)
    order = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys[order], query), 0, max(len(keys) - 1, 0))
    found = keys[order][pos] == query if len(keys) else np.zeros(query.shape, bool)
    return np.where(found, order[pos] if len(keys) else -1, -1)


# -- I-V -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IVParameters(_Dict):
    """Switching parameters of a bipolar I-V loop: voltages in V, conductances in S."""

    set_voltage: float
    reset_voltage: float
    g_on: float
    g_off: float
    on_off_ratio: float


def iv_parameters(voltage: np.ndarray, current: np.ndarray, read_bias: float = READ_BIAS) -> IVParameters:
    """SET/RESET voltages and on/off ratio of one quasi-static sweep (points in sweep order).

    SET voltage: the positive bias with the largest rise of conductance |I/V| from one
    point to the next (abrupt SET); RESET voltage: the negative bias with the largest
    fall (RESET onset). On/off: largest over smallest chord conductance |I/V| among
    the points with |V| within 50 % of ``read_bias`` (V, > 0).
    """
    v = _array("voltage", voltage, 1)
    i = _array("current", current, 1)
    if v.shape != i.shape or v.size < 3:
        raise ValueError(f"voltage, current: need equal shapes of >= 3 points, got {v.shape}, {i.shape}")
    if not read_bias > 0:
        raise ValueError(f"read_bias: must be > 0 V, got {read_bias}")
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(np.abs(v) > 1e-3 * np.abs(v).max(), np.abs(i / v), np.nan)
    logg = np.log(np.maximum(g, 1e-15))
    step = np.diff(logg)
    vnext = v[1:]
    pos = np.isfinite(step) & (vnext > 0)
    neg = np.isfinite(step) & (vnext < 0)
    set_v = float(vnext[pos][np.argmax(step[pos])]) if pos.any() else float("nan")
    reset_v = float(vnext[neg][np.argmin(step[neg])]) if neg.any() else float("nan")
    near = np.isfinite(g) & (np.abs(np.abs(v) - read_bias) <= 0.5 * read_bias)
    if near.sum() < 2:
        near = np.isfinite(g) & (np.abs(v) <= 2 * read_bias)
    g_on = float(np.max(g[near])) if near.any() else float("nan")
    g_off = float(np.min(g[near])) if near.any() else float("nan")
    return IVParameters(set_v, reset_v, g_on, g_off, g_on / g_off if g_off > 0 else float("nan"))


# -- levels ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LevelStats(_Dict):
    """Separability of programmed levels: per level mean and std (S), ``overlap`` the
    fraction of cells nearer another level's mean than their own, ``separable`` the
    number of levels whose every neighbour is at least 6 sigma away (pooled)."""

    levels: int
    mean: np.ndarray
    std: np.ndarray
    min_gap_over_sigma: float
    overlap: float
    separable: int


def level_separability(g: np.ndarray, level: np.ndarray, level_target: np.ndarray | None = None) -> LevelStats:
    """Statistics of conductances ``g`` (n,) S of cells programmed to level index ``level`` (n,).

    NaN read-backs are left out. level_target (L,) S sets the number of levels (else max(level)+1).
    """
    g = np.asarray(g, float).ravel()
    lv = np.asarray(level, np.int64).ravel()
    if g.shape != lv.shape:
        raise ValueError(f"g, level: shapes {g.shape} != {lv.shape}")
    ok = np.isfinite(g)
    g, lv = g[ok], lv[ok]
    if g.size == 0:
        raise ValueError("g: no finite conductance")
    n_levels = len(level_target) if level_target is not None else int(lv.max()) + 1
    cnt = np.bincount(lv, minlength=n_levels).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(lv, g, n_levels) / cnt
        var = np.bincount(lv, g**2, n_levels) / cnt - mean**2
    std = np.sqrt(np.maximum(var, 0.0))
    present = cnt > 0
    m, s = mean[present], std[present]
    gaps = np.diff(m)
    pooled = np.sqrt((s[1:] ** 2 + s[:-1] ** 2) / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(pooled > 0, np.abs(gaps) / pooled, np.inf)
    nearest = np.argmin(np.abs(g[:, None] - m[None, :]), axis=1)
    own = np.cumsum(present) - 1
    overlap = float(np.mean(nearest != own[lv]))
    good_left = np.concatenate([[True], ratio >= 6.0])
    good_right = np.concatenate([ratio >= 6.0, [True]])
    return LevelStats(n_levels, mean, std, float(ratio.min()) if ratio.size else float("inf"), overlap,
                      int(np.sum(good_left & good_right)))


# -- retention ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetentionFit(_Dict):
    """Spread of programmed states vs time: ``sigma(t) = sigma_1s + slope * log10(t / 1 s)`` in S,
    fitted per level and pooled; ``drift_per_decade`` the mean change of G per decade (S)."""

    sigma_1s: float
    slope_per_decade: float
    drift_per_decade: float
    sigma_at: dict
    level_slopes: np.ndarray


def retention_fit(time: np.ndarray, g: np.ndarray, level: np.ndarray | None = None,
                  at: tuple[float, ...] = (1e4, 1e6)) -> RetentionFit:
    """Fit the growth of the spread of G (S) read at ``time`` (T,) s > 0 after programming.

    g: (T, n) conductances in S; level: (n,) level index (None: one level). at: times (s)
    at which the fitted spread is reported.
    """
    t = _array("time", time, 1)
    g = _array("g", g, 2)
    if g.shape[0] != t.size:
        raise ValueError(f"time, g: {t.size} times for {g.shape[0]} reads")
    if np.any(t <= 0):
        raise ValueError("time: must be > 0 s (time since programming)")
    lv = np.zeros(g.shape[1], np.int64) if level is None else np.asarray(level, np.int64).ravel()
    n_levels = int(lv.max()) + 1
    onehot = np.eye(n_levels)[lv]                          # (n, L)
    cnt = onehot.sum(0)
    mean = (np.nan_to_num(g) @ onehot) / cnt               # (T, L)
    sd = np.sqrt(np.maximum((np.nan_to_num(g) ** 2 @ onehot) / cnt - mean**2, 0.0))
    x = np.log10(t)
    a = np.vstack([np.ones_like(x), x]).T
    coef, *_ = np.linalg.lstsq(a, sd[:, cnt > 0], rcond=None)  # (2, L)
    drift, *_ = np.linalg.lstsq(a, mean[:, cnt > 0] - mean[:1, cnt > 0], rcond=None)
    s0, s1 = float(coef[0].mean()), float(coef[1].mean())
    return RetentionFit(s0, s1, float(drift[1].mean()), {f"{ti:g}": s0 + s1 * np.log10(ti) for ti in at},
                        coef[1])


def error_distributions(g: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Programming error G - target (S) at each read: (T, n) from g (T, n) and target (n,)."""
    g = _array("g", g, 2)
    t = _array("target", target).ravel()
    if g.shape[1] != t.size:
        raise ValueError(f"g, target: {g.shape[1]} cells read, {t.size} targets")
    return g - t[None, :]


# -- read noise --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadNoise(_Dict):
    """Relative read noise sigma/G vs integration window (s); ``exponent`` the fitted
    power of sigma/G against the window (about -0.5 for thermal, 0 for 1/f)."""

    window: np.ndarray
    relative_sigma: np.ndarray
    exponent: float


def read_noise_vs_window(window: np.ndarray, reads: np.ndarray) -> ReadNoise:
    """Median over cells of std/mean of repeated reads, per integration window.

    window: (W,) s > 0; reads: (W, R, n) repeated reads in S (R >= 2 repeats of n cells).
    """
    w = _array("window", window, 1)
    r = _array("reads", reads, 3)
    if r.shape[0] != w.size or r.shape[1] < 2:
        raise ValueError(f"reads: need ({w.size}, R>=2, n), got {r.shape}")
    if np.any(w <= 0):
        raise ValueError("window: must be > 0 s")
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.nanmedian(np.nanstd(r, axis=1) / np.abs(np.nanmean(r, axis=1)), axis=1)
    ok = np.isfinite(rel) & (rel > 0)
    exponent = float(np.polyfit(np.log(w[ok]), np.log(rel[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")
    return ReadNoise(w, rel, exponent)


def noise_spectrum(reads: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided power spectral density (S^2/Hz) of read sequences, averaged over cells.

    reads: (R, n) successive reads in S of n cells, dt s apart (> 0). Returns
    ``(frequency Hz, psd)`` for frequencies 1/(R dt) .. 1/(2 dt), the mean removed.
    """
    r = _array("reads", reads, 2)
    if not dt > 0:
        raise ValueError(f"dt: must be > 0 s, got {dt}")
    if r.shape[0] < 4:
        raise ValueError(f"reads: need at least 4 successive reads, got {r.shape[0]}")
    x = r - np.nanmean(r, axis=0)
    spec = np.abs(np.fft.rfft(np.nan_to_num(x), axis=0)) ** 2 * (2.0 * dt / r.shape[0])
    f = np.fft.rfftfreq(r.shape[0], dt)
    return f[1:], spec[1:].mean(axis=1)
