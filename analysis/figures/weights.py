"""Target vs programmed conductances (weights mapped to conductance pairs)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.style import WIDE, label, new_figure, no_data, scale, title


def target_vs_programmed(target: np.ndarray, programmed: np.ndarray, what: str = "conductance",
                         unit: str = "S", prefix: str = "u", run_label: str = "") -> Figure:
    """Overlaid histograms of target and programmed values, and programmed against target.

    Values in SI ``unit`` ("" for dimensionless weights), shown with ``prefix`` ("u": µS).
    """
    fig, (hist, scatter) = new_figure(WIDE, ncols=2)
    k, unit = scale(unit, prefix) if unit else (1.0, "")
    t, g = np.asarray(target, float).ravel(), np.asarray(programmed, float).ravel()
    ok = np.isfinite(g) & np.isfinite(t)
    if not ok.any():
        no_data(hist)
        no_data(scatter)
    else:
        edges = np.linspace(min(t[ok].min(), g[ok].min()), max(t[ok].max(), g[ok].max()), 61) * k
        hist.hist(t[ok] * k, bins=edges, histtype="step", lw=1.5, color="0.2", label="target")
        hist.hist(g[ok] * k, bins=edges, histtype="stepfilled", alpha=0.5, color="tab:blue", label="programmed")
        hist.legend(frameon=False)
        scatter.plot(t[ok] * k, g[ok] * k, ".", ms=2, alpha=0.5, color="tab:blue", label="cells")
        lim = [edges[0], edges[-1]]
        scatter.plot(lim, lim, color="0.5", ls="--", lw=0.8, label="ideal")
        scatter.legend(frameon=False)
    hist.set(xlabel=label(what, unit), ylabel="cells", title="target vs programmed histogram")
    scatter.set(xlabel=label(f"target {what}", unit), ylabel=label(f"programmed {what}", unit),
                title="programmed against target")
    title(fig, f"Target vs programmed {what}s", run_label)
    return fig
