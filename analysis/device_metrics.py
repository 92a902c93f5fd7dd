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


def pulse_batches(time: np.ndarray, step: np.ndarray | None = None) -> np.ndarray:
    """Batch index (0, 1, ...) of each pulse of a pulse table in recording order: a batch is a run
    of pulses with the same bench time (the table's ``time`` is equal within one batch) and step."""
    t = np.asarray(time, float).ravel()
    new = np.diff(t) != 0
    if step is not None:
        new |= np.diff(np.asarray(step).ravel()) != 0
    return np.concatenate([[0], np.cumsum(new)]).astype(np.int64) if t.size else np.zeros(0, np.int64)


def batch_rms_error(cell: np.ndarray, read: np.ndarray, batch: np.ndarray, target_of_cell: np.ndarray) -> np.ndarray:
    """RMS |G - target| (S) after each pulse batch, from a pulse history: over the cells pulsed so
    far, each at its latest verify read (cells not yet pulsed have no read in the history).

    cell: (p,) cell index 0..n-1 of each pulse; read: (p,) S; batch: (p,) non-decreasing batch
    index (:func:`pulse_batches`); target_of_cell: (n,) S. Returns (batches,) S.
    """
    cell = np.asarray(cell, np.int64).ravel()
    read = np.asarray(read, float).ravel()
    batch = np.asarray(batch, np.int64).ravel()
    target = _array("target_of_cell", target_of_cell).ravel()
    if not cell.shape == read.shape == batch.shape:
        raise ValueError(f"cell, read, batch: shapes {cell.shape}, {read.shape}, {batch.shape} differ")
    if cell.size and (cell.min() < 0 or cell.max() >= target.size):
        raise ValueError(f"cell: indices must lie in 0..{target.size - 1}")
    if np.any(np.diff(batch) < 0):
        raise ValueError("batch: must not decrease (pulses in recording order)")
    err2 = np.full(target.size, np.nan)
    total, count = 0.0, 0
    bounds = np.flatnonzero(np.diff(batch)) + 1
    out = []
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [cell.size]]), strict=True):
        if hi <= lo:
            continue
        c, r = cell[lo:hi][::-1], read[lo:hi][::-1]
        c, last = np.unique(c, return_index=True)  # the last pulse of each cell in the batch
        e2 = (r[last] - target[c]) ** 2
        fine = np.isfinite(e2)
        c, e2 = c[fine], e2[fine]
        prev = err2[c]
        seen = np.isfinite(prev)
        total += float(e2.sum() - prev[seen].sum())
        count += int((~seen).sum())
        err2[c] = e2
        out.append(np.sqrt(max(total, 0.0) / count) if count else np.nan)
    return np.asarray(out, float)


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
RESET_ONSET_FRACTION = 0.9  # RESET onset: I/V below this fraction of its value at the negative branch's start
RESET_MIN_BIAS = 0.1  # V, |V| below this is left out of the RESET onset search (I/V is noise there)
# The two definitions of switching_voltages in words (figure notes, docs).
SET_RULE = "SET voltage (first point of the rising branch where |I| reaches half the compliance)"
RESET_RULE = (f"RESET onset (first point of the falling negative branch where I/V drops below "
              f"{RESET_ONSET_FRACTION * 100:.0f} % of its value at the branch start, the LRS)")


