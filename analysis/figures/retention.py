"""Retention: conductance of programmed levels over log time, and error distributions at
several times after programming."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analysis.device_metrics import RetentionFit
from analysis.figures.style import WIDE, colors, footnote, label, new_figure, no_data, scale, title


def retention_curves(time: np.ndarray, g: np.ndarray, level: np.ndarray | None,
                     fit: RetentionFit | None = None, run_label: str = "", left_out: int = 0) -> Figure:
    """Mean and ±1 std band per level vs time (log axis); spread vs time with the log fit.

    time: (T,) s after programming (> 0); g: (T, n) S; level: (n,) level index or None;
    left_out: cells that failed to program and are not in ``g`` (said under the panels).
    """
    fig, (curves, spread) = new_figure(WIDE, ncols=2)
    k, unit = scale("S", "u")
    t, g = np.asarray(time, float), np.asarray(g, float)
    if t.size == 0 or g.size == 0:
        no_data(curves)
        no_data(spread)
    else:
        lv = np.zeros(g.shape[1], int) if level is None else np.asarray(level, int)
        ids = np.unique(lv)
        for i, col in zip(ids, colors(len(ids), "turbo"), strict=True):
            sel = g[:, lv == i]
            m, s = np.nanmean(sel, 1) * k, np.nanstd(sel, 1) * k
            curves.plot(t, m, color=col, lw=1)
            curves.fill_between(t, m - s, m + s, color=col, alpha=0.25, lw=0)
            spread.plot(t, s, ".", color=col, ms=3)
        if fit is not None:
            spread.plot(t, (fit.sigma_1s + fit.slope_per_decade * np.log10(t)) * k, color="k", lw=1.2,
                        label=f"fit: {fit.slope_per_decade * k:.3g} {unit}/decade")
            spread.legend(frameon=False)
        curves.set_xscale("log")
        spread.set_xscale("log")
    curves.set(xlabel=label("time after programming", "s"), ylabel=label("conductance", unit),
               title="levels over time (mean ± std)")
    spread.set(xlabel=label("time after programming", "s"), ylabel=label("spread (std)", unit),
               title="spread per level")
    if left_out:
        footnote(fig, f"{left_out} cell{'s' if left_out != 1 else ''} that failed to program (stuck or not "
                      "converged) left out of the curves, the spreads and the fit.")
    title(fig, "Retention", run_label)
    return fig


def error_distributions(time: np.ndarray, error: np.ndarray, shown: int = 5, run_label: str = "",
                        failed: np.ndarray | None = None, percentiles: tuple[float, float] = (0.5, 99.5)) -> Figure:
    """Histograms of G - target (S) at up to ``shown`` log-spaced read times; error (T, n).

    The axis spans, over the times shown, the widest range between the ``percentiles`` of
    each time's errors, widened by 10 %: a stuck cell tens of µS off does not squeeze every
    other cell into a few bins. The cells beyond it are counted in the panel (and, with
    ``failed`` (n,) bool, how many of them failed to program).
    """
    fig, (ax,) = new_figure()
    k, unit = scale("S", "u")
    t, e = np.asarray(time, float), np.asarray(error, float)
    if t.size == 0:
        no_data(ax)
    else:
        pick = np.unique(np.round(np.linspace(0, t.size - 1, min(shown, t.size))).astype(int))
        seen = [row[np.isfinite(row)] for row in e[pick]]
        seen = [row for row in seen if row.size]
        if seen:
            lo = min(float(np.percentile(row, percentiles[0])) for row in seen)
            hi = max(float(np.percentile(row, percentiles[1])) for row in seen)
            pad = 0.1 * (hi - lo) if hi > lo else max(abs(hi), 1e-9)
            lo, hi = lo - pad, hi + pad
        else:
            lo, hi = -1e-6, 1e-6
        edges = np.linspace(lo, hi, 61) * k
        for i, col in zip(pick, colors(len(pick), "viridis"), strict=True):
            ax.hist(e[i][np.isfinite(e[i])] * k, bins=edges, histtype="step", lw=1.4, color=col,
                    label=f"t = {t[i]:.3g} s")
        ax.legend(frameon=False)
        beyond = np.any(np.isfinite(e[pick]) & ((e[pick] < lo) | (e[pick] > hi)), axis=0)
        text = (f"Axis: the widest {percentiles[0]:g}-{percentiles[1]:g} percentile range of G - target over the "
                f"times shown, widened by 10 %. ")
        if beyond.any():
            far = e[pick][:, beyond]
            n = int(beyond.sum())
            text += (f"{n} cell{'s' if n != 1 else ''} beyond it at some time shown, not drawn "
                     f"({np.nanmin(far) * k:.3g} to {np.nanmax(far) * k:.3g} {unit})")
            if failed is not None and np.size(failed) == beyond.size:
                text += f", {int((beyond & np.asarray(failed, bool)).sum())} of them failed to program"
            text += "."
        else:
            text += "No cell beyond it."
        ax.set_xlim(edges[0], edges[-1])
        footnote(fig, text)
    ax.set(xlabel=label("G - target", unit), ylabel="cells", title="error distribution at several times")
    title(fig, "Conductance error after programming", run_label)
    return fig
