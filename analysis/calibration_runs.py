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
from analysis.run_reader import Run, RunFileError, open_run
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
    """Fit the device model to the runs in ``paths`` that feed a fit; the prior supplies unfitted fields.

    A run that feeds no fit (a protocol no fit uses, too few points, a missing dataset,
    an unreadable file) is left out and listed with the reason in ``Calibration.skipped``.
    Raises :class:`CalibrationDataError` (naming every file and why) only when no run
    feeds any fit.
    """
    cal = Calibration(prior or DeviceParams())
    runs: list[Run] = []
    for path in paths:
        try:
            run = open_run(path)
        except RunFileError as exc:
            _skip(cal, [path], exc)
            continue
        if run.protocol in ORDER:
            runs.append(run)
        else:
            cal.skipped.append((str(run.path), f"a {run.protocol!r} run feeds no fit (fits use "
                                               f"{', '.join(ORDER)} runs)"))
    read_series: list[tuple[np.ndarray, float]] = []
    bias, reads = None, []
    for run in _of(runs, "read-noise", "read-array"):
        found = _usable(cal, run, lambda run=run: _read_series(run))
        if found is not None:
            series, bias = found
            read_series += series
            reads.append(run)
    if read_series:
        _fit(cal, reads, lambda: fit_read_noise(read_series, cal.params, bias=bias), "read-noise/read-array")
    for run in _of(runs, "iv-sweep"):
        _fit(cal, [run], lambda run=run: fit_iv(_need(run, "voltage"), _need(run, "current"),
                                                float(run.parameters.get("compliance", math.nan)), cal.params))
    retention = [(run, n) for run in _of(runs, "retention")
                 if (n := _usable(cal, run, lambda run=run: _retention_times(run))) is not None]
    if retention:
        fitted = _same_read_times(cal, retention)
        _fit(cal, fitted, lambda: _relaxation(fitted, cal.params))
    programming = [(run, table) for run in _of(runs, *PULSE_PROTOCOLS)
                   if (table := _usable(cal, run, lambda run=run: _pulses(run))) is not None]
    if programming:
        _fit(cal, [run for run, _ in programming],
             lambda: fit_pulse_noise([table for _, table in programming], cal.params))
    if not cal.fits:
        raise CalibrationDataError("no run feeds a fit: " + ("; ".join(f"{p}: {why}" for p, why in cal.skipped)
                                                              or "no run files"))
    for fit in cal.fits:
        log.info("%s: %s", fit.source, ", ".join(f"{k}={v:.4g}" for k, v in fit.values.items()))
    return cal


def _of(runs: list[Run], *protocols: str) -> list[Run]:
    return [run for run in runs if run.protocol in protocols]


def _usable(cal: Calibration, run: Run, extract) -> object | None:
    """``extract()``, or None with the run listed as skipped when its data cannot feed the fit."""
    try:
        return extract()
    except (RunFileError, ValueError) as exc:  # CalibrationDataError is a ValueError
        _skip(cal, [run.path], exc)
        return None


def _fit(cal: Calibration, runs: list[Run], fit, source: str | None = None) -> None:
    """Add ``fit()`` to the calibration, or list every run it would have used as skipped, with why."""
    try:
        cal.fits.append(_named(fit(), source or ", ".join(str(run.path) for run in runs)))
    except (RunFileError, ValueError) as exc:
        _skip(cal, [run.path for run in runs], exc)


def _skip(cal: Calibration, paths: Sequence[str | Path], exc: Exception) -> None:
    for path in paths:
        cal.skipped.append((str(path), " ".join(str(exc).split()).removeprefix(f"{path}: ")))


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


def _retention_times(run: Run) -> int:
    """Read times of a retention run that the relaxation fit can use (2 or more, else it raises)."""
    n = min(len(_need(run, "conductance")), len(_need(run, "time_after")))
    if n < 2:
        raise CalibrationDataError(f"{run.path}: retention needs reads at 2 or more times, found {n}")
    return n


def _same_read_times(cal: Calibration, runs: list[tuple[Run, int]]) -> list[Run]:
    """Of ``(run, read times)``, the runs of the most common number of read times (the most, on
    a tie); the others are listed as skipped: runs fitted together share their read times."""
    counts = [n for _, n in runs]
    keep = max(set(counts), key=lambda n: (counts.count(n), n))
    for run, n in runs:
        if n != keep:
            cal.skipped.append((str(run.path), f"{n} read times; the retention fit uses the runs with {keep}"))
    return [run for run, n in runs if n == keep]


def _relaxation(runs: list[Run], params: DeviceParams):
    """One relaxation fit over the cells of every retention run (same number of read times)."""
    from instruments.sim.noise_spectrum import read_noise_sigma

    times, reads, g_progs, sigmas = [], [], [], []
    for run in runs:
        g, t = _need(run, "conductance"), _need(run, "time_after")
        n = _retention_times(run)
        name = "programmed" if data_path("programmed") in run.datasets else "target"
        g_prog = _need(run, name)
        g_prog = g_prog[0] if g_prog.ndim == 2 else g_prog
        averaged = max(1, int(run.parameters.get("readback_reads", 1)))
        window = float(run.parameters.get("read_window", 1e-6))
        ok = np.all(np.isfinite(g[:n]), axis=0) & np.isfinite(g_prog)
        times.append(t[:n])
        reads.append(g[:n][:, ok])
        g_progs.append(g_prog[ok])
        # the averaged reads are back to back: one read over their joint window (1/f noise does
        # not average down as 1 / sqrt(reads)). The fit subtracts the read noise of the first and
        # of a later read; the cell's 1/f noise grows after programming (docs/circuit-noise.md)
        first, later = (read_noise_sigma(g_prog[ok], averaged * window, params, since=float(s))
                        for s in (t[0], np.median(t[1:n])))
        sigmas.append(np.sqrt(0.5 * (first**2 + later**2)))
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
