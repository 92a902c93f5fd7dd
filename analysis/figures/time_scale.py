"""Time-scale figures: sample quality against the physical time of one analog sample."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.style import WIDE, footnote, label, new_figure, no_data, plain_log_ticks, title


def quality_vs_time(time_per_sample: np.ndarray, rc: np.ndarray, kl: np.ndarray, bar: np.ndarray | None,
                    saturated: np.ndarray, kl_digits: np.ndarray | None = None, run_label: str = "",
                    floors: dict[str, tuple[float, float]] | None = None, note: str = "",
                    scores: Mapping[str, Mapping[str, tuple[np.ndarray, tuple[float, float]]]] | None = None) -> Figure:
    """First panel: ring KL per coordinate (and the digits latents', if given) against time per sample
    (s), the bar as a dashed line, each point labelled with its RC; the sampling floor of each task's
    KL (``floors``: task -> (median, spread)) as a grey band. One panel per entry of ``scores``
    (y label -> task -> (values (P,), floor (median, spread))): that score per task with its floor.
    Last panel: fraction of trajectories on a rail.

    time_per_sample, rc (P,) s; kl, kl_digits (P, 2); bar (2,) largest passing KL per coordinate;
    note: lines under the panels.
    """
    scores = scores or {}
    n = 2 + len(scores)
    ncols = 2
    fig, axes = new_figure((WIDE[0], WIDE[1] * int(np.ceil(n / ncols))), ncols=ncols, nrows=int(np.ceil(n / ncols)))
    q, sat, extra = axes[0], axes[n - 1], list(axes[1:n - 1])
    for ax in axes[n:]:
        ax.set_axis_off()
    _labels(q, sat)
    for ax, ylabel in zip(extra, scores, strict=True):
        ax.set(xlabel=label("time per sample (closed-loop run)", "µs"), ylabel=ylabel, title=ylabel.split(" (")[0])
    if not len(time_per_sample):  # a run killed before its first point
        for ax in (q, sat, *extra):
            no_data(ax)
        title(fig, "Time scale of the analog solver", run_label)
        return fig
    order = np.argsort(time_per_sample)
    t = np.asarray(time_per_sample, float)[order] * 1e6  # us: the study spans ns to ms, µs reads best
    for k, (name, style, col) in enumerate((("x", "o-", "tab:blue"), ("y", "s-", "tab:orange"))):
        q.loglog(t, np.asarray(kl)[order, k], style, color=col, label=f"ring KL {name}")
        if kl_digits is not None and len(kl_digits) == len(t):
            q.loglog(t, np.asarray(kl_digits)[order, k], style[0] + ":", color=col, mfc="none",
                     label=f"digits latent KL {name}")
        if bar is not None:
            q.axhline(float(bar[k]), color=col, ls="--", lw=1, label=f"ring bar {name} (1.5 x software + 0.02)")
    for (task, (median, spread)), style in zip((floors or {}).items(), (":", "-."), strict=False):
        if np.isfinite(median):
            q.axhspan(max(median - spread, 1e-6), median + spread, color="0.5", alpha=0.15, lw=0)
            q.axhline(median, color="0.3", ls=style, lw=1.2,
                      label=f"{task} sampling floor {median:.3g} ± {spread:.2g}")
    for tk, rk, kk in zip(t, np.asarray(rc)[order], np.max(np.asarray(kl)[order], axis=1), strict=True):
        q.annotate(f"RC {rk:.0e} s", (tk, kk), textcoords="offset points", xytext=(4, 6), fontsize=7)
    q.legend(frameon=False, fontsize=8)
    for ax, per_task in zip(extra, scores.values(), strict=True):
        for (task, (values, (median, spread))), style in zip(per_task.items(), ("o-", "s:"), strict=False):
            ring = task == "ring"
            ax.semilogx(t, np.asarray(values, float)[order], style, color="tab:green" if ring else "tab:purple",
                        mfc=None if ring else "none", label=task)
            if np.isfinite(median):
                ax.axhspan(median - spread, median + spread, color="0.5", alpha=0.15, lw=0)
                ax.axhline(median, color="0.3", ls=":" if task == "ring" else "-.", lw=1.2,
                           label=f"{task} sampling floor {median:.3g} ± {spread:.2g}")
        ax.legend(frameon=False, fontsize=8)
    plain_log_ticks(q)
    sat.semilogx(t, np.asarray(saturated)[order] * 100, "o-")
    footnote(fig, note)
    title(fig, "Time scale of the analog solver", run_label)
    return fig


def _labels(q: Any, sat: Any) -> None:
    q.set(xlabel=label("time per sample (closed-loop run)", "µs"), ylabel="KL divergence vs reference",
          title="quality against speed")
    sat.set(xlabel=label("time per sample (closed-loop run)", "µs"),
            ylabel=label("trajectories on an integrator rail", "%"), title="saturation", ylim=(-5, 105))
