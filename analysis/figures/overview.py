"""Overview of any run: one panel per numeric stream (distribution or trend), so a run of a
protocol without a dedicated figure family still gets a readable report."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.style import GRID, auto_prefix, label, new_figure, no_data, scale, title

MAX_PANELS = 6


def streams_overview(arrays: dict[str, np.ndarray], units: dict[str, str], run_label: str = "") -> Figure:
    """Per non-empty stream (cell coordinates left out): 1-D streams against row number; others
    as a histogram of all values."""
    names = [n for n, a in arrays.items() if np.issubdtype(np.asarray(a).dtype, np.number)
             and np.asarray(a).size and not n.startswith("cell_")][:MAX_PANELS]
    ncols = min(max(len(names), 1), 3)
    nrows = int(np.ceil(max(len(names), 1) / ncols))
    fig, axes = new_figure((min(3.8 * ncols + 0.5, GRID[0]), 3.2 * nrows + 0.6), ncols=ncols, nrows=nrows)
    if not names:
        no_data(axes[0], "no numeric stream recorded")
    for ax, name in zip(axes, names, strict=False):
        a = np.asarray(arrays[name], float)
        unit = units.get(name, "")
        k, shown = scale(unit, auto_prefix(a)) if unit else (1.0, "")
        finite = a[np.isfinite(a)]
        if finite.size == 0:
            no_data(ax)
        elif a.ndim == 1:
            ax.plot(np.arange(len(a)), a * k, ".-", ms=3)
            ax.set(xlabel="row (record number)", ylabel=label(name, shown))
        else:
            ax.hist(finite * k, bins=40)
            ax.set(xlabel=label(name, shown), ylabel="values")
        ax.set_title(name)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    title(fig, "Recorded streams", run_label)
    return fig
