"""Reading buffers of the emulated Keithley 2450 (reference manual 2450-901-01, "Reading buffers").

A buffer stores, per reading: the measured value, the source value, the time (s of the
world's clock), the measurement and source status bits and the functions they came
from. ``:TRACe:DATA?``, ``:FETCh?``, ``:READ?`` and ``:MEASure?`` print any of the
manual's buffer elements (:data:`ELEMENTS`); ``RELative`` counts from the first
reading the buffer holds. ``:TRACe:STATistics:*`` covers the readings stored since the
buffer (or its statistics) was last cleared.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np

from instruments.sim.scpi import ScpiError

NAN = 9.9e37  # SCPI "not a number": overflow, no reading
DEFAULT_BUFFERS = ("defbuffer1", "defbuffer2")
DEFAULT_CAPACITY = 100_000  # readings of defbuffer1 and defbuffer2 after *RST
CAPACITY_MAX = 4_000_000  # readings of one buffer (the emulation's bound)
ELEMENTS = ("DATE", "FORMatted", "FRACtional", "READing", "RELative", "SEConds", "SOURce",
            "SOURFORMatted", "SOURSTATus", "SOURUNIT", "STATus", "TIME", "TSTamp", "UNIT")
STYLES = ("STANdard", "COMPact", "FULL", "WRITable", "FULLWRITable")
FILL_MODES = ("CONTinuous", "ONCE")
#: Unit names of the UNIT / SOURUNIT elements and the symbols of the formatted ones.
UNIT_NAMES = {"AMP": "Amp DC", "VOLT": "Volt DC", "OHM": "Ohm", "WATT": "Watt DC"}
UNIT_SYMBOLS = {"AMP": "A", "VOLT": "V", "OHM": "Ohm", "WATT": "W"}

# Measurement status bits (STATus element) and source status bits (SOURSTATus), as the
# emulation sets them (named after the 2450's buffer.STAT_* constants).
STAT_QUESTIONABLE = 0x01  # the reading is overflowed or taken in limit
STAT_TERMINAL = 0x08  # set: front terminals, clear: rear
STAT_START_GROUP = 0x100  # first reading of a :READ?/:MEAS?/trigger-model group
SOURCE_STAT_READBACK = 0x01  # the source value is the measured (read back) one
SOURCE_STAT_LIMIT = 0x04  # the source was in limit (compliance) for this reading

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
_PREFIXES = {-15: "f", -12: "p", -9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G"}


@dataclass
class ReadingBuffer:
    """One reading buffer: parallel columns, oldest reading first."""

    capacity: int = DEFAULT_CAPACITY
    style: str = "STANdard"
    fill: str = "CONTinuous"
    reading: list[float] = field(default_factory=list)
    source: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)  # s of the world clock
    status: list[int] = field(default_factory=list)
    source_status: list[int] = field(default_factory=list)
    unit: list[str] = field(default_factory=list)  # AMP, VOLT, OHM, WATT
    source_unit: list[str] = field(default_factory=list)
    stats_skip: int = 0  # held readings older than the last :TRAC:STAT:CLE

    def __len__(self) -> int:
        return len(self.reading)

    def append(self, reading: np.ndarray, source: np.ndarray, times: np.ndarray, status: np.ndarray,
               source_status: np.ndarray, unit: str, source_unit: str) -> int:
        """Store readings; returns how many were kept (fill mode ONCE stops at capacity)."""
        n = len(reading)
        if self.fill == "ONCE":
            n = max(0, min(n, self.capacity - len(self)))
        columns = (self.reading, self.source, self.time, self.status, self.source_status)
        values = (reading, source, times, status, source_status)
        for column, value in zip(columns, values, strict=True):
            column.extend(np.asarray(value)[:n].tolist())
        self.unit.extend([unit] * n)
        self.source_unit.extend([source_unit] * n)
        excess = len(self) - self.capacity
        if excess > 0:  # CONTinuous: the oldest readings are overwritten
            for column in (*columns, self.unit, self.source_unit):
                del column[:excess]
            self.stats_skip = max(0, self.stats_skip - excess)
        return n

    def clear(self) -> None:
        for column in (self.reading, self.source, self.time, self.status, self.source_status,
                       self.unit, self.source_unit):
            column.clear()
        self.stats_skip = 0

    def clear_statistics(self) -> None:
        self.stats_skip = len(self)

    def statistic(self, kind: str) -> float:
        """AVERage, MAXimum, MINimum, PK2Pk or STDDev of the readings since the statistics
        were cleared (overflows excluded); :data:`NAN` when there are none."""
        values = np.asarray(self.reading[self.stats_skip:], float)
        values = values[np.abs(values) < NAN]
        if values.size == 0:
            return NAN
        if kind == "STDDev":
            return float(np.std(values, ddof=1)) if values.size > 1 else 0.0
        return float({"AVERage": np.mean, "MAXimum": np.max, "MINimum": np.min,
                      "PK2Pk": np.ptp}[kind](values))

    def rows(self, first: int, end: int, elements: list[str], epoch: float, precision: int) -> list[str]:
        """The ``elements`` of readings ``first`` to ``end`` - 1 (0-based), reading by reading."""
        t0 = self.time[0] if self.time else 0.0
        number = _number_format(precision)
        out = []
        for k in range(first, end):
            when = epoch + self.time[k]
            whole = math.floor(when)
            stamp = time.gmtime(whole)
            for element in elements:
                out.append(_element(element, self, k, number, when - whole, stamp, whole, t0))
        return out


def _element(element: str, buf: ReadingBuffer, k: int, number, frac: float, stamp: time.struct_time,
             whole: int, t0: float) -> str:
    if element == "READing":
        return number(buf.reading[k])
    if element == "SOURce":
        return number(buf.source[k])
    if element == "RELative":
        return number(buf.time[k] - t0)
    if element == "STATus":
        return str(buf.status[k])
    if element == "SOURSTATus":
        return str(buf.source_status[k])
    if element == "UNIT":
        return UNIT_NAMES[buf.unit[k]]
    if element == "SOURUNIT":
        return UNIT_NAMES[buf.source_unit[k]]
    if element == "FORMatted":
        return formatted(buf.reading[k], buf.unit[k])
    if element == "SOURFORMatted":
        return formatted(buf.source[k], buf.source_unit[k])
    if element == "SEConds":
        return str(whole)
    if element == "FRACtional":
        return f"{frac:.9f}"
    clock = time.strftime("%H:%M:%S", stamp) + f"{frac:.9f}"[1:]
    if element == "TIME":
        return clock
    if element == "DATE":
        return time.strftime("%m/%d/%Y", stamp)
    return time.strftime("%m/%d/%Y ", stamp) + clock  # TSTamp


def _number_format(precision: int):
    """``:FORMat:ASCii:PRECision``: 0 is the full precision, else significant digits."""
    digits = 9 if precision == 0 else precision - 1
    return lambda v: f"{v:.{digits}E}"


def formatted(value: float, unit: str) -> str:
    """A value as the front panel shows it: ``+105.0000 uA``; overflow ``Overflow``."""
    symbol = UNIT_SYMBOLS[unit]
    if not abs(value) < NAN:
        return "Overflow"
    exponent = 0 if value == 0 else 3 * math.floor(math.log10(abs(value)) / 3)
    exponent = min(max(exponent, -15), 9)
    return f"{value / 10.0**exponent:+.4f} {_PREFIXES[exponent]}{symbol}"


def check_name(name: str) -> str:
    """A new buffer's name: a letter then up to 30 letters, digits or underscores."""
    if not _NAME.match(name) or name.lower() in DEFAULT_BUFFERS:
        raise ScpiError(-224, f"buffer name {name[:40]} not allowed")
    return name
