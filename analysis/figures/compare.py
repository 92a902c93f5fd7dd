"""Comparison figures over several runs: one distribution or one curve per run."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.style import colors, label, legend, new_figure, no_data, scale


def overlay_histograms(series: Sequence[tuple[str, np.ndarray]], quantity: str, unit: str, prefix: str,
                       title: str) -> Figure:
    """Step histograms of each run's values (SI, shown with ``prefix``) on shared bins."""
    fig, (ax,) = new_figure()
    k, shown = scale(unit, prefix) if unit else (1.0, "")
    data = [(name, np.asarray(v, float)[np.isfinite(v)] * k) for name, v in series]
    data = [(n, v) for n, v in data if v.size]
    if not data:
        no_data(ax)
    else:
        allv = np.concatenate([v for _, v in data])
        lo, hi = np.percentile(allv, [0.5, 99.5])  # outliers (stuck cells) would squash the rest
        hi = hi if hi > lo else lo + 1
        bins = int(np.clip(np.sqrt(min(v.size for _, v in data)) * 1.5, 10, 60))
        edges = np.linspace(lo, hi, bins + 1)
        for (name, v), col in zip(data, colors(len(data), "tab10"), strict=True):
            ax.hist(v, bins=edges, histtype="step", lw=1.5, color=col, density=True, label=name)
        outside = int(np.sum((allv < lo) | (allv > hi)))
        if outside:
            ax.text(0.01, 0.97, f"{outside} value(s) beyond the axis range", transform=ax.transAxes,
                    va="top", fontsize=8, color="tab:red")
        ax.legend(frameon=False)
    ax.set(xlabel=label(quantity, shown), ylabel=label("density", f"1/{shown}" if shown else ""), title=title)
    fig.suptitle(f"Comparison of {len(series)} runs")
    return fig


def overlay_curves(series: Sequence[tuple[str, np.ndarray, np.ndarray]], xlabel: str, ylabel: str,
                   title: str, logx: bool = False, logy: bool = False, steps: bool = False) -> Figure:
    """One curve per run: ``series`` = [(run label, x, y)] already in the labelled units;
    ``steps`` draws step curves (cumulative distributions)."""
    fig, (ax,) = new_figure()
    for (name, x, y), col in zip(series, colors(len(series), "tab10"), strict=True):
        if steps:
            ax.plot(x, y, lw=1.5, color=col, label=name, drawstyle="steps-post")
        else:
            ax.plot(x, y, ".-", ms=3, lw=1.2, color=col, label=name)
    if not series:
        no_data(ax)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    legend(ax, len(series))
    fig.suptitle(f"Comparison of {len(series)} runs")
    return fig
