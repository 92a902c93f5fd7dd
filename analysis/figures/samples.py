"""Samples of the analog diffusion solver: 2-D scatter, time slices of the trajectories,
per-class latents and decoded images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.style import GRID, auto_prefix, colors, label, new_figure, no_data, scale, title

MAX_POINTS = 5000  # points drawn per panel (beyond: an even subsample)


def _thin(x: np.ndarray) -> np.ndarray:
    return x if len(x) <= MAX_POINTS else x[np.linspace(0, len(x) - 1, MAX_POINTS).astype(int)]


def time_slices(times: np.ndarray, snapshots: np.ndarray, unit: str = "", slices: int = 6,
                reference: np.ndarray | None = None, state_unit: str = "", run_label: str = "") -> Figure:
    """Scatter of the 2-D state at ``slices`` times of the trajectories.

    times: (T,) in ``unit`` ("s", or "" for dimensionless SDE time); snapshots: (T, N, 2) in
    ``state_unit`` ("V" for integrator outputs, "" for data units); reference: (M, 2) drawn
    in grey on the last panel.
    """
    t = np.asarray(times, float)
    pick = np.unique(np.linspace(0, max(len(t) - 1, 0), min(slices, max(len(t), 1))).astype(int))
    fig, axes = new_figure((2.5 * max(len(pick), 1) + 0.6, 3.3), ncols=max(len(pick), 1),
                           sharex=True, sharey=True)
    k, shown = scale(unit, auto_prefix(t)) if unit else (1.0, "")
    if len(t) == 0:
        no_data(axes[0])
    for ax, i in zip(axes, pick, strict=False):
        if reference is not None and i == pick[-1]:
            ax.plot(*_thin(np.asarray(reference)).T, ".", ms=1, color="0.7", label="reference")
        ax.plot(*_thin(snapshots[i]).T, ".", ms=3, alpha=0.7, color="tab:blue")
        # Round-off of the time axis (1e-16 ms for zero) is not information: snap it to 0.
        shown_t = 0.0 if abs(t[i]) <= 1e-9 * max(float(np.max(np.abs(t))), 1e-300) else t[i] * k
        ax.set(title=f"t = {shown_t:.3g} {shown}".rstrip(), xlabel=label("x1", state_unit), aspect="equal")
        ax.locator_params(nbins=4)
    axes[0].set(ylabel=label("x2", state_unit))
    title(fig, f"Sampling trajectories in time slices ({snapshots.shape[1] if len(t) else 0} stored)", run_label)
    return fig


def scatter(samples: np.ndarray, conditions: np.ndarray | None = None, classes: Sequence[str] = (),
            reference: np.ndarray | None = None, unit: str = "", run_label: str = "",
            group: str = "class") -> Figure:
    """Final samples (N, 2), coloured by condition when given, over a reference set (M, 2).

    ``group`` names what ``conditions`` distinguish in the legend ("class"; "" for plain names
    such as analog vs software)."""
    fig, (ax,) = new_figure((5.2, 5.0))
    s = np.asarray(samples, float)
    if reference is not None:
        ax.plot(*_thin(np.asarray(reference)).T, ".", ms=1, color="0.75", label="reference")
    if s.size == 0:
        no_data(ax)
    elif conditions is None:
        ax.plot(*_thin(s).T, ".", ms=2, alpha=0.6, color="tab:blue", label="generated")
    else:
        c = np.asarray(conditions)
        for k, col in zip(np.unique(c), colors(len(np.unique(c)), "tab10"), strict=True):
            name = classes[k] if k < len(classes) else str(k)
            ax.plot(*_thin(s[c == k]).T, ".", ms=2, alpha=0.6, color=col, label=f"{group} {name}".strip())
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, markerscale=4)
    ax.set(xlabel=label("x1", unit), ylabel=label("x2", unit), title=f"{len(s)} samples", aspect="equal")
    title(fig, "Generated samples", run_label)
    return fig


def decoded_images(images: np.ndarray, conditions: np.ndarray | None = None, classes: Sequence[str] = (),
                   per_class: int = 8, run_label: str = "", decoder: str = "") -> Figure:
    """A grid of decoded images (N, h, w), one row per class (``per_class`` each); ``decoder``
    names what decoded them in the title (e.g. "simulated RRAM decoder")."""
    imgs = np.asarray(images, float)
    c = np.zeros(len(imgs), int) if conditions is None else np.asarray(conditions, int)
    ids = np.unique(c) if len(c) else np.array([0])
    fig, axes = new_figure((min(1.1 * per_class + 0.8, GRID[0]), 1.2 * len(ids) + 0.8),
                           ncols=per_class, nrows=len(ids))
    for ax in axes:
        ax.set_axis_off()
    if len(imgs) == 0:
        axes[0].set_axis_on()
        no_data(axes[0])
    for r, k in enumerate(ids):
        chosen = imgs[c == k][:per_class]
        for j, img in enumerate(chosen):
            ax = axes[r * per_class + j]
            ax.imshow(img, cmap="gray_r", interpolation="nearest")
            if j == 0:
                name = classes[k] if k < len(classes) else str(k)
                ax.set_title(f"class {name}", fontsize=9, loc="left")
    title(fig, f"Decoded images per class, {decoder}" if decoder else "Decoded images per class", run_label)
    return fig


def class_accuracy(accuracy: np.ndarray, rows: Sequence[str], classes: Sequence[str] = (),
                   run_label: str = "") -> Figure:
    """Grouped bars of per-class accuracy (fraction 0..1): ``accuracy`` (len(rows), K)."""
    acc = np.atleast_2d(np.asarray(accuracy, float))
    fig, (ax,) = new_figure((6.4, 3.8))
    k = acc.shape[1]
    names = [classes[i] if i < len(classes) else str(i) for i in range(k)]
    width = 0.8 / max(len(acc), 1)
    for r, (row, col) in enumerate(zip(acc, colors(len(acc), "tab10"), strict=True)):
        ax.bar(np.arange(k) + (r - (len(acc) - 1) / 2) * width, row, width, color=col,
               label=rows[r] if r < len(rows) else f"row {r}")
    ax.set_xticks(np.arange(k), [f"class {n}" for n in names])
    ax.set(ylabel="accuracy (fraction)", ylim=(0, 1.05), title="classified as its condition")
    ax.legend(frameon=False, loc="lower right")
    title(fig, "Conditional generation", run_label)
    return fig


def panels(sets: Sequence[tuple[str, np.ndarray, np.ndarray | None]], unit: str = "",
           run_label: str = "", heading: str = "Samples") -> Figure:
    """A row of scatter panels on shared axes: ``sets`` = [(title, points (N, 2), condition (N,) or None)]."""
    fig, axes = new_figure((3.6 * max(len(sets), 1) + 0.4, 3.9), ncols=max(len(sets), 1), sharex=True, sharey=True)
    if not sets:
        no_data(axes[0])
    for ax, (name, pts, cond) in zip(axes, sets, strict=False):
        pts = np.asarray(pts, float)
        if cond is None or np.all(np.asarray(cond) < 0):
            ax.plot(*_thin(pts).T, ".", ms=1.5, alpha=0.5, color="tab:blue")
        else:
            c = np.asarray(cond)
            for k, col in zip(np.unique(c), colors(len(np.unique(c)), "tab10"), strict=True):
                ax.plot(*_thin(pts[c == k]).T, ".", ms=1.5, alpha=0.6, color=col, label=f"class {k}")
            ax.legend(frameon=False, markerscale=5, fontsize=7)
        ax.set(title=f"{name} ({len(pts)})", xlabel=label("x1", unit), aspect="equal")
    axes[0].set(ylabel=label("x2", unit))
    title(fig, heading, run_label)
    return fig
