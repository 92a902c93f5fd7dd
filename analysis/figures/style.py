"""Common look of every report figure: Agg canvas, sizes, fonts, unit-scaled axes.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas directly
(no pyplot, no backend switch), so reports run in threads, next to the Qt GUI, and
never open a window. Build figures inside :func:`context` for the report style. Values are stored in SI
units; axes show them with an SI prefix chosen per quantity (µS, ms, mV), and
every axis label carries its unit in parentheses: ``"conductance (µS)"``. Figure text
writes µ (micro) and ± (never "u" or "+-").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

DPI = 110
SINGLE = (6.4, 4.4)   # in, one panel
WIDE = (11.0, 4.4)    # in, two or three panels side by side
GRID = (11.0, 8.0)    # in, a grid of panels
RC = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
}


@contextlib.contextmanager
def context() -> Iterator[None]:
    """The report style for figures built inside the block (global rcParams untouched after)."""
    with matplotlib.rc_context(RC):
        yield

# SI prefixes used on axes: the scale that divides the SI value, and the prefix text.
PREFIXES = {"": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9, "k": 1e3, "M": 1e6}
MICRO = "µ"  # how the prefix "u" is written in figure text
PLUS_MINUS = "±"


def prefix_text(prefix: str) -> str:
    """How an SI prefix is written in figure text: "u" as µ, the others as they are."""
    return MICRO if prefix == "u" else prefix


def new_figure(size: tuple[float, float] = SINGLE, ncols: int = 1, nrows: int = 1,
               **kwargs: object) -> tuple[Figure, np.ndarray]:
    """A figure on an Agg canvas and its axes as a flat array (always an array)."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes.ravel()


def scale(unit: str, prefix: str) -> tuple[float, str]:
    """Factor to multiply SI values by, and the label unit: ``scale("S", "u") -> (1e6, "µS")``."""
    if prefix not in PREFIXES:
        raise ValueError(f"prefix: one of {sorted(PREFIXES)}, got {prefix!r}")
    return 1.0 / PREFIXES[prefix], f"{prefix_text(prefix)}{unit}"


def auto_prefix(values: np.ndarray) -> str:
    """The SI prefix that puts the typical magnitude of ``values`` between 1 and 1000."""
    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return ""
    typical = float(np.percentile(v, 90))
    for prefix in ("n", "u", "m", "", "k", "M"):
        if typical < 1000 * PREFIXES[prefix]:
            return prefix
    return "M"


def label(quantity: str, unit: str, prefix: str = "") -> str:
    """Axis label ``"quantity (unit)"``; dimensionless quantities get no parentheses. ``prefix``
    "u" is written µ."""
    shown = f"{prefix_text(prefix)}{unit}"
    return f"{quantity} ({shown})" if unit else quantity


def no_data(ax: Axes, why: str = "no data recorded") -> None:
    """Mark an empty panel (an interrupted run, a stream never reached) instead of leaving it blank."""
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="0.4")


def legend(ax: Axes, n_items: int, max_items: int = 12) -> None:
    """A legend when there are few enough entries to read; otherwise none."""
    if 0 < n_items <= max_items and ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", frameon=False)


def title(fig: Figure, text: str, run_label: str = "") -> None:
    """Figure title; the run's name and status on a second line when given."""
    fig.suptitle(text + (f"\n{run_label}" if run_label else ""), fontsize=10)


def footnote(fig: Figure, text: str) -> None:
    """A note under the panels (what a metric is, its sampling floor), wrapped to the figure's
    width; the panels move up to make room for its lines."""
    if not text:
        return
    fig.text(0.01, 0.0, text, fontsize=7, color="0.3", ha="left", va="bottom", wrap=True)
    per_line = max(fig.get_figwidth() * 17, 1)  # characters of 7 pt text per line, about
    lines = sum(max(1, int(np.ceil(len(part) / per_line))) for part in text.split("\n"))
    room = min((lines * 0.13 + 0.1) / fig.get_figheight(), 0.5)  # 7 pt lines are ~0.12 in apart
    fig.get_layout_engine().set(rect=(0, room, 1, 1 - room))


def plain_log_ticks(ax: Axes, axis: str = "y") -> None:
    """Log axis labelled with plain numbers (0.2, 0.5, 1); intermediate ticks are labelled
    too when the axis spans less than two decades (else only the decades)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    target.set_major_formatter(plain)
    short = lo > 0 and hi / lo < 100
    target.set_minor_formatter(plain if short else NullFormatter())


def colors(n: int, cmap: str = "viridis") -> Sequence[tuple[float, float, float, float]]:
    """``n`` colours spread over a perceptually uniform map (ordered series: times, levels)."""
    return [tuple(c) for c in matplotlib.colormaps[cmap](np.linspace(0.0, 0.9, max(n, 1)))][:n]


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path`` and return the path.

    The saved area is the figure's tight bounding box: the constrained layout alone, run
    once at save time, can leave tick and axis labels of equal-aspect panels (time
    slices) cut off at the bottom edge.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.08)
    return path
