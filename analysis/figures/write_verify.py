"""Write-verify: convergence of the error with pulses, pulse counts, final error distribution."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.style import GRID, label, new_figure, no_data, scale, title


def write_verify(k: np.ndarray | None, abs_error: np.ndarray | None, pulses_per_cell: np.ndarray | None,
                 error: np.ndarray, rms_error: np.ndarray | None, tolerance: float | None,
                 run_label: str = "", rms_title: str = "array RMS error") -> Figure:
    """Four panels: |error| percentiles vs pulse number (from the pulse history), RMS error per
    iteration, pulses needed per cell, distribution of the final error (all errors in S).

    k: (K+1,) pulse numbers; abs_error: (n, K+1) S; pulses_per_cell: (n,);
    error: (n,) final programmed - target, S; rms_error: (iterations,) S; tolerance: S;
    rms_title: what the RMS panel shows (e.g. when derived from the pulse table).
    """
    fig, (conv, rms, pulses, hist) = new_figure(GRID, ncols=2, nrows=2)
    ku, unit = scale("S", "u")
    if k is not None and abs_error is not None and abs_error.size and k.size > 1:
        seen = np.isfinite(abs_error).any(axis=0)  # k = 0 is NaN unless the start was recorded
        for q, style in ((50, "-"), (90, "--"), (99, ":")):
            conv.plot(k[seen], np.nanpercentile(abs_error[:, seen], q, axis=0) * ku, ls=style, color="tab:blue",
                      label=f"{q}th percentile")
        if tolerance:
            conv.axhline(tolerance * ku, color="tab:red", lw=0.8, label="tolerance")
        conv.set_yscale("log")
        conv.legend(frameon=False)
    else:
        no_data(conv, "no pulse history")
    conv.set(xlabel="pulses applied to the cell", ylabel=label("|G - target|", unit), title="convergence per cell")
    if rms_error is not None and len(rms_error):
        rms.semilogy(np.arange(1, len(rms_error) + 1), np.asarray(rms_error) * ku, marker=".", color="tab:green")
    else:
        no_data(rms)
    rms.set(xlabel="iteration (pulse batch)", ylabel=label("RMS error", unit), title=rms_title)
    if pulses_per_cell is not None and len(pulses_per_cell):
        p = np.asarray(pulses_per_cell)
        pulses.hist(p, bins=np.arange(p.max() + 2) - 0.5, color="tab:purple")
    else:
        no_data(pulses)
    pulses.set(xlabel="pulses to converge", ylabel="cells", title="pulses per cell")
    e = np.asarray(error, float)
    e = e[np.isfinite(e)]
    if e.size:
        # A few stuck cells sit tens of µS away; one bin range over them hides the distribution
        # of every other cell. Histogram the central part and count what lies outside.
        span = max(4 * (tolerance or 0.0), float(np.percentile(np.abs(e), 99)))
        inside = np.abs(e) <= span
        hist.hist(e[inside] * ku, bins=int(np.clip(inside.sum() // 4, 10, 60)), color="tab:orange")
        if tolerance:
            for s in (-1, 1):
                hist.axvline(s * tolerance * ku, color="tab:red", lw=0.8)
        if (~inside).any():
            hist.text(0.02, 0.95, f"{int((~inside).sum())} cell(s) beyond ±{span * ku:.2g} {unit} "
                      "not shown (stuck or failed)", transform=hist.transAxes, va="top", fontsize=8)
    else:
        no_data(hist)
    hist.set(xlabel=label("programmed - target", unit), ylabel="cells", title="final error distribution")
    title(fig, "Write-verify", run_label)
    return fig
