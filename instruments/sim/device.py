"""Vectorised TaOx 1T1R cell arrays: state, pulses, reads, relaxation, quasi-static I-V.

:class:`CellArray` holds every cell of every macro, shape ``(n_macros, rows, cols)``,
stored flat so that any set of cells is one fancy index. Per-cell parameters are
drawn once from the world's seeded ``numpy.random.Generator``; every later random
draw comes from the generator passed in, so a world is reproducible from its seed
and its saved state. Formulas live in :mod:`instruments.sim.device_physics`.

Relaxation is lazy: each cell remembers when it was last programmed (``t_prog``),
to what (``g_prog``) and up to when relaxation was applied (``t_seen``). When a
cell is observed or programmed, a Gaussian increment brings its accumulated
variance up to ``relaxation_sigma(g_prog, now - t_prog)^2`` and the mean drift up
to ``relaxation_drift``; the result does not depend on how often cells are looked at.

Read noise is the cell's spectrum (:mod:`instruments.sim.noise_spectrum`): white
(thermal and shot) drawn afresh per read, and 1/f noise whose state every cell keeps
(:class:`~instruments.sim.noise_spectrum.CellFlicker`), so reads close in time are
correlated as 1/f noise is.
"""

from __future__ import annotations

import numpy as np

from instruments.sim.device_params import DeviceParams, Polarity
from instruments.sim.device_physics import (
    compliance_lrs,
    dc_reset_target,
    gate_ceiling,
    nonlinearity,
    relaxation_drift,
    relaxation_sigma,
    switching_fraction,
)
from instruments.sim.device_validation import check_pulse_args, check_read_args, flat_index
from instruments.sim.noise_spectrum import CellFlicker, ReadNoiseSpectrum, read_noise_sigma

__all__ = [
    "CellArray", "DeviceParams", "Polarity", "check_pulse_args", "check_read_args",
    "flat_index", "read_noise_sigma",
]

#: Per-cell (device-to-device) parameters, drawn once, saved with the world.
CELL_PARAMS = ("g_floor", "g_top", "gate_vt", "v_set", "v_reset", "k_set", "k_reset",
               "relax_scale", "v_set_dc", "v_reset_dc", "v_hold", "v_form")
#: Per-cell state that evolves.
CELL_STATE = ("g", "formed", "stuck", "t_prog", "g_prog", "t_seen", "v_set_next", "v_reset_next")
#: Per-cell 1/f read-noise state (``CellFlicker.state_dict``); older files lack it.
CELL_NOISE = ("flicker_state", "flicker_t")


