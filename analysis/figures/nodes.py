"""Every node of the analog network during one sampling (Fig. 3a) and each layer's input voltages (Fig. 3c)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.style import auto_prefix, colors, footnote, label, new_figure, no_data, scale, title


def node_waveforms(t: np.ndarray, groups: Sequence[tuple[str, Sequence[str], np.ndarray]], run_label: str = "",
                   note: str = "") -> Figure:
    """Stacked panels sharing the time axis: one per group of nodes (integrators, each hidden
    layer, the output layer), every node of the group a line; up to 4 lines get a legend, more
    are coloured dark to light in node order (the panel title says so).

    t: (P,) s; groups: (panel title, line names (n,), traces (n, P) V), top to bottom.
    """
    fig, axes = new_figure((9.0, 2.0 * len(groups) + 0.9), nrows=len(groups), sharex=True)
    kt, tunit = scale("s", auto_prefix(t))
    every = np.concatenate([np.ravel(v) for _, _, v in groups if np.size(v)] or [np.zeros(1)])
    kv, vunit = scale("V", auto_prefix(every))
    for ax, (name, lines, volts) in zip(axes, groups, strict=True):
        if not len(volts):
            no_data(ax, "not recorded")
        many = len(volts) > 4
        palette = colors(len(volts), "viridis") if many else [f"C{i}" for i in range(len(volts))]
        for line, v, col in zip(lines, volts, palette, strict=True):
            ax.plot(t * kt, v * kv, lw=0.9, color=col, label=line)
        if 0 < len(volts) <= 4:
            ax.legend(frameon=False, fontsize=7, loc="upper left", ncols=len(volts))
        if many:
            name += f" (colour: {lines[0]} dark to {lines[-1]} light)"
        ax.set_title(name, fontsize="medium", loc="left")
        ax.set_ylabel(label("voltage", vunit))
    axes[-1].set_xlabel(label("time", tunit))
    title(fig, "Voltages of every node of the analog network during one sampling", run_label)
    footnote(fig, note)
    return fig


def layer_inputs(inputs: Sequence[np.ndarray], names: Sequence[str], run_label: str = "", note: str = "",
                 bins: int = 60) -> Figure:
    """One histogram per layer of the voltages on its inputs (V), over every sample and time;
    log counts (a ReLU layer's outputs sit at 0 V much of the time). Each panel states the
    number of values, their range and, where it is over 1 %, the fraction within ±1 mV of 0 V."""
    fig, axes = new_figure((3.6 * len(inputs) + 0.6, 3.9), ncols=len(inputs))
    every = np.concatenate([np.ravel(v) for v in inputs if np.size(v)] or [np.zeros(1)])
    kv, vunit = scale("V", auto_prefix(every))
    for ax, name, v in zip(axes, names, inputs, strict=True):
        v = np.asarray(v, float).ravel()
        v = v[np.isfinite(v)]
        ax.set(title=name, xlabel=label("input voltage", vunit), ylabel="values")
        if not v.size:
            no_data(ax)
            continue
        counts, _, _ = ax.hist(v * kv, bins=bins, color="tab:blue", log=True)
        ax.set_ylim(0.5, counts.max() * 40)        # room above the bars for the numbers
        near_zero = float(np.mean(np.abs(v) < 1e-3))
        at_zero = f"\n{100 * near_zero:.0f} % within ±1 mV of 0 V" if near_zero > 0.01 else ""
        ax.text(0.98, 0.97, f"{v.size:,} values\n{v.min() * kv:.3g} to {v.max() * kv:.3g} {vunit}{at_zero}",
                transform=ax.transAxes, ha="right", va="top", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.5})
        ax.locator_params(axis="x", nbins=5)
    title(fig, "Input voltages of each layer of the analog network", run_label)
    footnote(fig, note)
    return fig
