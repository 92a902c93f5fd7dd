"""Multi-level conductance histograms (64 levels) and programming linearity."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analysis.device_metrics import LevelStats, level_separability
from analysis.figures.style import WIDE, colors, footnote, label, new_figure, no_data, scale, title


def level_histograms(g: np.ndarray, level: np.ndarray, level_target: np.ndarray, run_label: str = "",
                     failed: np.ndarray | None = None, stats: LevelStats | None = None) -> Figure:
    """Histogram of read-back G (S) per level, coloured by level, and mean ± std vs target.

    g, level: (n,) conductance (S) and level index of each cell; level_target (L,) S.
    failed: (n,) true for cells that failed to program (stuck or not converged): marked
    apart (red ticks), counted, and left out of the histograms, the means and the
    separability. stats: the levels' statistics (computed here when None); the figure
    states how many levels are separable and by which rule.
    """
    fig, (hist, lin) = new_figure(WIDE, ncols=2, gridspec_kw={"width_ratios": [2, 1]})
    k, unit = scale("S", "u")
    g, lv, tg = np.asarray(g, float), np.asarray(level, int), np.asarray(level_target, float)
    bad = np.zeros(g.shape, bool) if failed is None else np.asarray(failed, bool)
    ok = np.isfinite(g) & ~bad
    if stats is None and ok.any():
        stats = level_separability(g, lv, tg, failed=bad)
    if ok.sum() == 0:
        no_data(hist)
        no_data(lin)
    else:
        step = np.min(np.diff(tg)) if tg.size > 1 else max(tg[0] * 0.1, 1e-7)
        lo, hi = tg.min() - 1.5 * step, tg.max() + 1.5 * step
        inside = ok & (g >= lo) & (g <= hi)
        edges = np.arange(lo, hi + step / 6, step / 6)
        cols = colors(len(tg), "turbo")
        # counts per (level, bin) in one pass; each level drawn only over its own bins (fast, readable)
        nb = len(edges) - 1
        b = np.clip(np.searchsorted(edges, g[inside], side="right") - 1, 0, nb - 1)
        counts = np.bincount(lv[inside] * nb + b, minlength=len(tg) * nb).reshape(len(tg), nb)
        for i in np.flatnonzero(counts.sum(axis=1)):
            used = np.flatnonzero(counts[i])
            lo_b, hi_b = used[0], used[-1] + 1
            hist.stairs(counts[i, lo_b:hi_b], edges[lo_b:hi_b + 1] * k, fill=True, color=cols[i], alpha=0.85)
        shown_bad = bad & np.isfinite(g) & (g >= lo) & (g <= hi)
        if shown_bad.any():
            hist.plot(g[shown_bad] * k, np.zeros(int(shown_bad.sum())), "|", color="tab:red", ms=14, mew=1.5,
                      clip_on=False, label="failed to program (left out)")
            hist.legend(loc="upper right", frameon=False)
        outside = int(ok.sum() - inside.sum())
        if outside:
            hist.text(0.99, 0.90, f"{outside} programmed cell(s) outside the level range", ha="right", va="top",
                      transform=hist.transAxes, fontsize=8, color="tab:red")
        cnt = np.bincount(lv[ok], minlength=len(tg))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(lv[ok], g[ok], len(tg)) / cnt
            sd = np.sqrt(np.maximum(np.bincount(lv[ok], g[ok] ** 2, len(tg)) / cnt - mean**2, 0))
        lin.errorbar(tg * k, mean * k, yerr=sd * k, fmt="o", ms=2.5, lw=0.8, color="tab:blue", label="read-back")
        lin.plot(tg * k, tg * k, color="0.5", lw=0.8, ls="--", label="ideal")
        lin.legend(loc="upper left", frameon=False)
    heading = f"{len(tg)} programmed levels"
    if stats is not None:
        heading += f": {stats.separable} separable"
        n_bad = int(bad.sum())
        failed_text = (f"{n_bad} cell{'s' if n_bad != 1 else ''} failed to program (red ticks where in range)"
                       if n_bad else "no cell failed to program")
        footnote(fig, f"Separable: {stats.separable} of {stats.levels} levels. Rule: {stats.rule}. {failed_text}. "
                  f"Smallest gap between adjacent level means: {stats.min_gap_over_sigma:.2g} × their pooled σ.")
    hist.set(xlabel=label("conductance", unit), ylabel="cells per bin", title=heading)
    lin.set(xlabel=label("target", unit), ylabel=label("read-back mean ± std", unit), title="linearity")
    title(fig, "Multi-level programming", run_label)
    return fig
