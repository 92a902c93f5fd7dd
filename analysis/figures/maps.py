"""Array maps: conductance of every cell of a macro, and a programmed image pattern."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.style import GRID, WIDE, label, new_figure, no_data, scale, title


def array_maps(maps: np.ndarray, titles: Sequence[str], run_label: str = "") -> Figure:
    """Up to 8 maps (k, rows, cols) in S on one shared colour scale (µS), one panel each."""
    maps = np.asarray(maps, float)[:8]
    n = max(len(maps), 1)
    ncols = min(n, 4)
    nrows = int(np.ceil(n / ncols))
    fig, axes = new_figure((min(3.2 * ncols + 1.2, GRID[0]), 3.0 * nrows + 0.6), ncols=ncols, nrows=nrows)
    k, unit = scale("S", "u")
    if len(maps) == 0:
        no_data(axes[0])
        axes[0].set(xlabel="column (bit line)", ylabel="row (word line)")
        title(fig, "Array conductance maps", run_label)
        return fig
    finite = maps[np.isfinite(maps)]
    vmin, vmax = (np.percentile(finite, [0.5, 99.5]) * k) if finite.size else (0, 1)
    image = None
    for ax, m, t in zip(axes, maps, titles, strict=False):
        image = ax.imshow(m * k, cmap="viridis", vmin=vmin, vmax=vmax, origin="upper", interpolation="nearest")
        ax.set(title=t, xlabel="column (bit line)", ylabel="row (word line)")
        ax.grid(False)
    for ax in axes[len(maps):]:
        ax.set_axis_off()
    fig.colorbar(image, ax=list(axes), label=label("conductance", unit), shrink=0.9)
    title(fig, "Array conductance maps", run_label)
    return fig


def pattern(target: np.ndarray, programmed: np.ndarray, run_label: str = "") -> Figure:
    """Target image, programmed read-back and their difference, (rows, cols) in S."""
    fig, axes = new_figure(WIDE, ncols=3)
    k, unit = scale("S", "u")
    t, g = np.asarray(target, float) * k, np.asarray(programmed, float) * k
    vmin, vmax = np.nanmin(t), np.nanmax(t)
    for ax, img, name in ((axes[0], t, "target"), (axes[1], g, "programmed")):
        im = ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set(title=name, xlabel="column (bit line)", ylabel="row (word line)")
        ax.grid(False)
    fig.colorbar(im, ax=axes[:2].tolist(), label=label("conductance", unit), shrink=0.85)
    err = g - t
    # colour scale over 98 % of the cells; outliers (stuck cells) show in the extreme colour,
    # flagged by the colour bar's arrows
    lim = float(np.nanpercentile(np.abs(err), 98)) if np.isfinite(err).any() else 1.0
    lim = lim if lim > 0 else 1.0
    im = axes[2].imshow(err, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    axes[2].set(title="programmed - target", xlabel="column (bit line)", ylabel="row (word line)")
    axes[2].grid(False)
    fig.colorbar(im, ax=axes[2], label=label("error", unit), shrink=0.85, extend="both")
    title(fig, "Image pattern in a macro", run_label)
    return fig
