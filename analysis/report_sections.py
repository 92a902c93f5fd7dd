"""The parts of a report: each section looks for the data it needs in a run and, if
found, returns its figures (name, Figure) and its numbers for summary.json.

Sections are chosen by the datasets a run holds, so every protocol that records,
say, a programming pass gets the write-verify figures, and one without a dedicated
family still gets the streams overview.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from analysis import characterization_data as ld
from analysis import device_metrics as dm
from analysis.figures import iv, levels, maps, noise, overview, retention, waveforms, weights, write_verify
from analysis.run_reader import Run
from analysis.schema import DATA

log = logging.getLogger("rrambench.report")

MAX_IV_CYCLES = 10  # cycles drawn in the I-V figure, evenly spread (all are analysed; the figure says so)


@dataclass
class Section:
    """Figures (file stem, Figure) and JSON-ready numbers of one part of a report."""

    figures: list[tuple[str, Figure]] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


def _label(run: Run) -> str:
    return f"[{run.path.name}, {run.status}]"


def iv_section(run: Run) -> Section | None:
    """I-V loops and switching parameters (SET voltage, RESET onset, on/off ratio) per cycle.

    SET and RESET are those of :func:`analysis.device_metrics.switching_voltages` (the
    definition the ``iv-sweep`` protocol records), at the run's compliance; the figure marks
    their medians over every cycle and draws up to ``MAX_IV_CYCLES`` cycles, evenly spread.
    """
    data = ld.load_iv(run)
    if data is None:
        return None
    bias = float(run.parameters.get("read_bias", dm.READ_BIAS))
    compliance = run.parameters.get("compliance")
    params = []
    for v, i in zip(data.voltage, data.current, strict=True):
        try:
            params.append(dm.iv_parameters(v, i, read_bias=bias,
                                           compliance=float(compliance) if compliance else None))
        except ValueError as exc:
            log.warning("%s: I-V cycle skipped: %s", run.path.name, exc)
    n = len(data.voltage)
    shown = np.unique(np.round(np.linspace(0, n - 1, min(n, MAX_IV_CYCLES))).astype(int)) if n else np.arange(0)
    cycle = np.repeat(shown, data.voltage.shape[1])
    median = None
    if params:
        table = {k: np.array([p.as_dict()[k] for p in params], float) for k in params[0].as_dict()}
        median = dm.IVParameters(**{k: float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")
                                    for k, v in table.items()})
    fig = iv.iv_loops(data.voltage[shown].ravel(), data.current[shown].ravel(), cycle, median, _label(run),
                      cycles_total=n)
    metrics = {"cycles": n, "cycles_drawn": int(shown.size), "median": median.as_dict() if median else None,
               "set_rule": dm.SET_RULE, "reset_rule": dm.RESET_RULE}
    if data.v_set is not None and len(data.v_set):
        metrics["protocol_v_set_median"] = float(np.nanmedian(data.v_set)) if np.isfinite(data.v_set).any() else None
    if data.v_reset is not None and len(data.v_reset):
        metrics["protocol_v_reset_median"] = (float(np.nanmedian(data.v_reset))
                                              if np.isfinite(data.v_reset).any() else None)
    return Section([("iv_loops", fig)], metrics)


def _cell_of_pulses(run: Run, data: ld.ProgrammingData) -> np.ndarray | None:
    """Index of each pulse's cell in the programmed cell list (None if not derivable)."""
    p = data.pulses
    if p is None or len(p) == 0:
        return None
    if data.cell_macro is not None:
        return dm.cell_index(p.macro, p.row, p.col, data.cell_macro, data.cell_row, data.cell_col)
    shape = _target_map_shape(run, data.prefix)
    if shape is None:
        return None
    return p.row.astype(np.int64) * shape[1] + p.col


def _target_map_shape(run: Run, prefix: str) -> tuple[int, ...] | None:
    """Shape (rows, cols) of a 2-D ``<prefix>target`` dataset (from the index, no read), else None."""
    info = run.datasets.get(f"{DATA}/{prefix}target")
    return info.shape if info is not None and len(info.shape) == 2 else None


