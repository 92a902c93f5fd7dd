"""Physical effects of the TaOx 1T1R cell: one vectorised function per effect.

Each function states its formula and where its form comes from; magnitudes are the
:class:`DeviceParams` defaults (``docs/device-model.md`` lists measured values).
Conductances in S, voltages in V, times in s. Read noise is a spectrum with per-cell
memory: :mod:`instruments.sim.noise_spectrum` (``read_noise_sigma``, ``CellFlicker``).
"""

from __future__ import annotations

import numpy as np

from instruments.sim.device_params import DeviceParams

BOLTZMANN = 1.380649e-23  # J/K (SI 2019, exact)


def gate_ceiling(gate: np.ndarray, g_top: np.ndarray, gate_vt: np.ndarray,
                 p: DeviceParams) -> np.ndarray:
    """SET ceiling (S) imposed by the access transistor at gate voltage ``gate`` (V).

    ceiling = g_top (1 - exp(-(Vg - Vt)+ / gate_scale)): the saturation current of
    the 1T1R transistor limits how far the filament grows (gate-controlled
    compliance, seed paper). Zero when the gate is below threshold.
    """
    over = np.maximum(np.asarray(gate, dtype=float) - gate_vt, 0.0)
    return g_top * -np.expm1(-over / p.gate_scale)


def switching_fraction(overdrive: np.ndarray, width: np.ndarray, k: np.ndarray,
                       p: DeviceParams) -> np.ndarray:
    """Fraction (0..1) of the way to the soft bound that one pulse moves G, noise-free.

    fraction = 1 - exp(-k od^a ln(1 + width / tau_width)), od = (|V| - V_th)+ in V:
    VTEAM's threshold power law (k (v/v_th - 1)^alpha) integrated over a pulse whose
    effect grows with log width; the soft bound (distance to the ceiling or floor)
    is applied by the caller.
    """
    od = np.maximum(overdrive, 0.0)
    return -np.expm1(-k * od ** p.pulse_exponent * np.log1p(width / p.tau_width))


def nonlinearity(bias: np.ndarray | float, p: DeviceParams) -> np.ndarray:
    """Ratio of the chord conductance at ``bias`` (V) to the one at ``read_bias_ref``.

    I = G V S(V) / S(V_ref), S(v) = sinh(v/v0) / (v/v0): the sinh of MemTorch's gap
    model, normalised so G is the conductance read at the reference bias (0.1 V).
    """
    def s(v: np.ndarray) -> np.ndarray:
        x = np.abs(np.asarray(v, dtype=float)) / p.nl_v0
        return np.where(x > 1e-8, np.sinh(x) / np.where(x > 1e-8, x, 1.0), 1.0)

    return s(bias) / s(p.read_bias_ref)


def relaxation_sigma(g: np.ndarray, t: np.ndarray, p: DeviceParams) -> np.ndarray:
    """Spread (S) of the conductance ``t`` s (>= 0) after the cell was programmed to ``g`` (S).

    sigma = (sigma0 + sigma_rel g) ln(1 + t / t0): the ReRamCMO relaxation of aihwkit
    (sigma linear in ln t, larger for larger g), with t0 avoiding ln(0) just after
    programming. Multiplied per cell by its device-to-device relaxation scale.
    """
    return (p.relax_sigma0 + p.relax_sigma_rel * g) * np.log1p(np.maximum(t, 0.0) / p.relax_t0)


def relaxation_drift(g: np.ndarray, t: np.ndarray, p: DeviceParams) -> np.ndarray:
    """Mean conductance change (S, <= 0) ``t`` s after programming to ``g`` (S).

    mu = -drift_rel g ln(1 + t / t0): the small downward mean drift of ReRamCMO
    (-0.089 uS per ln-unit there), scaled with g.
    """
    return -p.relax_drift_rel * g * np.log1p(np.maximum(t, 0.0) / p.relax_t0)


def compliance_lrs(compliance: float, v_hold: np.ndarray, g_top: np.ndarray,
                   p: DeviceParams) -> np.ndarray:
    """LRS conductance (S) left by a DC SET under current compliance ``compliance`` (A).

    The filament grows until the SMU clamps the current; the cell then draws the
    compliance at its hold voltage v_hold: G = I_cc / (v_hold S(v_hold)/S(V_ref)),
    bounded by the cell's g_top.
    """
    return np.minimum(g_top, compliance / (v_hold * nonlinearity(v_hold, p)))


def dc_reset_target(v_cell: float, onset: float, g_floor: float, g_top: float,
                    p: DeviceParams) -> float:
    """Highest conductance (S) a cell keeps at a quasi-static RESET voltage ``v_cell`` (V, >0).

    G_max(v) = g_floor + (g_top - g_floor) exp(-(v - onset) / reset_dc_scale): a
    gradual RESET that starts near the onset and is nearly complete 0.6 V later.
    """
    return g_floor + (g_top - g_floor) * float(np.exp(-(v_cell - onset) / p.reset_dc_scale))
