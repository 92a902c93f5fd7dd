"""Noise figures: read noise vs integration window and its spectrum, write-noise
distributions, and the noise-impact curves and heatmaps of a noise sweep."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.device_metrics import ReadNoise
from analysis.figures.style import (
    WIDE,
    colors,
    footnote,
    label,
    legend,
    new_figure,
    no_data,
    plain_log_ticks,
    scale,
    title,
)


def read_noise(noise: ReadNoise | None, spectra: Sequence[tuple[str, np.ndarray, np.ndarray]],
               run_label: str = "") -> Figure:
    """Left: relative read noise sigma/G vs integration window (s). Right: PSD (S^2/Hz) of
    each read series, ``spectra`` = [(legend, frequency Hz, psd S^2/Hz)]."""
    fig, (win, psd) = new_figure(WIDE, ncols=2)
    if noise is not None and noise.window.size:
        win.loglog(noise.window, noise.relative_sigma * 100, "o-", color="tab:blue",
                   label=f"median over cells, slope {noise.exponent:.2f}")
        win.legend(frameon=False)
        plain_log_ticks(win, "y")
    else:
        no_data(win)
    win.set(xlabel=label("integration window", "s"), ylabel=label("read noise sigma / G", "%"),
            title="read noise vs window")
    for (name, f, p), col in zip(spectra, colors(len(spectra), "plasma"), strict=True):
        psd.loglog(f, p, color=col, lw=1, label=name)
    if not spectra:
        no_data(psd, "no series of >= 4 reads")
    legend(psd, len(spectra))
    psd.set(xlabel=label("frequency", "Hz"), ylabel=label("power spectral density", "S^2/Hz"),
            title="spectrum of successive reads")
    title(fig, "Read noise", run_label)
    return fig


def write_noise(target: np.ndarray, readback: np.ndarray, run_label: str = "") -> Figure:
    """Left: histogram of G - target (S) per distinct target over all cycles. Right: the
    spread (std over cycles, per cell) against the target conductance."""
    fig, (hist, spread) = new_figure(WIDE, ncols=2)
    k, unit = scale("S", "u")
    t, rb = np.asarray(target, float), np.asarray(readback, float)
    if rb.size == 0:
        no_data(hist)
        no_data(spread)
    else:
        err = rb - t[None, :]
        levels = np.unique(t)
        for lvl, col in zip(levels, colors(len(levels), "viridis"), strict=True):
            e = err[:, t == lvl].ravel()
            hist.hist(e[np.isfinite(e)] * k, bins=40, histtype="step", lw=1.4, color=col,
                      label=f"target {lvl * k:.3g} {unit}")
        legend(hist, len(levels))
        sd = np.nanstd(rb, axis=0) if len(rb) > 1 else np.full(t.shape, np.nan)
        spread.plot(t * k, sd * k, ".", ms=4, alpha=0.6, color="tab:blue")
    hist.set(xlabel=label("G - target", unit), ylabel="cell x cycles", title="write-noise distribution")
    spread.set(xlabel=label("target", unit), ylabel=label("std over cycles", unit), title="spread per cell")
    title(fig, "Write noise", run_label)
    return fig


def noise_heatmaps(read_levels: np.ndarray, write_levels: np.ndarray, grids: Mapping[str, np.ndarray],
                   run_label: str = "", labels: Mapping[str, np.ndarray] | None = None, note: str = "") -> Figure:
    """One heatmap per metric, two per row: ``grids[title]`` (len(read_levels), len(write_levels))
    already in the unit its title names; noise levels are multiples of the device defaults.
    ``labels[title]``: per cell a text shown instead of the value, the cell blanked (hatched
    grey, left out of the colour scale); "" keeps the value. ``note``: lines under the panels."""
    labels = labels or {}
    n = max(len(grids), 1)
    ncols = min(n, 2)
    nrows = int(np.ceil(n / ncols))
    fig, axes = new_figure((5.2 * ncols + 0.4, 3.8 * nrows + 0.6 + (0.4 if note else 0.0)), ncols=ncols, nrows=nrows)
    if not grids:
        no_data(axes[0])
    for ax, (name, grid) in zip(axes, grids.items(), strict=False):
        text = np.asarray(labels.get(name, np.full(np.shape(grid), "")), dtype=object)
        blank = text != ""
        grid = np.where(blank, np.nan, np.asarray(grid, float))
        if blank.any():
            ax.imshow(np.where(blank, 1.0, np.nan), origin="lower", cmap="Greys", vmin=0, vmax=4, aspect="auto")
        im = ax.imshow(grid, origin="lower", cmap="magma_r", aspect="auto")
        ax.set_xticks(range(len(write_levels)), [f"{w:g}" for w in write_levels])
        ax.set_yticks(range(len(read_levels)), [f"{r:g}" for r in read_levels])
        finite = grid[np.isfinite(grid)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        for (i, j), value in np.ndenumerate(grid):
            dark = hi > lo and (value - lo) / (hi - lo) > 0.55  # magma_r: high values are dark
            shown = text[i, j] or (f"{value:.3g}" if np.isfinite(value) else "missing")
            ax.text(j, i, shown, ha="center", va="center", fontsize=8, color="white" if dark else "black")
        ax.set(xlabel="write noise (x default)", ylabel="read noise (x default)", title=name)
        ax.grid(False)
        fig.colorbar(im, ax=ax, shrink=0.9)
    for ax in axes[len(grids):]:
        ax.set_axis_off()
    footnote(fig, note)
    title(fig, "Noise impact", run_label)
    return fig


#: A median this many floor standard deviations below the sampling floor is marked: no sampler
#: scores there, so samples left the score's range.
BELOW_FLOOR = 3.0

#: Colours of the noise-aware (noise-injection trained) and plain models.
MODEL_COLORS = {True: "tab:blue", False: "tab:orange"}


@dataclass(frozen=True)
class RobustnessLine:
    """One model's quality against one noise multiplier: ``levels`` (x device default), the
    ``median`` and quartiles ``q25``, ``q75`` over simulated worlds (same length), ``worlds``
    finished at each level; ``baseline``: the noise-free software sampler's median at each
    level (None: not drawn)."""

    levels: np.ndarray
    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    worlds: np.ndarray
    baseline: np.ndarray | None = None


def noise_robustness(panels: Sequence[tuple[str, str, Mapping[str, tuple[bool, RobustnessLine]]]],
                     run_label: str = "", heading: str = "Noise robustness", note: str = "",
                     floors: Sequence[tuple[float, float, str] | None] = (), ncols: int | None = None) -> Figure:
    """Fig. 5e/f style: one panel per (x label, y label, {model: (noise-aware, line)}); per
    model the median over worlds as a line and the interquartile range as a band, the
    noise multiplier on a log2 axis; y on a log axis when the medians span more than a
    decade. ``note``: a line under the panels (what the metric is, what was not swept).
    ``floors[k]``: (median, spread, legend text) of panel k's sampling floor, drawn as a grey
    dotted line in a ± spread band (None or missing: none). ``ncols``: panels per row (default: all
    in one row)."""
    n = max(len(panels), 1)
    ncols = min(ncols or n, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = new_figure((4.6 * ncols + 0.4, 3.6 * nrows + 1.0), ncols=ncols, nrows=nrows)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for k, (ax, (xlabel, ylabel, lines)) in enumerate(zip(axes, panels, strict=False)):
        ax.set(xlabel=xlabel, ylabel=ylabel)
        for model, (aware, line) in lines.items():
            ok = line.worlds > 0
            if not ok.any():
                continue
            color = MODEL_COLORS[aware]
            n = int(line.worlds[ok].max())
            ax.fill_between(line.levels[ok], line.q25[ok], line.q75[ok], color=color, alpha=0.2, lw=0)
            ax.plot(line.levels[ok], line.median[ok], "o-", color=color, ms=4,
                    label=f"{model} ({'noise-aware' if aware else 'plain'}), median, IQR band, n = {n}")
            if line.baseline is not None:
                ax.plot(line.levels[ok], line.baseline[ok], "--", color=color, lw=1,
                        label=f"{model}, noise-free software sampler, median")
        if not ax.lines:
            no_data(ax, "no point finished")
            continue
        levels = np.unique(np.concatenate([np.asarray(ln.get_xdata(), float) for ln in ax.lines]))
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [f"{v:g}" for v in levels])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ys = np.concatenate([np.asarray(ln.get_ydata(), float) for ln in ax.lines])
        ys = ys[np.isfinite(ys) & (ys > 0)]
        if ys.size and ys.max() / ys.min() > 10:
            # decades and their 2x, 5x, labelled as plain numbers; unlabelled minor ticks between
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        floor = floors[k] if k < len(floors) else None
        if floor is not None and np.isfinite(floor[0]):  # after the ticks: its x data are axes fractions
            ax.axhspan(floor[0] - floor[1], floor[0] + floor[1], color="0.5", alpha=0.15, lw=0)
            ax.axhline(floor[0], color="0.3", ls=":", lw=1.2, label=floor[2])
            # no sampler scores below the floor: a median far below it lost samples out of the
            # score's range (counted in the normalisation, not in the bins), it is no better match
            below = [(line.levels[m], line.median[m]) for _, line in lines.values()
                     if (m := (line.worlds > 0) & (line.median < floor[0] - BELOW_FLOOR * floor[1])).any()]
            if below:
                ax.plot(np.concatenate([b[0] for b in below]), np.concatenate([b[1] for b in below]), "x",
                        color="tab:red", ms=10, mew=2, label=f"more than {BELOW_FLOOR:g} std below the floor: "
                        "samples left the score's range")
        ax.axvline(1.0, color="0.5", lw=0.8, ls=":")
    # one legend for all panels (the same models), where it hides least of the first; a panel
    # with a marker the first lacks gets its own
    drawn = [ax for ax in axes if ax.lines]
    if drawn:
        drawn[0].legend(loc="best", frameon=False)
        for ax in drawn[1:]:
            if any(ln.get_label().startswith("more than") for ln in ax.lines):
                ax.legend(handles=[ln for ln in ax.lines if ln.get_label().startswith("more than")],
                          loc="best", frameon=False, fontsize=7)
    footnote(fig, note)
    title(fig, heading, run_label)
    return fig
