"""The bench's safety envelope.

Every source command is checked here before a byte goes out. Values beyond the
envelope raise :class:`LimitError`; nothing is ever clipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

import numpy as np

from instruments.errors import ConfigError, LimitError


@dataclass(frozen=True)
class Limits:
    """Safety envelope, configured in the bench file's ``[limits]`` table.

    Magnitudes are absolute values; units in each field's name comment.
    """

    set_voltage: float = 2.0        # V, max |amplitude| of a SET pulse (bit line)
    reset_voltage: float = 2.5      # V, max |amplitude| of a RESET pulse (source line)
    read_voltage: float = 0.5       # V, max |read bias| and max |DAC input voltage|
    gate_voltage: float = 3.3       # V, max word-line (gate) voltage
    smu_voltage: float = 3.0        # V, max |SMU source level| on a routed cell
    compliance: float = 1e-3        # A, max SMU current limit
    pulse_width_min: float = 10e-9  # s, shortest pulse
    pulse_width_max: float = 10e-3  # s, longest pulse
    sweep_rate: float = 1e3         # V/s, fastest quasi-static sweep

    @classmethod
    def from_mapping(cls, table: Mapping[str, object]) -> Limits:
        """Build from a ``[limits]`` table; unknown keys and non-numbers are config errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"[limits]: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {}
        for key, value in table.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"[limits].{key} must be a positive finite number, got {value!r}")
            values[key] = float(value)
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # -- checks -------------------------------------------------------------------
    def check_magnitude(self, name: str, value: float | Iterable[float] | np.ndarray, what: str) -> None:
        """Refuse any |value| above the envelope field ``name`` (and any non-finite value)."""
        bound = getattr(self, name)
        arr = np.asarray(value, dtype=float)
        # One reduction: NaN propagates through max and an infinity stays one, so a
        # non-finite maximum means a non-finite element (this runs on every pulse batch).
        # A single value (a read bias, a scalar gate) needs no array pass at all.
        worst = abs(float(arr)) if arr.ndim == 0 else float(np.abs(arr).max()) if arr.size else 0.0
        if not math.isfinite(worst):
            raise LimitError(f"{what}: non-finite value refused")
        if worst > bound * (1 + 1e-12):
            raise LimitError(f"{what} {worst:.6g} exceeds the safety limit {bound:.6g} ([limits].{name})")

    def check_range(self, lo_name: str, hi_name: str, value, what: str) -> None:
        """Refuse values outside [limits.lo_name, limits.hi_name]."""
        lo, hi = getattr(self, lo_name), getattr(self, hi_name)
        arr = np.asarray(value, dtype=float)
        if arr.ndim == 0:  # a single value (a pulse width for the whole batch): no array pass
            low = high = float(arr)
        else:
            low, high = (float(arr.min()), float(arr.max())) if arr.size else (lo, hi)
        if not (math.isfinite(low) and math.isfinite(high)):  # NaN and infinities reach min or max
            raise LimitError(f"{what}: non-finite value refused")
        if low < lo * (1 - 1e-12) or high > hi * (1 + 1e-12):
            raise LimitError(
                f"{what} outside the safety range [{lo:.6g}, {hi:.6g}] ([limits].{lo_name}/{hi_name})"
            )

    # Named checks, one per physical quantity a source can drive.
    def set_pulse(self, amplitude) -> None:
        self.check_magnitude("set_voltage", amplitude, "SET pulse amplitude (V)")

    def reset_pulse(self, amplitude) -> None:
        self.check_magnitude("reset_voltage", amplitude, "RESET pulse amplitude (V)")

    def pulse_amplitudes(self, polarity: np.ndarray, amplitude: np.ndarray) -> None:
        """Refuse a SET amplitude (polarity > 0) beyond ``set_voltage`` or a RESET one (any other
        polarity) beyond ``reset_voltage`` (V; arrays that broadcast together, amplitudes >= 0).

        The same verdict as :meth:`set_pulse` and :meth:`reset_pulse` on the two halves, which
        name what is wrong; they run only when a quicker pass cannot clear the batch (this runs
        on every write-verify iteration): every amplitude within the lower of the two limits,
        or each within its own polarity's. NaN passes neither comparison.
        """
        amplitude = np.asarray(amplitude, dtype=float)
        if not amplitude.size:
            return
        tol = 1 + 1e-12
        if amplitude.max() <= min(self.set_voltage, self.reset_voltage) * tol:
            return
        positive = np.asarray(polarity) > 0
        if (amplitude <= np.where(positive, self.set_voltage * tol, self.reset_voltage * tol)).all():
            return
        positive, amplitude = np.broadcast_arrays(positive, amplitude)
        self.set_pulse(amplitude[positive])
        self.reset_pulse(amplitude[~positive])

    def read_bias(self, volts) -> None:
        self.check_magnitude("read_voltage", volts, "read/DAC voltage (V)")

    def gate(self, volts) -> None:
        self.check_magnitude("gate_voltage", volts, "gate voltage (V)")

    def smu_level(self, volts) -> None:
        self.check_magnitude("smu_voltage", volts, "SMU source level (V)")

    def smu_compliance(self, amps) -> None:
        self.check_magnitude("compliance", amps, "SMU current limit (A)")

    def pulse_width(self, seconds) -> None:
        self.check_range("pulse_width_min", "pulse_width_max", seconds, "pulse width (s)")

    def sweep(self, volts_per_second: float) -> None:
        self.check_magnitude("sweep_rate", volts_per_second, "sweep rate (V/s)")