class CellArray:
    """All cells of the world's macros; shape ``(n_macros, rows, cols)``."""

    def __init__(self, params: DeviceParams, shape: tuple[int, int, int],
                 rng: np.random.Generator, formed: bool = True) -> None:
        """Draw per-cell parameters and the start state from ``rng``.

        ``formed=False`` starts every non-stuck cell pristine (G = g_pristine) so it
        needs forming (a SET-polarity pulse or SMU point at or above its v_form).
        """
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be (n_macros, rows, cols) >= 1, got {shape!r}")
        self.params, self.shape = params, tuple(int(s) for s in shape)
        p, n = params, int(np.prod(shape))

        def lognormal(median: float, sigma: float) -> np.ndarray:
            return median * np.exp(sigma * rng.standard_normal(n))

        def normal(mean: float, sigma: float) -> np.ndarray:
            return mean + sigma * rng.standard_normal(n)

        # Device-to-device spread; the window edges bound g_floor and g_top physically.
        self.g_floor = np.clip(lognormal(p.g_floor, p.g_floor_d2d), p.g_min, 0.5 * p.g_top)
        self.g_top = np.clip(lognormal(p.g_top, p.g_top_d2d), 2.0 * p.g_floor, p.g_max)
        self.gate_vt = normal(p.gate_vt, p.gate_vt_d2d)
        self.v_set = normal(p.v_set, p.v_set_d2d)
        self.v_reset = normal(p.v_reset, p.v_reset_d2d)
        self.k_set = lognormal(p.k_set, p.k_d2d)
        self.k_reset = lognormal(p.k_reset, p.k_d2d)
        self.relax_scale = lognormal(1.0, p.relax_d2d)
        self.v_set_dc = normal(p.v_set_dc, p.v_set_dc_d2d)
        self.v_reset_dc = normal(p.v_reset_dc, p.v_reset_dc_d2d)
        self.v_hold = lognormal(p.v_hold, p.v_hold_d2d)
        self.v_form = normal(p.v_form, p.v_form_d2d)

        self.stuck = rng.random(n) < p.stuck_fraction
        stuck_high = self.stuck & (rng.random(n) < p.stuck_high_fraction)
        start = np.clip(lognormal(p.g_init, p.g_init_d2d), self.g_floor, self.g_top)
        self.g = start if formed else np.full(n, p.g_pristine)
        self.g[self.stuck] = self.g_floor[self.stuck]
        self.g[stuck_high] = 0.9 * self.g_top[stuck_high]
        self.formed = np.full(n, bool(formed)) | self.stuck
        self.t_prog = np.zeros(n)
        self.t_seen = np.zeros(n)
        self.g_prog = self.g.copy()
        self.v_set_next = self.v_set_dc + p.v_set_dc_c2c * rng.standard_normal(n)
        self.v_reset_next = self.v_reset_dc + p.v_reset_dc_c2c * rng.standard_normal(n)
        self._init_noise(n)

    def _init_noise(self, n: int) -> None:
        """The read-noise spectrum and each cell's 1/f process, started at its programming time."""
        self.spectrum = ReadNoiseSpectrum.from_device(self.params)
        self.flicker = CellFlicker(self.spectrum, n, t0=self.t_prog)

    # -- persistence -------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every per-cell array (parameters and state), flat, copied; the 1/f state (n, M)."""
        return {**{name: getattr(self, name).copy() for name in CELL_PARAMS + CELL_STATE},
                **self.flicker.state_dict()}

    @classmethod
    def from_state(cls, params: DeviceParams, shape: tuple[int, int, int],
                   state: dict[str, np.ndarray]) -> CellArray:
        """Rebuild an array saved by :meth:`state_dict` (no random draws; without the
        :data:`CELL_NOISE` arrays every cell's 1/f state starts unseen)."""
        self = cls.__new__(cls)
        self.params, self.shape = params, tuple(int(s) for s in shape)
        n = int(np.prod(self.shape))
        for name in CELL_PARAMS + CELL_STATE:
            arr = np.array(state[name])
            if arr.shape != (n,):
                raise ValueError(f"saved cell array {name!r} has shape {arr.shape}, expected ({n},)")
            setattr(self, name, arr)
        self._init_noise(n)
        self.flicker.load_state_dict(state)
        return self

    # -- relaxation ----------------------------------------------------------------------
    def relax(self, idx: np.ndarray, now: float, rng: np.random.Generator) -> None:
        """Bring the cells ``idx`` (unique flat indices) up to virtual time ``now`` (s)."""
        p = self.params
        t_seen = self.t_seen[idx]
        if idx.size == 0 or np.all(t_seen >= now):
            return
        g_prog, t_prog = self.g_prog[idx], self.t_prog[idx]
        scale = self.relax_scale[idx]
        s_now = relaxation_sigma(g_prog, now - t_prog, p) * scale
        s_seen = relaxation_sigma(g_prog, t_seen - t_prog, p) * scale
        step_sigma = np.sqrt(np.maximum(s_now ** 2 - s_seen ** 2, 0.0))
        drift = relaxation_drift(g_prog, now - t_prog, p) - relaxation_drift(g_prog, t_seen - t_prog, p)
        mobile = self.formed[idx] & ~self.stuck[idx]
        g = self.g[idx] + np.where(mobile, drift + step_sigma * rng.standard_normal(idx.size), 0.0)
        # The filament cannot relax past the cell's physical bounds.
        self.g[idx] = np.where(mobile, np.clip(g, self.g_floor[idx], self.g_top[idx]), self.g[idx])
        self.t_seen[idx] = np.maximum(t_seen, now)

    def relax_all(self, now: float, rng: np.random.Generator) -> None:
        """Bring every cell up to virtual time ``now`` (s)."""
        self.relax(np.arange(self.g.size), now, rng)

    # -- pulses -------------------------------------------------------------------------
    def pulse(self, idx: np.ndarray, polarity: np.ndarray, amplitude: np.ndarray,
              width: np.ndarray, gate: np.ndarray, now: float, rng: np.random.Generator) -> None:
        """Apply one pulse per entry (arguments validated, 1-D, same length); a cell that
        appears several times receives its pulses in order."""
        if idx.size == 0:
            return
        if np.bincount(idx, minlength=self.g.size).max() == 1:  # the usual case: no repeats
            self._pulse_unique(idx, polarity, amplitude, width, gate, now, rng)
            return
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        first = np.r_[True, sorted_idx[1:] != sorted_idx[:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(idx.size), 0))
        rank = np.empty(idx.size, dtype=np.int64)
        rank[order] = np.arange(idx.size) - group_start
        for r in range(int(rank.max()) + 1):
            sel = rank == r
            self._pulse_unique(idx[sel], polarity[sel], amplitude[sel], width[sel], gate[sel], now, rng)

    def _pulse_unique(self, idx, polarity, amplitude, width, gate, now, rng) -> None:
        p = self.params
        self.relax(idx, now, rng)
        g = self.g[idx]
        floor, top = self.g_floor[idx], self.g_top[idx]
        is_set = polarity > 0
        conducting = ~self.stuck[idx] & (gate > self.gate_vt[idx])
        formed = self.formed[idx]
        ceiling = gate_ceiling(gate, top, self.gate_vt[idx], p)
        overdrive = amplitude - np.where(is_set, self.v_set[idx], self.v_reset[idx])
        k = np.where(is_set, self.k_set[idx], self.k_reset[idx])
        noise = np.exp(p.pulse_c2c * rng.standard_normal(idx.size))
        frac = switching_fraction(overdrive, width, k * noise, p)
        # Forming: an abrupt first SET, after which the cell sits at its floor and
        # the same pulse continues as an ordinary SET toward the gate ceiling.
        forming = conducting & ~formed & is_set & (amplitude >= self.v_form[idx])
        g = np.where(forming, floor, g)
        target = np.where(is_set, np.maximum(ceiling, g), floor)  # soft bounds
        moves = conducting & (formed | forming) & (frac > 0) & (target != g)
        new = np.where(moves, g + frac * (target - g), g)
        self.g[idx] = new
        self.formed[idx] = formed | forming
        reprogrammed = moves | forming
        self.t_prog[idx] = np.where(reprogrammed, now, self.t_prog[idx])
        self.g_prog[idx] = np.where(reprogrammed, new, self.g_prog[idx])
        self.flicker.restart(idx[reprogrammed], now)

    def _unique(self, idx: np.ndarray) -> np.ndarray:
        """Sorted unique flat indices (a mask over all cells: faster than np.unique)."""
        mask = np.zeros(self.g.size, dtype=bool)
        mask[idx] = True
        return np.flatnonzero(mask)

    def set_exact(self, idx: np.ndarray, g: np.ndarray, now: float, unstick: bool) -> None:
        """Oracle write: cells ``idx`` (unique) hold exactly ``g`` (S), freshly programmed at
        ``now``; a cell's own bounds widen to include ``g``. Stuck cells are skipped unless
        ``unstick``, which frees them first."""
        if unstick:
            self.stuck[idx] = False
        keep = self.stuck[idx]
        idx, g = idx[~keep], g[~keep]
        self.g_floor[idx] = np.minimum(self.g_floor[idx], g)
        self.g_top[idx] = np.maximum(self.g_top[idx], g)
        self.g[idx] = self.g_prog[idx] = g
        self.formed[idx] = True
        self.t_prog[idx] = self.t_seen[idx] = now
        self.flicker.restart(idx, now)

    # -- reads ---------------------------------------------------------------------------
    def read(self, idx: np.ndarray, bias: np.ndarray, window: np.ndarray, now: float,
             rng: np.random.Generator) -> np.ndarray:
        """Noisy apparent conductance I/V (S) of cells ``idx`` at ``bias`` (V) over the ``window`` (s)
        that ends at ``now``; a cell listed k times is read k times back to back."""
        self.relax(self._unique(idx), now, rng)
        g = self.g[idx] * nonlinearity(bias, self.params)
        return g + self._read_noise(idx, g, bias, window, now, rng)

    def _read_noise(self, idx: np.ndarray, g: np.ndarray, bias: np.ndarray | float, window: float, now: float,
                    rng: np.random.Generator) -> np.ndarray:
        """Read noise (S) of cells ``idx`` with apparent conductance ``g`` (S) read at ``bias`` (V) over
        the window that ends at ``now``: 1/f from each cell's state, white (thermal and shot) afresh."""
        spec = self.spectrum
        unit = self.flicker.read(idx, now - window, window, rng)
        flicker = np.sqrt(spec.flicker_coefficient(self.g[idx])) * np.abs(g) * unit
        white = np.sqrt(spec.white_psd(g, bias) / (2.0 * window)) / np.abs(bias)
        return flicker + white * rng.standard_normal(idx.size)

    def true_conductance(self, now: float, rng: np.random.Generator) -> np.ndarray:
        """True G (S) of every cell, relaxation applied up to ``now``; shape ``self.shape``."""
        self.relax_all(now, rng)
        return self.g.reshape(self.shape).copy()

    # -- quasi-static I-V -------------------------------------------------------------------
    def iv_point(self, i: int, volts: float, compliance: float, point_time: float,
                 now: float, rng: np.random.Generator) -> float:
        """One SMU point on cell ``i``: the cell switches as needed, returns the current (A).

        SET is abrupt at the cycle's threshold and leaves the compliance-limited LRS;
        RESET is gradual from the cycle's onset (see ``dc_reset_target``); the
        measured current is clamped at ``compliance`` (A, > 0).
        """
        p = self.params
        idx = np.array([i])
        self.relax(idx, now, rng)
        g = float(self.g[i])
        switched = False
        if self.stuck[i]:
            pass
        elif not self.formed[i]:
            if volts >= self.v_form[i]:
                g = float(compliance_lrs(compliance, self.v_hold[i], self.g_top[i], p))
                self.formed[i] = switched = True
        elif volts > 0 and volts >= self.v_set_next[i]:
            # the filament grows until the SMU clamps the current at this very voltage
            v_hold = min(volts, float(self.v_hold[i]))
            lrs = float(compliance_lrs(compliance, v_hold, self.g_top[i], p))
            if lrs > g:
                g, switched = lrs, True
        elif volts < 0:
            v_cell = min(-volts, compliance / (g * float(nonlinearity(volts, p))))
            if v_cell > self.v_reset_next[i]:
                target = dc_reset_target(v_cell, float(self.v_reset_next[i]),
                                         float(self.g_floor[i]), float(self.g_top[i]), p)
                if target < g:
                    g, switched = target, True
        if switched:
            if volts > 0:  # a new cycle: draw its SET and RESET thresholds
                self.v_set_next[i] = self.v_set_dc[i] + p.v_set_dc_c2c * rng.standard_normal()
                self.v_reset_next[i] = self.v_reset_dc[i] + p.v_reset_dc_c2c * rng.standard_normal()
            self.g[i] = self.g_prog[i] = g
            self.t_prog[i] = self.t_seen[i] = now
            self.flicker.restart(idx, now)
        g_app = g * float(nonlinearity(volts, p))
        current = g_app * volts
        if volts != 0.0:       # the point's read noise: the cell's 1/f state over the point time, white afresh
            current += volts * float(self._read_noise(idx, np.array([g_app]), volts, point_time, now, rng)[0])
        if abs(g_app * volts) >= compliance:
            current = float(np.sign(volts)) * compliance
        return current + p.smu_floor_noise * float(rng.standard_normal())
