"""Samples of the analog diffusion solver: 2-D scatter, time slices of the trajectories,
per-class latents and decoded images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.style import GRID, auto_prefix, colors, footnote, label, new_figure, no_data, scale, title

MAX_POINTS = 5000  # points drawn per panel (beyond: an even subsample)


def _thin(x: np.ndarray) -> np.ndarray:
    return x if len(x) <= MAX_POINTS else x[np.linspace(0, len(x) - 1, MAX_POINTS).astype(int)]


def time_slices(times: np.ndarray, snapshots: np.ndarray, unit: str = "", slices: int = 6,
                reference: np.ndarray | None = None, state_unit: str = "", run_label: str = "",
                groups: np.ndarray | None = None, group_names: Sequence[str] = ()) -> Figure:
    """Scatter of the 2-D state at ``slices`` times of the trajectories.

    times: (T,) in ``unit`` ("s", or "" for dimensionless SDE time); snapshots: (T, N, 2) in
    ``state_unit`` ("V" for integrator outputs, "" for data units); reference: (M, 2) drawn
    in grey on the last panel; groups: (N,) class of each trajectory (one colour each,
    named by ``group_names`` in a legend: the conditional task's three distributions).
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
        if groups is None:
            ax.plot(*_thin(snapshots[i]).T, ".", ms=3, alpha=0.7, color="tab:blue")
        else:
            g = np.asarray(groups)
            for cls, col in zip(np.unique(g), colors(len(np.unique(g)), "tab10"), strict=True):
                name = group_names[cls] if cls < len(group_names) else f"class {cls}"
                ax.plot(*_thin(snapshots[i][g == cls]).T, ".", ms=3, alpha=0.7, color=col,
                        label=f"{name} ({int(np.sum(g == cls))})")
        # Round-off of the time axis (1e-16 ms for zero) is not information: snap it to 0.
        shown_t = 0.0 if abs(t[i]) <= 1e-9 * max(float(np.max(np.abs(t))), 1e-300) else t[i] * k
        ax.set(title=f"t = {shown_t:.3g} {shown}".rstrip(), xlabel=label("x1", state_unit), aspect="equal")
        ax.locator_params(nbins=4)
    axes[0].set(ylabel=label("x2", state_unit))
    if groups is not None and len(t):
        axes[-1].legend(loc="upper right", fontsize="small", markerscale=2)
    title(fig, f"Sampling trajectories in time slices ({snapshots.shape[1] if len(t) else 0} stored)", run_label)
    return fig


def scatter(samples: np.ndarray, conditions: np.ndarray | None = None, classes: Sequence[str] = (),
            reference: np.ndarray | None = None, unit: str = "", run_label: str = "",
            group: str = "class", note: str = "") -> Figure:
    """Final samples (N, 2), coloured by condition when given, over a reference set (M, 2).

    ``group`` names what ``conditions`` distinguish in the legend ("class"; "" for plain names
    such as analog vs software); ``note``: lines under the panel (the KLs with their floor)."""
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
    footnote(fig, note)
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


def shared_start(times: np.ndarray, trajectories: np.ndarray, images: np.ndarray | None = None,
                 classes: Sequence[str] = (), state_unit: str = "V", run_label: str = "") -> Figure:
    """One initial state, one trajectory per condition (Fig. 4f): the 2-D paths, both
    coordinates against time, and each end decoded.

    times: (T,) s; trajectories: (C, T, 2) in ``state_unit``, all from the same start;
    images: (C, h, w) decoded ends in [0, 1], or None.
    """
    traj = np.asarray(trajectories, float)
    n = len(traj)
    fig, axes = new_figure((GRID[0], 3.4 + (1.4 if images is not None else 0.0)), ncols=3,
                           nrows=2 if images is not None else 1)
    k, shown = scale("s", auto_prefix(np.asarray(times, float)))
    cols = colors(max(n, 1), "tab10")
    path_ax, x1_ax, x2_ax = axes[:3]
    for c in range(n):
        name = classes[c] if c < len(classes) else f"class {c}"
        path_ax.plot(traj[c, :, 0], traj[c, :, 1], color=cols[c], lw=1.2, label=name)
        path_ax.plot(traj[c, -1, 0], traj[c, -1, 1], "o", color=cols[c], ms=5)
        x1_ax.plot(times * k, traj[c, :, 0], color=cols[c], lw=1.2)
        x2_ax.plot(times * k, traj[c, :, 1], color=cols[c], lw=1.2)
    if n:
        path_ax.plot(traj[0, 0, 0], traj[0, 0, 1], "k*", ms=9, label="shared start")
        path_ax.legend(fontsize="small")
    else:
        no_data(path_ax)
    path_ax.set(xlabel=label("x1", state_unit), ylabel=label("x2", state_unit), aspect="equal",
                title="paths from one start")
    x1_ax.set(xlabel=f"time ({shown})", ylabel=label("x1", state_unit), title="x1 waveforms")
    x2_ax.set(xlabel=f"time ({shown})", ylabel=label("x2", state_unit), title="x2 waveforms")
    path_ax.locator_params(axis="x", nbins=3)
    if images is not None:
        for c, ax in enumerate(axes[3:]):
            ax.set_axis_off()
            if c < len(images):
                ax.imshow(images[c], cmap="gray_r", interpolation="nearest")
                ax.set_title(f"decoded: {classes[c] if c < len(classes) else f'class {c}'}", fontsize=9)
    title(fig, "One initial latent, every condition", run_label)
    return fig


def feature_maps(maps: Sequence[np.ndarray], classes: Sequence[str] = (), run_label: str = "") -> Figure:
    """The decoder's output maps layer by layer (Fig. 4c): one row per class, each layer's
    channels side by side. maps: per layer (K, C, H, W) V, K latents (one per class)."""
    n_rows = len(maps[0]) if maps else 0
    widths = [m.shape[1] for m in maps]
    n_cols = sum(widths)
    fig, axes = new_figure((min(0.9 * n_cols + 1.0, GRID[0] * 1.6), 1.1 * max(n_rows, 1) + 1.0),
                           ncols=max(n_cols, 1), nrows=max(n_rows, 1))
    axes = np.asarray(axes).reshape(max(n_rows, 1), max(n_cols, 1))
    for ax in axes.ravel():
        ax.set_axis_off()
    if not n_rows:
        axes[0, 0].set_axis_on()
        no_data(axes[0, 0])
    for r in range(n_rows):
        col = 0
        for k, m in enumerate(maps):
            top = float(np.max(np.abs(m))) or 1.0     # one colour scale per layer, all classes
            for c in range(m.shape[1]):
                ax = axes[r, col]
                ax.imshow(m[r, c], cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest")
                if r == 0 and c == 0:
                    last = k == len(maps) - 1
                    ax.set_title(f"layer {k}{' (logits)' if last else ''}\n±{top * 1e3:.3g} mV", fontsize=8,
                                 loc="left")
                if col == 0:
                    name = classes[r] if r < len(classes) else f"class {r}"
                    ax.text(-0.15, 0.5, name, transform=ax.transAxes, ha="right", va="center", fontsize=8)
                col += 1
    title(fig, "Decoder feature maps, read on the bench (one latent per class)", run_label)
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
           run_label: str = "", heading: str = "Samples", note: str = "") -> Figure:
    """A row of scatter panels on shared axes: ``sets`` = [(title, points (N, 2), condition (N,) or None)];
    ``note``: lines under the panels (the KLs with their floor)."""
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
    footnote(fig, note)
    title(fig, heading, run_label)
    return fig


#: How analog and software samples look in every figure that shows both: colour and marker differ.
ANALOG_STYLE = {"color": "tab:red", "marker": "o", "ms": 2.2, "alpha": 0.55, "ls": "none", "mew": 0}
SOFTWARE_STYLE = {"color": "tab:blue", "marker": "+", "ms": 3.5, "alpha": 0.7, "ls": "none", "mew": 0.8}


def analog_vs_software(analog: np.ndarray, software: np.ndarray | None = None, initial: np.ndarray | None = None,
                       condition: np.ndarray | None = None, reference: np.ndarray | None = None, unit: str = "",
                       run_label: str = "", note: str = "") -> Figure:
    """``samples``: the analog solver's samples (N, 2) beside the software baseline's from the same
    initial noise, and both overlaid, in distinct colours and markers (analog: red dots,
    software: blue crosses) with a legend; the initial noise first when given (its own axes:
    it spans a wider range). A condition (N,) colours the classes in the single panels.
    ``reference`` (M, 2): drawn in grey under the samples when given. ``note``: lines under
    the panels (the KLs with their floor)."""
    sets = [("analog solver", np.asarray(analog, float), ANALOG_STYLE)]
    if software is not None:
        sets.append(("software baseline", np.asarray(software, float), SOFTWARE_STYLE))
    first = int(initial is not None)
    n_panels = first + len(sets) + (software is not None)
    fig, axes = new_figure((3.6 * n_panels + 0.4, 4.1), ncols=n_panels)
    cond = None if condition is None or np.all(np.asarray(condition) < 0) else np.asarray(condition)
    if initial is not None:
        pts = np.asarray(initial, float)
        axes[0].plot(*_thin(pts).T, ".", ms=1.5, alpha=0.5, color="0.35")
        axes[0].set(title=f"initial noise ({len(pts)})", xlabel=label("x1", unit), ylabel=label("x2", unit),
                    aspect="equal")
    shown = np.vstack([p for _, p, _ in sets] + ([np.asarray(reference, float)] if reference is not None else []))
    shown = shown[np.all(np.isfinite(shown), axis=1)]
    lo, hi = (shown.min(), shown.max()) if shown.size else (-1.0, 1.0)
    pad = 0.08 * (hi - lo) if hi > lo else 1.0
    sample_axes = axes[first:]

    def ref(ax: object) -> None:
        if reference is not None:
            ax.plot(*_thin(np.asarray(reference, float)).T, ".", ms=1, color="0.8", label="reference")

    for ax, (name, pts, style) in zip(sample_axes, sets, strict=False):
        ref(ax)
        if cond is None or len(cond) != len(pts):
            ax.plot(*_thin(pts).T, **style, label=name)
        else:
            ids = np.unique(cond)
            for k, col in zip(ids, colors(len(ids), "tab10"), strict=True):
                ax.plot(*_thin(pts[cond == k]).T, **{**style, "color": col}, label=f"class {k}")
        ax.set(title=f"{name} ({len(pts)})")
    if software is not None:
        ax = sample_axes[-1]
        ref(ax)
        ax.plot(*_thin(sets[1][1]).T, **SOFTWARE_STYLE, label="software baseline")
        ax.plot(*_thin(sets[0][1]).T, **ANALOG_STYLE, label="analog solver")
        ax.set(title="analog and software overlaid")
    for ax in sample_axes:  # room above the points for the legend
        ax.legend(frameon=False, markerscale=3, fontsize=7, loc="upper center", ncol=3, handletextpad=0.2,
                  columnspacing=0.8)
        ax.set(xlabel=label("x1", unit), ylabel=label("x2", unit), aspect="equal",
               xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad + 0.12 * (hi - lo)))
    footnote(fig, note)
    title(fig, "Generated samples", run_label)
    return fig
