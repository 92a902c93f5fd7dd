"""Calibrate the device model from run files: which run feeds which fit.

``calibrate(paths, prior)`` opens each run file (``analysis.open_run``; complete,
aborted or killed runs alike), takes what it can use and runs the fits of
:mod:`analysis.calibration` in an order where later fits use earlier results (read
noise first: the relaxation fit subtracts it).

* ``read-noise``: ``conductance`` rows, ``window``, ``interval`` (back-to-back series
  only) -> read_q0, read_q_exp;
* ``read-array`` with repeats >= 2: ``conductance`` (reads, rows, cols), ``macro`` ->
  read_q0, read_q_exp;
* ``retention``: ``conductance`` (times, cells), ``time_after``, ``programmed`` (or
  ``target``) -> relax_sigma0, relax_sigma_rel, relax_drift_rel;
* ``iv-sweep``: ``voltage``, ``current`` (cycles, points), parameter ``compliance`` ->
  v_set_dc, v_hold, v_reset_dc, reset_dc_scale;
* ``write-verify``, ``write-noise``: the pulse table ``/entry/pulses`` -> pulse_c2c (fitted
  last, by replaying the pulses on simulated worlds with every other fitted field).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from analysis.calibration import Calibration, fit_iv, fit_read_noise, fit_relaxation
from analysis.calibration_write_simulated import fit_pulse_noise
from analysis.characterization_data import PulseTable, load_pulses
from analysis.run_reader import Run, open_run
from analysis.schema import data_path
from instruments.sim.device_params import DeviceParams

log = logging.getLogger("rrambench.calibration")

#: Order in which protocols are fitted (later fits use the parameters of earlier ones).
ORDER = ("read-noise", "read-array", "iv-sweep", "retention", "write-verify", "write-noise")
#: Protocols whose pulse table feeds the programming-noise fit.
PULSE_PROTOCOLS = ("write-verify", "write-noise")


class CalibrationDataError(ValueError):
    """A run file cannot feed any fit (wrong protocol, too few points, missing datasets)."""


def calibrate(paths: Sequence[str | Path], prior: DeviceParams | None = None) -> Calibration:
    """Fit the device model to the runs in ``paths``; the prior supplies unfitted fields.

    Raises :class:`CalibrationDataError` naming the file when a run cannot be used.
    """
    runs = [open_run(p) for p in paths]
    for run in runs:
        if run.protocol not in ORDER:
            raise CalibrationDataError(f"{run.path}: a {run.protocol!r} run feeds no fit; "
                                       f"use {', '.join(ORDER)} runs")
    cal = Calibration(prior or DeviceParams())
    read_series: list[tuple[np.ndarray, float]] = []
    bias = None
    for run in runs:
        if run.protocol in ("read-noise", "read-array"):
            series, bias = _read_series(run)
            read_series += series
    if read_series:
        cal.fits.append(_named(fit_read_noise(read_series, cal.params, bias=bias), "read-noise/read-array"))
    for run in runs:
        if run.protocol == "iv-sweep":
            v, i = _need(run, "voltage"), _need(run, "current")
            compliance = float(run.parameters.get("compliance", math.nan))
            cal.fits.append(_named(fit_iv(v, i, compliance, cal.params), str(run.path)))
    retention = [run for run in runs if run.protocol == "retention"]
    if retention:
        cal.fits.append(_named(_relaxation(retention, cal.params), ", ".join(str(r.path) for r in retention)))
    programming = [run for run in runs if run.protocol in PULSE_PROTOCOLS]
    if programming:
        histories = [_pulses(run) for run in programming]
        try:
            fit = fit_pulse_noise(histories, cal.params)
        except ValueError as exc:
            raise CalibrationDataError(f"{', '.join(str(r.path) for r in programming)}: {exc}") from None
        cal.fits.append(_named(fit, ", ".join(str(r.path) for r in programming)))
    for fit in cal.fits:
        log.info("%s: %s", fit.source, ", ".join(f"{k}={v:.4g}" for k, v in fit.values.items()))
    return cal


def _named(fit, source: str):
    from dataclasses import replace

    return replace(fit, source=source)


def _need(run: Run, name: str) -> np.ndarray:
    if data_path(name) not in run.datasets:
        raise CalibrationDataError(f"{run.path}: {run.protocol} run has no dataset {name!r}")
    return np.asarray(run.read(name), dtype=float)


def _read_series(run: Run) -> tuple[list[tuple[np.ndarray, float]], float]:
    """Back-to-back read series (reads, window s) of a read-noise or read-array run, and its bias (V)."""
    g = _need(run, "conductance")
    bias = float(run.parameters.get("bias", 0.1))
    if run.protocol == "read-array":
        macro = _need(run, "macro").astype(int)
        window = float(run.parameters.get("window", 1e-6))
        n = min(len(macro), len(g))
        series = [(g[:n][macro[:n] == m].reshape(int(np.sum(macro[:n] == m)), -1), window)
                  for m in np.unique(macro[:n])]
    else:
        window, interval = _need(run, "window"), _need(run, "interval")
        n = min(len(g), len(window), len(interval))
        g, window, interval = g[:n], window[:n], interval[:n]
        quiet = interval == interval.min() if n else np.zeros(0, bool)
        series = [(g[quiet & (window == w)], float(w)) for w in np.unique(window[quiet])]
    series = [(r, w) for r, w in series if r.shape[0] >= 2]
    if not series:
        raise CalibrationDataError(f"{run.path}: needs at least 2 back-to-back reads of the cells")
    return series, bias


def _relaxation(runs: list[Run], params: DeviceParams):
    """One relaxation fit over the cells of every retention run (same number of read times)."""
    from instruments.sim.device_physics import read_noise_sigma

    times, reads, g_progs, sigmas = [], [], [], []
    for run in runs:
        g, t = _need(run, "conductance"), _need(run, "time_after")
        n = min(len(g), len(t))
        if n < 2:
            raise CalibrationDataError(f"{run.path}: retention needs reads at 2 or more times, found {n}")
        name = "programmed" if data_path("programmed") in run.datasets else "target"
        g_prog = _need(run, name)
        g_prog = g_prog[0] if g_prog.ndim == 2 else g_prog
        averaged = max(1, int(run.parameters.get("readback_reads", 1)))
        window = float(run.parameters.get("read_window", 1e-6))
        ok = np.all(np.isfinite(g[:n]), axis=0) & np.isfinite(g_prog)
        times.append(t[:n])
        reads.append(g[:n][:, ok])
        g_progs.append(g_prog[ok])
        sigmas.append(read_noise_sigma(g_prog[ok], window, params) / math.sqrt(averaged))
    if len({len(t) for t in times}) != 1:
        raise CalibrationDataError("retention runs fitted together need the same number of read times: "
                                   + ", ".join(f"{r.path}: {len(t)}" for r, t in zip(runs, times, strict=True)))
    t = np.median(np.stack(times), axis=0)
    return fit_relaxation(t, np.hstack(reads), np.concatenate(g_progs), params, read_sigma=np.concatenate(sigmas))


def _pulses(run: Run) -> PulseTable:
    """The pulse history of a write-verify or write-noise run (killed runs: what was recorded)."""
    table = load_pulses(run)
    if table is None or len(table) == 0:
        raise CalibrationDataError(f"{run.path}: {run.protocol} run has no recorded pulses")
    return table.finite()