def switching_voltages(v: np.ndarray, i: np.ndarray, compliance: float | None = None) -> tuple[float, float]:
    """(V_set, V_reset) of one dual sweep 0 -> v_max -> 0 -> v_min -> 0 in V; NaN where the cycle shows
    no switching. The one definition of both voltages: the ``iv-sweep`` protocol records them
    and the report marks them.

    V_set: first point of the rising positive branch where |I| reaches half the compliance
    (A; the abrupt SET is clamped at it; None: the largest |I| of that branch). V_reset: first
    point of the falling negative branch (|V| >= 0.1 V) where I/V drops below 90 % of its
    value at the branch start (the LRS), i.e. the onset of the gradual RESET.
    """
    v, i = np.asarray(v, float), np.asarray(i, float)
    top, bottom = int(np.argmax(v)), int(np.argmin(v))
    rising = np.arange(0, top + 1)
    clamp = float(np.max(np.abs(i[rising]))) if compliance is None else float(compliance)
    hit = rising[np.abs(i[rising]) >= 0.5 * clamp] if clamp > 0 else rising[:0]
    v_set = float(v[hit[0]]) if hit.size else float("nan")
    start = int(np.flatnonzero((v < 0) & (np.arange(v.size) < bottom))[0]) if np.any(v < 0) else bottom
    falling = np.arange(start, bottom + 1)
    falling = falling[np.abs(v[falling]) >= RESET_MIN_BIAS]
    if falling.size < 2:
        return v_set, float("nan")
    g = i[falling] / v[falling]
    drop = falling[g < RESET_ONSET_FRACTION * g[0]]
    return v_set, float(v[drop[0]]) if drop.size else float("nan")


@dataclass(frozen=True)
class IVParameters(_Dict):
    """Switching parameters of a bipolar I-V loop: voltages in V, conductances in S."""

    set_voltage: float
    reset_voltage: float
    g_on: float
    g_off: float
    on_off_ratio: float


def iv_parameters(voltage: np.ndarray, current: np.ndarray, read_bias: float = READ_BIAS,
                  compliance: float | None = None) -> IVParameters:
    """SET/RESET voltages and on/off ratio of one quasi-static dual sweep (points in sweep order).

    SET voltage and RESET onset as :func:`switching_voltages` defines them (``compliance``
    in A, None: the largest current of the rising branch). On/off: largest over smallest
    chord conductance |I/V| among the points with |V| within 50 % of ``read_bias`` (V, > 0).
    """
    v = _array("voltage", voltage, 1)
    i = _array("current", current, 1)
    if v.shape != i.shape or v.size < 3:
        raise ValueError(f"voltage, current: need equal shapes of >= 3 points, got {v.shape}, {i.shape}")
    if not read_bias > 0:
        raise ValueError(f"read_bias: must be > 0 V, got {read_bias}")
    set_v, reset_v = switching_voltages(v, i, compliance)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(np.abs(v) > 1e-3 * np.abs(v).max(), np.abs(i / v), np.nan)
    near = np.isfinite(g) & (np.abs(np.abs(v) - read_bias) <= 0.5 * read_bias)
    if near.sum() < 2:
        near = np.isfinite(g) & (np.abs(v) <= 2 * read_bias)
    g_on = float(np.max(g[near])) if near.any() else float("nan")
    g_off = float(np.min(g[near])) if near.any() else float("nan")
    return IVParameters(set_v, reset_v, g_on, g_off, g_on / g_off if g_off > 0 else float("nan"))


# -- levels ----------------------------------------------------------------------------------------
SEPARABLE_MAX_OVERLAP = 0.01  # fraction of two adjacent levels' cells allowed beyond their midpoint


def separability_rule(max_overlap: float = SEPARABLE_MAX_OVERLAP, targets: bool = True) -> str:
    """The separability criterion of :func:`level_separability`, in words (for figures and summaries)."""
    boundary = ("the read threshold halfway between the two levels' target conductances" if targets
                else "the midpoint between the two levels' medians")
    return (f"two adjacent levels are separable when at most {max_overlap * 100:g} % of their cells lie beyond "
            f"{boundary}; a level counts as separable when it is so from each neighbour; cells that failed "
            "to program (stuck or not converged) are left out")


