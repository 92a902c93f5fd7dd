"""Parameters of the simulated TaOx 1T1R cell (one dataclass, every default sourced).

Conductances are in S, voltages in V, times in s. ``*_d2d`` fields are the
device-to-device spread drawn once per cell from the world's seeded generator:
relative (lognormal sigma) for positive scale parameters, absolute (V) for
thresholds. ``*_c2c`` fields are cycle-to-cycle spreads redrawn at every switching
event. ``docs/device-model.md`` gives the formulas and the measured magnitudes.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import asdict, dataclass, fields


class Polarity(enum.IntEnum):
    """Pulse polarity: SET (positive bit line) raises G, RESET (positive source line) lowers it."""

    SET = 1
    RESET = -1


@dataclass(frozen=True)
class DeviceParams:
    """TaOx 1T1R cell model parameters; defaults describe the seed paper's 180 nm cell."""

    # -- conductance window ------------------------------------------------------
    g_min: float = 1.0e-6        # S, lower edge of the formed window (seed paper: ~1-150 uS)
    g_max: float = 150e-6        # S, upper edge of the formed window (seed paper)
    g_pristine: float = 10e-9    # S, unformed (virgin) cell; typical TaOx pristine 1-100 nS
    g_init: float = 4e-6         # S, median start G of a formed world (formed then RESET)
    g_init_d2d: float = 0.3      # lognormal sigma of the start G
    g_floor: float = 1.3e-6      # S, median deepest-RESET conductance of a cell
    g_floor_d2d: float = 0.08    # lognormal sigma of g_floor
    g_top: float = 140e-6        # S, median highest conductance a cell reaches (full gate)
    g_top_d2d: float = 0.03      # lognormal sigma of g_top

    # -- access transistor (1T1R compliance) ---------------------------------------
    gate_vt: float = 0.6         # V, transistor threshold (180 nm I/O nMOS ~0.5-0.7 V)
    gate_vt_d2d: float = 0.02    # V, absolute spread of gate_vt
    gate_scale: float = 0.9      # V, ceiling = g_top (1 - exp(-(Vg - vt) / gate_scale))

    # -- pulse switching (VTEAM-like threshold, soft bounds) -----------------------
    v_set: float = 0.8           # V, SET pulse threshold for ~100 ns pulses (TaOx: 0.7-1.2 V)
    v_set_d2d: float = 0.03      # V, absolute spread of v_set
    v_reset: float = 0.9         # V, RESET pulse threshold magnitude (TaOx: 0.8-1.5 V)
    v_reset_d2d: float = 0.03    # V, absolute spread of v_reset
    k_set: float = 1.0           # 1/V^2, SET rate: fraction = 1 - exp(-k od^a ln(1 + w/tau))
    k_reset: float = 1.0         # 1/V^2, RESET rate, same form
    k_d2d: float = 0.15          # lognormal sigma of k_set and k_reset
    pulse_exponent: float = 2.0  # overdrive exponent a (VTEAM alpha; MemTorch default 1-5)
    tau_width: float = 10e-9     # s, width scale of the log-width dependence
    pulse_c2c: float = 0.3       # lognormal sigma of each pulse's step (write noise)

    # -- read ------------------------------------------------------------------------
    read_bias_ref: float = 0.1   # V, bias at which G is defined (chord conductance)
    nl_v0: float = 1.0           # V, I = G V S(V)/S(Vref), S(v) = sinh(v/v0)/(v/v0) (gap model)
    read_q0: float = 8e-4        # 1/f coefficient: Q = min(q0 / x^qe, q_max), x = g/g_max
    read_q_exp: float = 0.65     # exponent qe (aihwkit PCM-like read noise)
    read_q_max: float = 0.02     # cap on Q (aihwkit uses 0.2 for PCM; RRAM is quieter)
    read_t_r: float = 250e-9     # s, 1/f reference time t_r (aihwkit PCM-like)
    temperature: float = 300.0   # K, Johnson noise of the cell over bandwidth 1/(2 window)

    # -- relaxation after programming --------------------------------------------------
    relax_t0: float = 10e-3      # s, sigma grows as ln(1 + t/t0) (aihwkit ReRamCMO: ln t)
    relax_sigma0: float = 0.04e-6  # S, G-independent part of the relaxation sigma per ln-unit
    relax_sigma_rel: float = 1.2e-3  # relative part of the relaxation sigma per ln-unit
    relax_d2d: float = 0.2       # lognormal sigma of a cell's relaxation scale
    relax_drift_rel: float = 8e-4  # relative mean drift per ln-unit (downwards; ReRamCMO)

    # -- quasi-static I-V (SMU on a routed cell) -------------------------------------
    v_set_dc: float = 1.0        # V, abrupt DC SET voltage (seed paper's I-V: ~+1 V)
    v_set_dc_d2d: float = 0.04   # V, absolute d2d spread
    v_set_dc_c2c: float = 0.06   # V, cycle-to-cycle spread
    v_reset_dc: float = 0.74     # V, DC RESET onset magnitude (the RESET runs on to ~-1.4 V)
    v_reset_dc_d2d: float = 0.015  # V, absolute d2d spread
    v_reset_dc_c2c: float = 0.02  # V, cycle-to-cycle spread
    reset_dc_scale: float = 0.15  # V, G falls as exp(-(|V| - onset) / scale): gradual RESET
    v_hold: float = 0.9          # V, LRS after a DC SET draws the compliance at min(V_set, v_hold)
    v_hold_d2d: float = 0.02     # lognormal sigma of v_hold
    v_form: float = 1.8          # V, forming voltage (DC point or SET pulse), TaOx 1.5-3 V
    v_form_d2d: float = 0.08     # V, absolute d2d spread
    smu_point_time: float = 20e-3  # s, one quasi-static SMU point (1 NPLC at 50 Hz)
    smu_floor_noise: float = 1e-12  # A, SMU noise floor (open circuit reads ~1 pA)

    # -- defects -----------------------------------------------------------------------
    stuck_fraction: float = 0.002     # fraction of cells stuck (never switch); ~0.1-1 % reported
    stuck_high_fraction: float = 0.5  # of the stuck cells, the fraction stuck at high G

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"DeviceParams.{f.name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"DeviceParams.{f.name} must be >= 0, got {value!r}")
        for name in ("stuck_fraction", "stuck_high_fraction"):
            if getattr(self, name) > 1:
                raise ValueError(f"DeviceParams.{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if not self.g_pristine < self.g_min <= self.g_floor < self.g_top <= self.g_max:
            raise ValueError(
                "DeviceParams: need g_pristine < g_min <= g_floor < g_top <= g_max, got "
                f"{self.g_pristine}, {self.g_min}, {self.g_floor}, {self.g_top}, {self.g_max}"
            )
        for name in ("gate_scale", "tau_width", "read_bias_ref", "nl_v0", "read_t_r", "relax_t0",
                     "reset_dc_scale", "v_hold", "smu_point_time"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DeviceParams.{name} must be > 0, got {getattr(self, name)!r}")

    def ceiling(self, gate: float) -> float:
        """Nominal SET ceiling (S) of a median cell at gate voltage ``gate`` (V, >= 0)."""
        over = max(float(gate) - self.gate_vt, 0.0)
        return self.g_top * (1.0 - math.exp(-over / self.gate_scale))

    def to_json(self) -> str:
        """All fields as a JSON object (saved with the world state)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DeviceParams:
        """Parameters from :meth:`to_json`; unknown fields are refused."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"DeviceParams: unknown field(s) {', '.join(unknown)}")
        return cls(**data)