def programming_section(run: Run, prefix: str) -> Section:
    """Write-verify convergence, error distribution, pulses per cell, target vs programmed
    conductances; level histograms and separability for multilevel runs; pattern maps.

    Runs that record the write-verify only as the pulse table (``program-model`` and
    ``sample`` record ``/entry/pulses`` but no ``pulses_per_cell`` / ``rms_error`` streams)
    get both from the table: pulses per programmed cell, and the RMS error after each pulse
    batch over the cells pulsed so far.
    """
    data = ld.load_programming(run, prefix)
    tag = prefix.rstrip("_")
    suffix = f"_{tag}" if tag else ""
    tol = run.parameters.get("tolerance")
    final = data.final
    sec = Section()
    k = abs_err = None
    pulses_per_cell, rms_error, rms_title = data.pulses_per_cell, data.rms_error, "array RMS error"
    cell = _cell_of_pulses(run, data)
    if cell is not None:
        ok = cell >= 0
        k, abs_err = dm.convergence(cell[ok], data.pulses.read[ok], data.target)
        sec.metrics["pulses_recorded"] = int(len(data.pulses))
        if pulses_per_cell is None:
            pulses_per_cell = np.bincount(cell[ok], minlength=data.target.size)
            sec.metrics["pulses_per_cell_from"] = "pulse table (/entry/pulses)"
        if rms_error is None or not len(rms_error):
            p = data.pulses
            batch = dm.pulse_batches(p.time[ok], p.step[ok] if p.step is not None else None)
            rms_error = dm.batch_rms_error(cell[ok], p.read[ok], batch, data.target)
            rms_title = ("RMS error of the cells pulsed so far\n"
                         "(from the pulse table; rises when a pass starts on new cells)")
            sec.metrics["rms_error_from"] = "pulse table (/entry/pulses): cells pulsed so far, latest verify read"
    try:
        stats = dm.write_verify_stats(data.target, final, pulses_per_cell, data.converged, data.stuck, tol)
        sec.metrics["write_verify"] = stats.as_dict()
    except ValueError as exc:
        sec.metrics["write_verify"] = None
        log.info("%s: no write-verify statistics: %s", run.path.name, exc)
    sec.figures.append((f"write_verify{suffix}", write_verify.write_verify(
        k, abs_err, pulses_per_cell, final - data.target, rms_error, tol, _label(run), rms_title=rms_title)))
    sec.figures.append(conductance_figure(run, data, suffix))
    if data.level is not None and data.level_target is not None:
        g = final
        if data.readback is not None and len(data.readback) and data.readback[-1].size == final.size:
            g = data.readback[-1].astype(float)
        try:
            stats = dm.level_separability(g, data.level, data.level_target, failed=data.failed)
            sec.metrics["levels"] = stats.as_dict()
        except ValueError as exc:
            stats, sec.metrics["levels"] = None, None
            log.info("%s: no level statistics: %s", run.path.name, exc)
        sec.figures.append(("levels", levels.level_histograms(g, data.level, data.level_target, _label(run),
                                                              failed=data.failed, stats=stats)))
    map_shape = _target_map_shape(run, prefix)
    if map_shape is not None:
        target_map = data.target.reshape(map_shape)  # load_programming read <prefix>target, flattened
        shown = final.reshape(target_map.shape)
        if data.readback is not None and len(data.readback) and data.readback[-1].shape == target_map.shape:
            shown = data.readback[-1].astype(float)
        sec.figures.append(("pattern", maps.pattern(target_map, shown, _label(run))))
        match = ld.optional(run, "match")
        sec.metrics["pattern_match"] = float(match[-1]) if match is not None and len(match) else None
    return sec


def conductance_figure(run: Run, data: ld.ProgrammingData | None = None, suffix: str = "") -> tuple[str, Figure]:
    """``conductances[_<tag>]``: target against programmed conductance of every programmed cell;
    the one definition the report and ``rrambench demo`` draw."""
    data = data if data is not None else ld.load_programming(run)
    if data is None:
        raise ValueError(f"{run.path.name}: no target and programmed conductances")
    return f"conductances{suffix}", weights.target_vs_programmed(data.target, data.final, run_label=_label(run))


def retention_section(run: Run) -> Section | None:
    """Retention curves per level, spread fit vs log time, error distributions at several times.

    Cells that failed to program (stuck or not converged) are left out of the curves, the
    spread fit and the error spread, and counted (``failed_cells_left_out``); the error
    histograms keep them, beyond their robust axis, and count them there.
    """
    data = ld.load_retention(run)
    if data is None:
        return None
    sec = Section()
    programming = ld.load_programming(run)
    failed = programming.failed if programming is not None else None
    keep = np.ones(data.g.shape[1], bool) if failed is None or failed.size != data.g.shape[1] else ~failed
    sec.metrics["failed_cells_left_out"] = int((~keep).sum())
    level = data.level[keep] if data.level is not None else None
    fit = None
    if len(data.time) >= 2 and np.all(data.time > 0):
        fit = dm.retention_fit(data.time, data.g[:, keep], level)
        sec.metrics["retention_fit"] = fit.as_dict()
    sec.figures.append(("retention", retention.retention_curves(data.time, data.g[:, keep], level, fit, _label(run),
                                                                left_out=int((~keep).sum()))))
    if data.target is not None:
        err = data.g - data.target[None, :] if len(data.g) else np.zeros((0, data.target.size))
        sec.figures.append(("error_distributions", retention.error_distributions(data.time, err, run_label=_label(run),
                                                                                 failed=failed)))
        sec.metrics["error_std_by_time"] = {f"{t:.4g}": float(np.nanstd(e[keep])) for t, e in zip(data.time, err,
                                                                                                   strict=True)}
    return sec