def adjacent_overlap(g: np.ndarray, level: np.ndarray, centers: np.ndarray | None = None) -> np.ndarray:
    """Overlap of each pair of adjacent levels: the fraction of their cells on the wrong side.

    The boundary is the midpoint between the two levels' centres: ``centers[k]`` (S,
    e.g. the targets) when given, else the levels' medians (as after relaxation,
    when the whole distribution drifts). A cell of the lower level above it, or of
    the upper level below it, counts as misplaced. ``g`` in S, ``level`` the level
    index of each cell. Returns one fraction (0..1) per adjacent pair present.
    """
    g, level = np.asarray(g, dtype=float), np.asarray(level)
    order = np.unique(level)
    if centers is None:
        medians = np.array([np.median(g[level == k]) for k in order])
    else:
        medians = np.asarray(centers, dtype=float)[order]
    out = np.empty(max(order.size - 1, 0))
    for j in range(order.size - 1):
        mid = 0.5 * (medians[j] + medians[j + 1])
        lo, hi = g[level == order[j]], g[level == order[j + 1]]
        out[j] = (np.count_nonzero(lo > mid) + np.count_nonzero(hi < mid)) / (lo.size + hi.size)
    return out


@dataclass(frozen=True)
class LevelStats(_Dict):
    """Separability of programmed levels, over the cells that programmed (``failed_cells``, stuck
    or not converged, are counted and left out): per level mean and std (S),
    ``min_gap_over_sigma`` the smallest gap between adjacent means over their pooled std,
    ``overlap`` the fraction of cells nearer another level's mean than their own,
    ``adjacent_overlap`` (one per pair of consecutive levels that have cells) the fraction of
    the pair's cells beyond the threshold halfway between the two levels' targets (medians when
    no targets are given), ``separable`` the number of levels within ``max_overlap`` of each
    neighbour (``rule`` says it in words)."""

    levels: int
    mean: np.ndarray
    std: np.ndarray
    min_gap_over_sigma: float
    overlap: float
    separable: int
    adjacent_overlap: np.ndarray
    max_overlap: float
    cells: int
    failed_cells: int
    rule: str


def level_separability(g: np.ndarray, level: np.ndarray, level_target: np.ndarray | None = None,
                       failed: np.ndarray | None = None,
                       max_overlap: float = SEPARABLE_MAX_OVERLAP) -> LevelStats:
    """Statistics of conductances ``g`` (n,) S of cells programmed to level index ``level`` (n,).

    failed: (n,) true for cells that failed to program (stuck, or not converged): left out
    of every statistic and counted in ``failed_cells``. NaN read-backs are left out too.
    level_target (L,) S sets the number of levels (else max(level)+1). A level is separable
    when at most ``max_overlap`` of its and each neighbour's cells lie beyond the read
    threshold halfway between the two levels' targets (between their medians without
    ``level_target``; :func:`adjacent_overlap`); see :func:`separability_rule`.
    """
    g = np.asarray(g, float).ravel()
    lv = np.asarray(level, np.int64).ravel()
    if g.shape != lv.shape:
        raise ValueError(f"g, level: shapes {g.shape} != {lv.shape}")
    bad = np.zeros(g.shape, bool) if failed is None else np.asarray(failed, bool).ravel()
    if bad.shape != g.shape:
        raise ValueError(f"failed: shape {bad.shape} != g's {g.shape}")
    if not 0 <= max_overlap < 0.5:
        raise ValueError(f"max_overlap: need 0 <= max_overlap < 0.5, got {max_overlap}")
    ok = np.isfinite(g) & ~bad
    g, lv = g[ok], lv[ok]
    if g.size == 0:
        raise ValueError("g: no finite conductance of a programmed cell")
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
    pairs = adjacent_overlap(g, lv, None if level_target is None else np.asarray(level_target, float))
    good_left = np.concatenate([[True], pairs <= max_overlap])
    good_right = np.concatenate([pairs <= max_overlap, [True]])
    return LevelStats(n_levels, mean, std, float(ratio.min()) if ratio.size else float("inf"), overlap,
                      int(np.sum(good_left & good_right)), pairs, float(max_overlap), int(g.size),
                      int(bad.sum()), separability_rule(max_overlap, targets=level_target is not None))


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
