"""Checks on report figures shared by the report tests: labels carry units, panels hold data."""

from __future__ import annotations

import re

from matplotlib.axes import Axes
from matplotlib.figure import Figure

UNIT = re.compile(r"\((?:[mµnkM]?(?:S|V|A|s|Hz|ohm)|%|S\^2/Hz|1/\w+)\)")


def data_axes(fig: Figure) -> list[Axes]:
    """Visible axes that are panels (not colour bars, not switched off)."""
    return [ax for ax in fig.axes if ax.axison and ax.get_label() != "<colorbar>"]


def is_image(ax: Axes) -> bool:
    return bool(ax.images)


def artists(ax: Axes) -> int:
    """Lines, patches (bars, histograms), collections (scatter, bands) and images of a panel."""
    return len(ax.lines) + len(ax.patches) + len(ax.collections) + len(ax.images)


def assert_readable(fig: Figure, name: str) -> None:
    """Every panel is labelled on both axes (images: at least titled) and shows something."""
    axes = data_axes(fig)
    assert axes, f"{name}: no visible panel"
    assert fig.get_suptitle(), f"{name}: no figure title"
    for ax in axes:
        if is_image(ax) and not ax.get_xlabel():
            assert ax.get_title(), f"{name}: untitled image panel"
            continue
        ylabel = ax.get_ylabel() or any(o.get_ylabel() for o in ax.get_shared_y_axes().get_siblings(ax))
        assert ax.get_xlabel() and ylabel, f"{name}: panel {ax.get_title()!r} lacks an axis label"
        empty_note = any(t.get_text().startswith("no ") for t in ax.texts)
        assert artists(ax) > 0 or empty_note, f"{name}: panel {ax.get_title()!r} is blank"


def has_unit(text: str) -> bool:
    """Does an axis label name its unit, e.g. ``conductance (µS)``?"""
    return bool(UNIT.search(text))
