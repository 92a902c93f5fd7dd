"""Keithley 2450 SourceMeter driver (native SCPI command set).

The bench uses the 2450 in one mode: source voltage, measure current, with a
current limit (the 2450 calls the compliance ILIM). Every source value is checked
against the bench's :class:`Limits` before a byte is sent; nothing is clipped.
Sweeps run the instrument's own trigger model into ``defbuffer1`` and return the
(source, reading) pairs read back with ``:TRAC:DATA?``.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import numpy as np

from instruments.errors import InstrumentError
from instruments.limits import Limits
from instruments.transport import Settings, VisaTransport, query_settings

log = logging.getLogger("rrambench.smu")

LINE_FREQUENCY = 60.0  # Hz, power-line frequency that NPLC counts (50 in Europe)
NPLC_RANGE = (0.01, 10.0)  # power-line cycles per reading
SWEEP_POINTS_MAX = 2500  # points of one linear or list sweep
SWEEP_DELAY_MIN, SWEEP_DELAY_MAX = 50e-6, 10_000.0  # s, non-zero source delay range
READING_OVERHEAD = 1e-3  # s per reading beyond integration and delay (timeout estimate)
SOFTWARE_PULSE_MIN = 1e-3  # s; shorter pulses come from the controller board
LIST_CHUNK = 100  # values per :SOUR:LIST:VOLT line
BUFFER = '"defbuffer1"'
#: Unit of each source / measure function (the words ``:SOUR:FUNC?`` and ``:SENS:FUNC?`` answer).
FUNCTION_UNITS = {"VOLT": "V", "CURR": "A", "RES": "ohm"}
#: What :meth:`Keithley2450.snapshot` asks (``query_settings`` table): ``{src}``/``{sense}`` are
#: the active source and measure functions' nodes, ``{limit}`` ILIM or VLIM.
SETTINGS = """
source_level        {src}?              number   {level_unit}
source_range        {src}:RANG?         number   {level_unit}
source_autorange    {src}:RANG:AUTO?    flag
source_limit        {src}:{limit}?      number   {limit_unit}
source_delay        {src}:DEL?          number   s
source_delay_auto   {src}:DEL:AUTO?     flag
source_readback     {src}:READ:BACK?    flag
measure_range       {sense}:RANG?       number   {measure_unit}
measure_autorange   {sense}:RANG:AUTO?  flag
nplc                {sense}:NPLC?       number
autozero            {sense}:AZER?       flag
four_wire           {sense}:RSEN?       flag
filter              {sense}:AVER?       flag
filter_count        {sense}:AVER:COUN?  integer
measure_count       :SENS:COUN?         integer
output              :OUTP?              flag
terminals           :ROUT:TERM?         text
line_frequency      :SYST:LFR?          number   Hz
"""


class Clock(Protocol):
    """The bench clock: wall time on hardware, virtual time on the simulated bench."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class Keithley2450:
    """Keithley 2450 SourceMeter: source V, measure I, current limit, sweeps.

    Parameters
    ----------
    io:
        The instrument's transport (no I/O happens here).
    limits:
        The bench's safety envelope.
    """

    def __init__(self, io: VisaTransport, limits: Limits) -> None:
        self._io, self._limits = io, limits
        self._nplc = 1.0  # integration time of a reading (the 2450's default), for timing

    # -- identity and errors ----------------------------------------------------------------
    def identify(self) -> str:
        """``*IDN?`` reply: maker, model, serial, firmware."""
        return self._io.query("*IDN?")

    def reset(self) -> None:
        """Instrument defaults (output off at 0 V) and an empty error queue."""
        self._io.write("*RST;*CLS")
        self._nplc = 1.0

    def check_errors(self) -> None:
        """Raise :class:`InstrumentError` with the instrument's text if its queue holds errors."""
        self._io.check_errors()

    def snapshot(self) -> Settings:
        """What the instrument is set to now, asked of it (name -> (value, unit)).

        Source function, level, range, limit, delay; measure function, range, NPLC,
        autozero, filter, sense count; output state, terminals, line frequency. Only
        queries the 2450 answers (2450-901-01, :SOURce/:SENSe1/:OUTPut/:ROUTe/:SYSTem);
        the source and measure queries follow the functions the instrument reports.
        """
        source = self._io.query(":SOUR:FUNC?").upper()[:4]  # VOLT | CURR
        measure = self._io.query(":SENS:FUNC?").strip('"').split(":")[0].upper()[:4]  # CURR | VOLT | RES
        limit, limit_unit = ("ILIM", "A") if source == "VOLT" else ("VLIM", "V")
        return {"identity": (self.identify(), ""), "source_function": (source, ""),
                "measure_function": (measure, ""),
                **query_settings(self._io, SETTINGS, src=f":SOUR:{source}", sense=f":SENS:{measure}",
                                 limit=limit, limit_unit=limit_unit, level_unit=FUNCTION_UNITS.get(source, ""),
                                 measure_unit=FUNCTION_UNITS.get(measure, ""))}

    # -- configuration ---------------------------------------------------------------------------
    def configure_voltage_source(self, compliance: float, *, nplc: float = 1.0) -> None:
        """Source voltage (autorange), measure current (autorange).

        ``compliance``: current limit in A (> 0, within ``[limits].compliance``);
        ``nplc``: integration time in power-line cycles, 0.01 to 10.
        """
        self._check_compliance(compliance)
        if not NPLC_RANGE[0] <= nplc <= NPLC_RANGE[1]:
            raise ValueError(f"nplc must be in [{NPLC_RANGE[0]}, {NPLC_RANGE[1]}], got {nplc}")
        self._io.write(f":SOUR:FUNC VOLT;:SOUR:VOLT:RANG:AUTO 1;:SOUR:VOLT:ILIM {compliance:.6g}")
        self._io.write(f':SENS:FUNC "CURR";:SENS:CURR:RANG:AUTO 1;:SENS:CURR:NPLC {nplc:.6g}')
        self._nplc = float(nplc)
        self.check_errors()

    def set_current_limit(self, amps: float) -> None:
        """Compliance (ILIM) in A, > 0 and within ``[limits].compliance``."""
        self._check_compliance(amps)
        self._io.write(f":SOUR:VOLT:ILIM {amps:.6g}")

    def set_voltage(self, volts: float) -> None:
        """Source level in V, within ``[limits].smu_voltage``."""
        self._limits.smu_level(volts)
        self._io.write(f":SOUR:VOLT {volts:.6g}")

    def output_on(self) -> None:
        """Connect the source to the terminals at the set level."""
        self._io.write(":OUTP ON")

    def output_off(self) -> None:
        """Disconnect the source (the level setting is kept)."""
        self._io.write(":OUTP OFF")

    def output_enabled(self) -> bool:
        """True while the output is on."""
        return self._io.query(":OUTP?") == "1"

    # -- single readings -------------------------------------------------------------------------
    def measure_current(self) -> float:
        """One current reading in A at the present level (output must be on)."""
        return float(self._io.query(":MEAS:CURR?"))

    def read(self) -> tuple[float, float]:
        """One reading: (source level in V, current in A)."""
        volts, amps = self._io.query_ascii(f":READ? {BUFFER},SOUR,READ")
        return float(volts), float(amps)

    # -- sweeps -----------------------------------------------------------------------------------
    def sweep_linear(
        self, start: float, stop: float, points: int, *, delay: float = 1e-3, dual: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Staircase sweep from ``start`` to ``stop`` V in ``points`` steps (2 to 2500).

        ``dual`` sweeps back to ``start`` (an I-V loop: 2 * points readings).
        ``delay`` in s between setting a step and measuring it (0, or 50 us to
        10000 s). Returns (source V, current A) arrays; the output is off afterwards.
        """
        if not (isinstance(points, (int, np.integer)) and 2 <= points <= SWEEP_POINTS_MAX):
            raise ValueError(f"points must be an integer in [2, {SWEEP_POINTS_MAX}], got {points!r}")
        volts = np.linspace(start, stop, int(points))
        self._check_sweep(np.concatenate([volts, volts[::-1]]) if dual else volts, delay)
        self._io.write(f":TRAC:CLE {BUFFER}")
        self._io.write(
            f":SOUR:SWE:VOLT:LIN {start:.6g},{stop:.6g},{int(points)},{delay:.6g},1,BEST,OFF,"
            f"{'ON' if dual else 'OFF'},{BUFFER}"
        )
        return self._run_sweep(int(points) * (2 if dual else 1), delay)

    def sweep_list(self, voltages: np.ndarray, *, delay: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
        """Source each of ``voltages`` (V, 1 to 2500 points) in turn and measure the current.

        ``delay`` in s as for :meth:`sweep_linear`. Returns (source V, current A).
        """
        volts = np.asarray(voltages, dtype=float).ravel()
        if not 1 <= volts.size <= SWEEP_POINTS_MAX:
            raise ValueError(f"voltages must hold 1 to {SWEEP_POINTS_MAX} points, got {volts.size}")
        self._check_sweep(volts, delay)
        self._io.write(f":TRAC:CLE {BUFFER}")
        for index in range(0, volts.size, LIST_CHUNK):
            chunk = ",".join(f"{v:.6g}" for v in volts[index:index + LIST_CHUNK])
            self._io.write(f":SOUR:LIST:VOLT{':APP' if index else ''} {chunk}")
        self._io.write(f":SOUR:SWE:VOLT:LIST 1,{delay:.6g},1,OFF,{BUFFER}")
        return self._run_sweep(volts.size, delay)

    def _run_sweep(self, expected: int, delay: float) -> tuple[np.ndarray, np.ndarray]:
        """Check the configuration, run it, read the buffer back."""
        self.check_errors()
        duration = expected * (delay + self._nplc / LINE_FREQUENCY + READING_OVERHEAD)
        self._io.write(":INIT")
        self._io.query("*OPC?", timeout=self._io.timeout + 2.0 * duration)
        stored = int(self._io.query(f":TRAC:ACT? {BUFFER}"))
        if stored != expected:
            raise InstrumentError(self._io.name, f"sweep stored {stored} readings, expected {expected}")
        data = self._io.query_ascii(f":TRAC:DATA? 1,{stored},{BUFFER},SOUR,READ")
        self._io.write(":OUTP OFF")
        self.check_errors()
        pairs = data.reshape(-1, 2)
        return pairs[:, 0].copy(), pairs[:, 1].copy()

    def _check_sweep(self, volts: np.ndarray, delay: float) -> None:
        """Every level within the envelope; the staircase no faster than ``[limits].sweep_rate``."""
        self._limits.smu_level(volts)
        if not (delay == 0 or SWEEP_DELAY_MIN <= delay <= SWEEP_DELAY_MAX):
            raise ValueError(f"delay must be 0 or in [{SWEEP_DELAY_MIN}, {SWEEP_DELAY_MAX}] s, got {delay}")
        step = float(np.max(np.abs(np.diff(volts)))) if volts.size > 1 else 0.0
        self._limits.sweep(step / (delay + self._nplc / LINE_FREQUENCY))

    # -- pulses -----------------------------------------------------------------------------------
    def pulse(self, amplitude: float, width: float, clock: Clock) -> None:
        """Software-timed pulse: ``amplitude`` V for ``width`` s on the bench ``clock``.

        ``width`` from 1 ms to ``[limits].pulse_width_max``; the output is off and
        the level 0 V afterwards, also when the wait is interrupted.
        """
        self._limits.smu_level(amplitude)
        self._limits.pulse_width(width)
        if not width >= SOFTWARE_PULSE_MIN:
            raise ValueError(
                f"width {width:g} s is below the {SOFTWARE_PULSE_MIN:g} s a software-timed SMU "
                "pulse can hold; use the controller board for short pulses"
            )
        self._io.query(f":SOUR:VOLT {amplitude:.6g};:OUTP ON;*OPC?")  # on before the wait starts
        try:
            clock.sleep(width)
        finally:
            self._io.query(":OUTP OFF;:SOUR:VOLT 0;*OPC?")

    # -- safety -------------------------------------------------------------------------------------
    def safe_state(self) -> None:
        """Abort any sweep, level 0 V, output off, confirmed by ``*OPC?``; safe in any state, twice."""
        self._io.query(":ABOR;:SOUR:VOLT 0;:OUTP OFF;*OPC?")

    def _check_compliance(self, amps: float) -> None:
        if not (isinstance(amps, (int, float)) and math.isfinite(amps) and amps > 0):
            raise ValueError(f"compliance must be a current > 0 A, got {amps!r}")
        self._limits.smu_compliance(amps)
