"""Comparison figures for several run files: what the runs have in common, one overlay
per family (programming error, pulses, I-V, retention spread, read noise, maps, samples)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from analysis import characterization_data as ld
from analysis.figures.compare import overlay_curves, overlay_histograms
from analysis.figures.style import label
from analysis.run_reader import Run

log = logging.getLogger("rrambench.report")


def comparison(runs: Sequence[Run], names: Sequence[str]) -> list[tuple[str, Figure]]:
    """Overlay figures for every family present in at least two of ``runs``."""
    errors, pulses, iv, spread, rnoise, maps = [], [], [], [], [], []
    for run, name in zip(runs, names, strict=True):
        for prefix in ld.programming_prefixes(run):
            data = ld.load_programming(run, prefix)
            tag = f"{name} {prefix.rstrip('_')}".strip()
            errors.append((tag, data.final - data.target))
            if data.pulses_per_cell is not None:
                p = np.sort(np.asarray(data.pulses_per_cell, float))
                pulses.append((tag, p, np.arange(1, p.size + 1) / max(p.size, 1)))
        data = ld.load_iv(run)
        if data is not None and len(data.voltage):
            iv.append((name, data.voltage[0], np.abs(data.current[0]) + 1e-15))
        data = ld.load_retention(run)
        if data is not None and len(data.time) >= 2:
            fit_sd = np.nanstd(data.g, axis=1) if data.level is None else _level_spread(data.g, data.level)
            spread.append((name, data.time, fit_sd * 1e6))
        data = ld.load_read_noise(run)
        if data is not None:
            pts = {}
            for w, _, _, g in data.series():
                if len(g) >= 2:
                    pts[w] = float(np.nanmedian(np.nanstd(g, 0) / np.abs(np.nanmean(g, 0))))
            if pts:
                w = np.array(sorted(pts))
                rnoise.append((name, w, np.array([pts[x] for x in w]) * 100))
        for stream in ld.map_streams(run):
            maps.append((f"{name} {stream}", ld.load_maps(run, stream).maps))
    figures: list[tuple[str, Figure]] = []
    if len(errors) >= 2:
        figures.append(("compare_programming_error", overlay_histograms(
            errors, "programmed - target", "S", "u", "programming error")))
    if len(pulses) >= 2:
        figures.append(("compare_pulses", overlay_curves(
            pulses, "pulses to converge", "fraction of cells (cumulative)", "pulses per cell", steps=True)))
    if len(iv) >= 2:
        figures.append(("compare_iv", overlay_curves(
            iv, label("voltage", "V"), label("|current|", "A"), "first I-V cycle", logy=True)))
    if len(spread) >= 2:
        figures.append(("compare_retention", overlay_curves(
            spread, label("time after programming", "s"), label("mean spread per level", "S", "u"),
            "retention spread", logx=True)))
    if len(rnoise) >= 2:
        figures.append(("compare_read_noise", overlay_curves(
            rnoise, label("integration window", "s"), label("read noise sigma / G", "%"), "read noise",
            logx=True, logy=True)))
    if len(maps) >= 2:
        figures.append(("compare_maps", overlay_histograms(maps, "conductance", "S", "u", "array conductance")))
    try:
        from analysis import report_diffusion
    except ImportError:
        return figures
    return figures + report_diffusion.comparison(runs, names)


def _level_spread(g: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Mean over levels of the per-level std of G (S) at each read time: (T,)."""
    lv = np.asarray(level, int)
    fit = [np.nanstd(g[:, lv == i], axis=1) for i in np.unique(lv)]
    return np.mean(fit, axis=0) if fit else np.full(len(g), np.nan)
