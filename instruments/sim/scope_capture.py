"""What the emulated scope does to a trace: find the trigger, resample onto its grid.

Pure, vectorised functions over all segments at once (no per-segment loop), and the
1-2-5 step that autoscale picks; used by :mod:`instruments.sim.infiniivision`.
"""

from __future__ import annotations

import numpy as np


def find_edges(v: np.ndarray, dt: float, level: float, *, rising: bool) -> tuple[np.ndarray, np.ndarray]:
    """Segments whose signal ``v`` (S, P) V crosses ``level`` V, and each first crossing (s).

    ``dt``: sample period (s). Before the run a node rests at 0 V, so a trace that
    starts beyond the level (like the trigger channel of an ODE run) triggers at its
    first point, t = 0. Crossings between samples are interpolated linearly.
    Returns (segment indices, trigger times in s after each trace start).
    """
    sign = 1.0 if rising else -1.0
    u, lvl = sign * np.asarray(v, dtype=float), sign * level  # falling edge: rising edge of -v
    at_start = (0.0 < lvl) & (u[:, 0] >= lvl)
    edge = (u[:, :-1] < lvl) & (u[:, 1:] >= lvl)
    rows = np.nonzero(at_start | edge.any(axis=1))[0]
    k = np.argmax(edge[rows], axis=1)
    u0, u1 = u[rows, k], u[rows, k + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_edge = (k + (lvl - u0) / (u1 - u0)) * dt
    return rows, np.where(at_start[rows], 0.0, t_edge)


def resample(traces: np.ndarray, dt: float, t_trig: np.ndarray, tau: np.ndarray, channels: int) -> np.ndarray:
    """Linear interpolation of ``traces`` (S, C, P) V at ``t_trig[s] + tau`` s.

    ``dt``: trace sample period (s); ``tau``: the scope's sample times relative to the
    trigger (s). Outside the trace the first/last value is held. Trace channel k
    feeds scope channel k + 1; scope channels without a trace read 0 V.
    Returns (S, channels, tau.size) V.
    """
    n_seg, n_ch, n_pts = traces.shape
    pos = np.clip((t_trig[:, None] + tau[None, :]) / dt, 0, n_pts - 1)  # fractional index
    lo = np.minimum(np.floor(pos).astype(np.intp), n_pts - 2)
    frac = pos - lo
    used = min(n_ch, channels)
    chans = traces[:, :used, :]
    idx = np.broadcast_to(lo[:, None, :], (n_seg, used, tau.size))
    left = np.take_along_axis(chans, idx, axis=2)
    right = np.take_along_axis(chans, idx + 1, axis=2)
    volts = np.zeros((n_seg, channels, tau.size))
    volts[:, :used] = left + (right - left) * frac[:, None, :]
    return volts


def nice_scale(value: float, lo: float, hi: float) -> float:
    """The smallest 1-2-5 step (1, 2, 5 x 10^k) at least ``value``, within [lo, hi]."""
    value = min(max(float(value), lo), hi)
    decade = 10.0 ** np.floor(np.log10(value))
    for mantissa in (1.0, 2.0, 5.0, 10.0):
        step = mantissa * decade
        if step >= value * (1 - 1e-9):
            return float(min(max(step, lo), hi))
    return float(hi)
