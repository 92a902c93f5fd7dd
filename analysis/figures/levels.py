"""Multi-level conductance histograms (64 levels) and programming linearity."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.style import WIDE, colors, label, new_figure, no_data, scale, title


def level_histograms(g: np.ndarray, level: np.ndarray, level_target: np.ndarray, run_label: str = "") -> Figure:
    """Histogram of read-back G (S) per level, coloured by level, and mean +- std vs target.

    g, level: (n,) conductance (S) and level index of each cell; level_target (L,) S.
    """
    fig, (hist, lin) = new_figure(WIDE, ncols=2, gridspec_kw={"width_ratios": [2, 1]})
    k, unit = scale("S", "u")
    g, lv, tg = np.asarray(g, float), np.asarray(level, int), np.asarray(level_target, float)
    ok = np.isfinite(g)
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
        outside = int(ok.sum() - inside.sum())
        if outside:
            hist.text(0.99, 0.97, f"{outside} cell(s) outside the level range (stuck)", ha="right", va="top",
                      transform=hist.transAxes, fontsize=8, color="tab:red")
        cnt = np.bincount(lv[ok], minlength=len(tg))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(lv[ok], g[ok], len(tg)) / cnt
            sd = np.sqrt(np.maximum(np.bincount(lv[ok], g[ok] ** 2, len(tg)) / cnt - mean**2, 0))
        lin.errorbar(tg * k, mean * k, yerr=sd * k, fmt="o", ms=2.5, lw=0.8, color="tab:blue", label="read-back")
        lin.plot(tg * k, tg * k, color="0.5", lw=0.8, ls="--", label="ideal")
        lin.legend(loc="upper left", frameon=False)
    hist.set(xlabel=label("conductance", unit), ylabel="cells per bin", title=f"{len(tg)} programmed levels")
    lin.set(xlabel=label("target", unit), ylabel=label("read-back mean +- std", unit), title="linearity")
    title(fig, "Multi-level programming", run_label)
    return fig