def read_noise_section(run: Run) -> Section | None:
    """Relative read noise vs integration window and the spectrum of each read series."""
    data = ld.load_read_noise(run)
    if data is None:
        return None
    series = data.series()
    spectra, by_window = [], {}
    for w, interval, t, g in series:
        dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        if len(g) >= 4 and dt > 0:
            f, psd = dm.noise_spectrum(g, dt)
            pace = f"every {interval:.3g} s" if interval else "back to back"
            spectra.append((f"window {w:.3g} s, {pace}", f, psd))
        if len(g) >= 2 and (w not in by_window or interval < by_window[w][0]):
            by_window[w] = (interval, g)
    rn = None
    if by_window:
        windows = np.array(sorted(by_window))
        r = min(len(by_window[w][1]) for w in windows)
        reads = np.stack([by_window[w][1][:r] for w in windows])
        rn = dm.read_noise_vs_window(windows, reads)
    fig = noise.read_noise(rn, spectra, _label(run))
    return Section([("read_noise", fig)], {"read_noise": rn.as_dict() if rn else None, "series": len(series)})


def write_noise_section(run: Run) -> Section | None:
    """Distribution of programmed G around each target over erase-and-program cycles."""
    data = ld.load_write_noise(run)
    if data is None:
        return None
    err = data.readback - data.target[None, :]
    per_target = {f"{t:.4g}": float(np.nanstd(err[:, data.target == t])) if len(err) else None
                  for t in np.unique(data.target)}
    return Section([("write_noise", noise.write_noise(data.target, data.readback, _label(run)))],
                   {"cycles": len(data.readback), "error_std_by_target": per_target})


def maps_section(run: Run) -> Section | None:
    """Conductance maps: the last map of each macro (read-array) or of each map stream."""
    names = ld.map_streams(run)
    if not names:
        return None
    sec = Section()
    for name in names:
        stack = ld.load_maps(run, name)
        if stack.macro is not None and len(stack.macro):
            macros = np.unique(stack.macro)
            last = [int(np.flatnonzero(stack.macro == m)[-1]) for m in macros]
            titles = [f"macro {m}" + (f", t = {stack.time[i]:.3g} s" if stack.time is not None else "")
                      for m, i in zip(macros, last, strict=True)]
        else:
            last = [len(stack.maps) - 1] if len(stack.maps) else []
            titles = [f"{name} (last of {len(stack.maps)})"]
        shown = stack.maps[last]
        sec.figures.append((f"map_{name}", maps.array_maps(shown, titles, _label(run))))
        finite = stack.maps[np.isfinite(stack.maps)]
        sec.metrics[name] = {"maps": len(stack.maps), "mean": float(finite.mean()) if finite.size else None,
                             "std": float(finite.std()) if finite.size else None}
    return sec


def traces_section(run: Run) -> Section | None:
    """Scope waveforms (streamed): envelope, examples, final values."""
    streams = ld.load_traces(run)
    if not streams:
        return None
    sec = Section()
    for s in streams:
        env = ld.trace_envelope(s)
        sec.figures.append((f"waveforms_{s.name}", waveforms.waveforms(s, env, _label(run))))
        sec.metrics[s.name] = {"acquisitions": s.count, "points": s.points, "channel": s.channel,
                               "final_mean": float(env.final.mean()) if s.count else None,
                               "final_std": float(env.final.std()) if s.count else None}
    return sec


def overview_section(run: Run) -> Section:
    """Every numeric stream, for runs no other section understands."""
    data = ld.load_streams(run)
    return Section([("streams", overview.streams_overview(data.arrays, data.units, _label(run)))], {})


def form_section(run: Run) -> Section | None:
    """Forming voltage and read current after forming of every cell."""
    data = ld.load_form(run)
    if data is None:
        return None
    formed = np.isfinite(data.form_voltage)
    p = run.parameters
    rungs = None
    if all(k in p for k in ("v_start", "v_stop", "v_step")) and p["v_step"] > 0:
        rungs = p["v_start"] + p["v_step"] * np.arange(int(np.floor((p["v_stop"] - p["v_start"]) / p["v_step"]
                                                                    + 1e-9)) + 1)
    fig = iv.forming(data.form_voltage, data.read_current, p.get("target_current"), rungs, _label(run))
    return Section([("forming", fig)], {
        "cells": int(data.form_voltage.size), "formed_fraction": float(formed.mean()),
        "form_voltage_median": float(np.median(data.form_voltage[formed])) if formed.any() else None,
        "read_current_median": float(np.nanmedian(data.read_current)) if np.isfinite(data.read_current).any()
        else None})


def weights_section(run: Run) -> Section | None:
    """``weights``: target against programmed network weights (program-model, sample); the
    one definition the report and ``rrambench demo`` draw."""
    data = ld.load_weights(run)
    if data is None:
        return None
    err = data.programmed_weight - data.target_weight
    finite = err[np.isfinite(err)]
    fig = weights.target_vs_programmed(data.target_weight, data.programmed_weight, "weight", "", "", _label(run))
    return Section([("weights", fig)], {
        "weights": int(data.target_weight.size),
        "weight_error_rms": float(np.sqrt(np.mean(finite**2))) if finite.size else None,
        "weight_error_max": float(np.abs(finite).max()) if finite.size else None})


SECTIONS: dict[str, Callable[[Run], Section | None]] = {
    "iv": iv_section, "retention": retention_section, "read_noise": read_noise_section,
    "write_noise": write_noise_section, "maps": maps_section, "traces": traces_section,
    "form": form_section, "weights": weights_section,
}
