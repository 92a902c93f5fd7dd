"""I-V loops: current vs voltage on linear and logarithmic axes, SET and RESET onset marked."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analysis.device_metrics import RESET_RULE, SET_RULE, IVParameters
from analysis.figures.style import (
    WIDE,
    auto_prefix,
    colors,
    footnote,
    label,
    new_figure,
    no_data,
    plain_log_ticks,
    scale,
    title,
)


def iv_loops(voltage: np.ndarray, current: np.ndarray, cycle: np.ndarray | None = None,
             params: IVParameters | None = None, run_label: str = "", cycles_total: int | None = None) -> Figure:
    """One curve per sweep cycle; voltage (V) and current (A) in sweep order, cycle (n,) index.

    params: the SET voltage and RESET onset to mark (those of
    :func:`analysis.device_metrics.switching_voltages`, as the ``iv-sweep`` protocol records
    them; the report gives their medians over every cycle). cycles_total: cycles the run
    holds when only some are drawn; the figure says how many of them it draws.
    """
    fig, (lin, log) = new_figure(WIDE, ncols=2)
    v, i = np.asarray(voltage, float), np.asarray(current, float)
    cyc = np.zeros(v.shape, int) if cycle is None else np.asarray(cycle, int)
    k, unit = scale("A", auto_prefix(i))
    ids = np.unique(cyc)
    for c, colour in zip(ids, colors(len(ids), "plasma"), strict=True):
        sel = cyc == c
        lin.plot(v[sel], i[sel] * k, color=colour, lw=1.2, label=f"cycle {c}")
        log.semilogy(v[sel], np.abs(i[sel]) + 1e-15, color=colour, lw=1.2, label=f"cycle {c}")
    if v.size == 0:
        no_data(lin)
        no_data(log)
    total = len(ids) if cycles_total is None else int(cycles_total)
    lines = []
    if total > len(ids) and v.size:
        lines.append(f"{len(ids)} of {total} cycles drawn (cycles {', '.join(str(c) for c in ids)}); "
                     f"all {total} analysed.")
    if params is not None:
        for ax in (lin, log):
            for vx, name, col in ((params.set_voltage, "SET", "tab:red"),
                                  (params.reset_voltage, "RESET onset", "tab:blue")):
                if np.isfinite(vx):
                    ax.axvline(vx, color=col, ls="--", lw=0.8, label=f"{name} {vx:.2f} V")
        lines.append(f"Dashed: medians over the {total} cycles of the {SET_RULE} and the {RESET_RULE}.")
    lin.set(xlabel=label("voltage", "V"), ylabel=label("current", unit), title="I-V loop")
    log.set(xlabel=label("voltage", "V"), ylabel=label("|current|", "A"), title="I-V loop, |I| on log scale")
    if len(ids) + 2 <= 12 and lin.get_legend_handles_labels()[0]:
        lin.legend(loc="upper left", frameon=False, ncol=2)  # the sweep leaves that corner empty
    if lines:
        footnote(fig, "\n".join(lines))
    title(fig, "I-V sweep", run_label)
    return fig


def forming(form_voltage: np.ndarray, read_current: np.ndarray, target_current: float | None = None,
            rungs: np.ndarray | None = None, run_label: str = "") -> Figure:
    """Cells formed at each rung (V) of the forming ladder, and their read current (A) afterwards.

    rungs: the ladder's voltages (V) when known (all drawn, also those that formed nothing).
    """
    fig, (volts, current) = new_figure(WIDE, ncols=2)
    fv, rc = np.asarray(form_voltage, float), np.asarray(read_current, float)
    formed = np.isfinite(fv)
    ladder = np.unique(fv[formed]) if rungs is None else np.asarray(rungs, float)
    if ladder.size:
        width = float(np.min(np.diff(ladder))) if ladder.size > 1 else 0.05
        nearest = np.argmin(np.abs(fv[formed][:, None] - ladder[None, :]), axis=1)
        volts.bar(ladder, np.bincount(nearest, minlength=ladder.size), width=0.8 * width, color="tab:red")
    else:
        no_data(volts, "no cell formed")
    volts.set(xlabel=label("forming voltage (rung)", "V"), ylabel="cells formed",
              title=f"{formed.sum()} of {fv.size} cells formed")
    ok = np.isfinite(rc) & (rc > 0)
    if ok.any():
        k, unit = scale("A", auto_prefix(rc[ok]))
        lo, hi = np.log10(rc[ok].min() * k), np.log10(rc[ok].max() * k)
        current.hist(rc[ok] * k, bins=np.logspace(lo - 0.05, hi + 0.05, 30), color="tab:blue")
        current.set_xscale("log")
        if target_current:
            current.axvline(target_current * k, color="tab:red", ls="--", lw=1, label="formed threshold")
            current.legend(frameon=False)
        plain_log_ticks(current, "x")
    else:
        unit = "A"
        no_data(current)
    current.set(xlabel=label("read current after forming", unit), ylabel="cells", title="read current")
    title(fig, "Forming", run_label)
    return fig
