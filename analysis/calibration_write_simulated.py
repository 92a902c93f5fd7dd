"""Fit the programming (write) noise ``pulse_c2c`` to recorded pulse histories.

A write-verify or write-noise run holds every pulse (cell, polarity, amplitude V,
width s, gate V, verify read S, time s). For two consecutive pulses on one cell
the observed fraction of the way to the soft bound,
``frac = (G_after - G_before) / (bound - G_before)``, gives the pulse's effective
rate ``z = ln(-ln(1 - frac)) - ln ln(1 + w/tau) - a ln(A - V_th) - ln k``; the
model makes ``z = ln n`` with ``n`` the lognormal cycle-to-cycle draw (sigma
``pulse_c2c``) plus per-cell constants (the cell's own k, V_th, ceiling).
Differences of ``z`` between consecutive same-polarity pulses of one cell cancel
most of the per-cell part; their robust spread is the statistic.

That spread is not ``sqrt(2) pulse_c2c`` exactly: the cell's own threshold does not
cancel fully (its effect varies with the amplitude), verify-read noise enters
through ``frac``, and pulses too small to see are left out. So ``pulse_c2c`` is
fitted by simulation (indirect inference): the same pulse sequence is replayed on
in-process ``SimWorld`` s built from the prior (with the read-noise and other fitted
fields) and a candidate ``pulse_c2c``, and ``scipy.optimize.minimize_scalar``
matches the replayed statistic to the measured one. The replays use fixed seeds
(common random numbers), so the simulated statistic is a smooth function of the
candidate. See ``docs/calibration.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize

from analysis.characterization_data import PulseTable
from instruments.sim.device_params import DeviceParams

if TYPE_CHECKING:
    from analysis.calibration import Fit

#: Smallest and largest observed step fraction used (outside: lost in read noise or at the bound).
FRAC_RANGE = (2e-3, 0.98)
#: Smallest overdrive (V) over the prior's threshold for a pulse to be used.
MIN_OVERDRIVE = 0.03
#: Fewest usable pulse pairs for a fit.
MIN_PAIRS = 50
#: Search interval of pulse_c2c (lognormal sigma).
C2C_BOUNDS = (0.02, 1.5)
#: Verify read after each replayed pulse: bias (V) and window (s) of the board's verify read.
VERIFY_BIAS, VERIFY_WINDOW = 0.1, 1e-6


def step_differences(pulses: PulseTable, prior: DeviceParams) -> np.ndarray:
    """Differences of the effective log rate ``z`` between consecutive usable same-polarity
    pulses of one cell (dimensionless); the prior supplies the median cell (v_set,
    v_reset, k_set, k_reset, g_top, gate_vt, g_floor, pulse_exponent, tau_width)."""
    p = prior
    key = (np.asarray(pulses.macro, np.int64) * 65536 + np.asarray(pulses.row, np.int64)) * 65536 \
        + np.asarray(pulses.col, np.int64)
    order = np.lexsort((np.arange(len(key)), key))          # by cell, then recording order
    key, pol = key[order], np.asarray(pulses.polarity, float)[order]
    amp, width = np.asarray(pulses.amplitude, float)[order], np.asarray(pulses.width, float)[order]
    gate, read = np.asarray(pulses.gate, float)[order], np.asarray(pulses.read, float)[order]
    same = key[1:] == key[:-1]
    g0, g1, pol1, amp1, w1, gate1 = read[:-1], read[1:], pol[1:], amp[1:], width[1:], gate[1:]
    is_set = pol1 > 0
    ceiling = p.g_top * -np.expm1(-np.maximum(gate1 - p.gate_vt, 0.0) / p.gate_scale)
    bound = np.where(is_set, np.maximum(ceiling, g0), p.g_floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = (g1 - g0) / (bound - g0)
    od = amp1 - np.where(is_set, p.v_set, p.v_reset)
    ok = same & (frac > FRAC_RANGE[0]) & (frac < FRAC_RANGE[1]) & (od > MIN_OVERDRIVE) & (gate1 > p.gate_vt)
    frac, od = np.where(ok, frac, 0.5), np.where(ok, od, 1.0)
    z = (np.log(-np.log1p(-frac)) - np.log(np.log1p(w1 / p.tau_width)) - p.pulse_exponent * np.log(od)
         - np.log(np.where(is_set, p.k_set, p.k_reset)))
    idx = np.flatnonzero(ok)
    cell, polk = key[1:][idx], pol1[idx]
    pair = (cell[1:] == cell[:-1]) & (polk[1:] == polk[:-1])
    return (z[idx][1:] - z[idx][:-1])[pair]


def spread(d: np.ndarray) -> float:
    """Robust standard deviation (1.4826 median absolute deviation) of ``d``."""
    return float(1.4826 * np.median(np.abs(d - np.median(d))))


def replay(pulses: PulseTable, params: DeviceParams, seed: int) -> PulseTable:
    """The same pulse sequence applied to a fresh ``SimWorld(params, seed)``; returns it with
    the simulated verify reads. Each cell starts at its first measured verify read (its first
    pulse is not replayed); the bench time between batches is kept (relaxation)."""
    from instruments.sim.world import SimWorld

    macro, row, col = (np.asarray(a, np.int64) for a in (pulses.macro, pulses.row, pulses.col))
    world = SimWorld(params=params, seed=seed, n_macros=int(macro.max()) + 1, rows=int(row.max()) + 1,
                     cols=int(col.max()) + 1)
    flat = (macro * world.rows + row) * world.cols + col
    _, first = np.unique(flat, return_index=True)
    # the starting point must lie in the model's window; a noisy read may sit just outside it
    start = np.clip(np.asarray(pulses.read, float)[first], params.g_min, params.g_max)
    world.set_conductance(macro[first], row[first], col[first], start, unstick=False)
    replayed = np.ones(len(pulses), bool)
    replayed[first] = False
    time = np.asarray(pulses.time, float)
    batch = np.r_[0, np.cumsum(time[1:] != time[:-1])]
    bounds = np.flatnonzero(np.r_[True, batch[1:] != batch[:-1], True])
    reads = np.asarray(pulses.read, float).copy()
    t_world0, t_run0 = world.clock.now(), time[0]
    amp, width, gate, pol = (np.asarray(a, float) for a in (pulses.amplitude, pulses.width, pulses.gate,
                                                            pulses.polarity))
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        sel = np.arange(lo, hi)[replayed[lo:hi]]
        if sel.size == 0:
            continue
        wait = (time[lo] - t_run0) - (world.clock.now() - t_world0)
        if wait > 0:
            world.clock.sleep(wait)
        world.pulse(macro[sel], row[sel], col[sel], pol[sel], amp[sel], width[sel], gate[sel])
        reads[sel] = world.read(macro[sel], row[sel], col[sel], VERIFY_BIAS, VERIFY_WINDOW)
    return replace(pulses, read=reads)


def fit_pulse_noise(runs: Sequence[PulseTable], prior: DeviceParams, replays: int = 3, seed: int = 0) -> Fit:
    """Cycle-to-cycle programming noise ``pulse_c2c`` from pulse histories, by simulation.

    runs: pulse histories (write-verify, write-noise; several are pooled); prior: every
    other device parameter (read noise, thresholds, rates, spreads) used by the replays;
    replays: simulated worlds per candidate (>= 1, more lowers the fit's own noise);
    seed: first replay seed (>= 0). Returns a ``Fit`` of ``pulse_c2c``.
    """
    from analysis.calibration import Fit

    if replays < 1:
        raise ValueError(f"replays must be >= 1, got {replays!r}")
    runs = [r for r in runs if len(r) > 0]
    measured = np.concatenate([step_differences(r, prior) for r in runs]) if runs else np.zeros(0)
    if measured.size < MIN_PAIRS:
        raise ValueError(f"pulse histories hold {measured.size} usable consecutive pulse pairs, "
                         f"need >= {MIN_PAIRS}: cannot fit pulse_c2c")
    target = spread(measured)

    def simulated(c2c: float) -> float:
        params = replace(prior, pulse_c2c=float(c2c))
        d = [step_differences(replay(r, params, seed + k), params) for k in range(replays) for r in runs]
        return spread(np.concatenate(d))

    res = optimize.minimize_scalar(lambda c: (simulated(c) - target) ** 2, bounds=C2C_BOUNDS,
                                   method="bounded", options={"xatol": 1e-3})
    value = float(res.x)
    if not math.isfinite(value) or min(value - C2C_BOUNDS[0], C2C_BOUNDS[1] - value) < 2e-3:
        raise ValueError(f"pulse_c2c fit ran to the edge of {C2C_BOUNDS} (statistic {target:.3g}): "
                         "the pulse histories do not pin the programming noise")
    return Fit({"pulse_c2c": value}, points=int(measured.size), source="pulse-noise")
