"""Keithley 2450 SourceMeter emulation (native SCPI mode) over the simulated world.

The SMU's terminals are wired through the board's switch matrix to whatever cell
the board has routed (open circuit when none): every reading comes from
``world.smu_measure`` and every sweep from ``world.smu_sweep``, so a dual sweep
shows the switching of the routed cell. Measurement time (NPLC at 60 Hz line
frequency, source delays) advances the world's virtual clock.

Emulated: source voltage / measure current (the mode the bench uses; current
sourcing and voltage or resistance sensing answer -224), ILIM, ranges, NPLC,
output, ``:READ?``, ``:MEAS:CURR?``, linear and dual sweeps, list sweeps, the
trigger-model start ``:INIT`` and ``:ABORt``, ``defbuffer1`` and ``defbuffer2``,
plus the 2400-style forms that PyMeasure's Keithley2450 driver sends.
Values beyond the instrument's own ranges answer -222, like the real instrument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instruments.sim.scpi import Arg, Handler, ScpiError, ScpiInstrument, expect, fmt, no_args

LINE_FREQUENCY = 60.0  # Hz; NPLC are counted in cycles of this
V_MAX = 210.0  # V, largest source level of the 2450 (200 V range + 5 %)
I_LIM_MIN, I_LIM_MAX = 1e-9, 1.05  # A, current limit range
NPLC_MIN, NPLC_MAX = 0.01, 10.0
DELAY_MAX = 10_000.0  # s, largest source delay
AUTO_DELAY = 1e-3  # s, source delay used for "auto" on the low-current ranges
OVERHEAD = 200e-6  # s, per-reading overhead beyond the integration time
BUFFER_CAPACITY = 100_000  # readings per buffer (the 2450's default defbuffer1 size)
LIST_MAX = 2500  # points of a source list
SENSE_COUNT_MAX = 10_000  # readings per :READ? (the emulation's bound; the 2450 allows more)
NAN = 9.9e37  # SCPI "not a number"
BUFFERS = ("defbuffer1", "defbuffer2")


@dataclass
class _Buffer:
    """A reading buffer: source values (V), readings (A), relative times (s)."""

    source: list[float] = field(default_factory=list)
    reading: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)

    def append(self, source: np.ndarray, reading: np.ndarray, time: np.ndarray) -> None:
        self.source.extend(np.asarray(source, float).tolist())
        self.reading.extend(np.asarray(reading, float).tolist())
        self.time.extend(np.asarray(time, float).tolist())
        excess = len(self.reading) - BUFFER_CAPACITY
        if excess > 0:  # fill mode CONTinuous: the oldest readings are overwritten
            del self.source[:excess], self.reading[:excess], self.time[:excess]

    def clear(self) -> None:
        self.source.clear(), self.reading.clear(), self.time.clear()


@dataclass
class _Settings:
    """Everything ``*RST`` restores (2450 defaults)."""

    level: float = 0.0  # V
    ilim: float = 1.05e-4  # A
    source_range_auto: bool = True
    source_range: float = 2e-1  # V
    delay_auto: bool = True
    delay: float = 0.0  # s
    sense_range_auto: bool = True
    sense_range: float = 1e-4  # A
    nplc: float = 1.0
    sense_count: int = 1
    output: bool = False
    terminals: str = "FRONt"
    sweep: dict[str, Any] | None = None  # configured trigger model
    source_list: list[float] = field(default_factory=list)


class Keithley2450Emulator(ScpiInstrument):
    """2450 front end over ``world`` (see module docstring for what is emulated)."""

    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04531968,1.7.12b"

    def __init__(self, world: Any) -> None:
        self.world = world
        self.s = _Settings()
        self.buffers = {name: _Buffer() for name in BUFFERS}
        self._t0 = float(world.clock.now())  # buffer relative-time origin
        super().__init__()

    def reset(self) -> None:
        self.s = _Settings()
        for buffer in self.buffers.values():
            buffer.clear()
        self._apply_output()

    # -- command table ---------------------------------------------------------------
    def commands(self) -> Mapping[str, Handler]:
        level = ":SOURce[:VOLTage][:LEVel][:IMMediate][:AMPLitude]"
        return {
            "*LANG?": lambda a, s: no_args(a, "SCPI"),
            "*LANG": self._set_language,
            "*TRG": lambda a, s: no_args(a, None),
            ":SOURce:FUNCtion[:MODE]": self._set_source_function,
            ":SOURce:FUNCtion[:MODE]?": lambda a, s: no_args(a, "VOLT"),
            level: self._set_level,
            level + "?": lambda a, s: no_args(a, fmt(self.s.level)),
            ":SOURce[:VOLTage]:ILIMit[:LEVel]": self._number("ilim", I_LIM_MIN, I_LIM_MAX),
            ":SOURce[:VOLTage]:ILIMit[:LEVel]?": lambda a, s: no_args(a, fmt(self.s.ilim)),
            ":SOURce[:VOLTage]:RANGe": self._number("source_range", 0, V_MAX, auto="source_range_auto"),
            ":SOURce[:VOLTage]:RANGe?": lambda a, s: no_args(a, fmt(self.s.source_range)),
            ":SOURce[:VOLTage]:RANGe:AUTO": self._flag("source_range_auto"),
            ":SOURce[:VOLTage]:RANGe:AUTO?": self._flag_query("source_range_auto"),
            ":SOURce[:VOLTage]:DELay": self._number("delay", 0, DELAY_MAX, auto="delay_auto"),
            ":SOURce[:VOLTage]:DELay?": lambda a, s: no_args(a, fmt(self.s.delay)),
            ":SOURce[:VOLTage]:DELay:AUTO": self._flag("delay_auto"),
            ":SOURce[:VOLTage]:DELay:AUTO?": self._flag_query("delay_auto"),
            ":SOURce:LIST[:VOLTage]": self._set_list,
            ":SOURce:LIST[:VOLTage]:APPend": self._append_list,
            ":SOURce:LIST[:VOLTage]?": lambda a, s: no_args(a, ",".join(map(fmt, self.s.source_list))),
            ":SOURce:LIST[:VOLTage]:POINts?": lambda a, s: no_args(a, str(len(self.s.source_list))),
            ":SOURce:SWEep[:VOLTage]:LINear": self._configure_linear,
            ":SOURce:SWEep[:VOLTage]:LIST": self._configure_list,
            "[:SENSe]:FUNCtion[:ON]": self._set_sense_function,
            "[:SENSe]:FUNCtion[:ON]?": lambda a, s: no_args(a, '"CURR:DC"'),
            "[:SENSe][:CURRent][:DC]:RANGe[:UPPer]": self._number(
                "sense_range", 0, I_LIM_MAX, auto="sense_range_auto"
            ),
            "[:SENSe][:CURRent][:DC]:RANGe[:UPPer]?": lambda a, s: no_args(a, fmt(self.s.sense_range)),
            "[:SENSe][:CURRent][:DC]:RANGe:AUTO": self._flag("sense_range_auto"),
            "[:SENSe][:CURRent][:DC]:RANGe:AUTO?": self._flag_query("sense_range_auto"),
            "[:SENSe][:CURRent][:DC]:NPLCycles": self._number("nplc", NPLC_MIN, NPLC_MAX),
            "[:SENSe][:CURRent][:DC]:NPLCycles?": lambda a, s: no_args(a, fmt(self.s.nplc)),
            "[:SENSe]:COUNt": self._set_count,
            "[:SENSe]:COUNt?": lambda a, s: no_args(a, str(self.s.sense_count)),
            ":OUTPut[1][:STATe]": self._set_output,
            ":OUTPut[1][:STATe]?": lambda a, s: no_args(a, "1" if self.s.output else "0"),
            ":ROUTe:TERMinals": self._set_terminals,
            ":ROUTe:TERMinals?": lambda a, s: no_args(a, self.s.terminals[:4].upper()),
            ":READ[:DEFault]?": self._read,
            ":MEASure[:CURRent][:DC]?": self._measure,
            ":INITiate[:IMMediate]": lambda a, s: no_args(a, self._initiate()),
            ":ABORt": lambda a, s: no_args(a, None),  # sweeps complete before the next command
            ":TRACe:CLEar": self._trace_clear,
            ":TRACe:ACTual?": lambda a, s: str(len(self._buffer(a).reading)),
            ":TRACe:ACTual:STARt?": lambda a, s: "1" if self._buffer(a).reading else "0",
            ":TRACe:ACTual:END?": lambda a, s: str(len(self._buffer(a).reading)),
            ":TRACe:POINts?": lambda a, s: self._buffer(a) and str(BUFFER_CAPACITY),
            ":TRACe:DATA?": self._trace_data,
            ":FORMat[:DATA]": self._set_format,
            ":FORMat[:DATA]?": lambda a, s: no_args(a, "ASC"),
        }

    # -- declarative setters ----------------------------------------------------------------
    def _number(self, attr: str, lo: float, hi: float, auto: str | None = None) -> Handler:
        """Handler storing one numeric setting in [lo, hi] (setting a range ends autorange)."""

        def setter(args: list[Arg], suffixes: tuple[int, ...]) -> None:
            (arg,) = expect(args, 1)
            setattr(self.s, attr, arg.number(attr, lo, hi))
            if auto is not None:
                setattr(self.s, auto, False)

        return setter

    def _flag(self, attr: str) -> Handler:
        def setter(args: list[Arg], suffixes: tuple[int, ...]) -> None:
            (arg,) = expect(args, 1)
            setattr(self.s, attr, arg.boolean(attr))

        return setter

    def _flag_query(self, attr: str) -> Handler:
        return lambda a, s: no_args(a, "1" if getattr(self.s, attr) else "0")

    def _set_language(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        expect(args, 1)[0].choice("language", ["SCPI"])

    def _set_source_function(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        if expect(args, 1)[0].choice("source function", ["VOLTage", "CURRent"]) != "VOLTage":
            raise ScpiError(-224, "only voltage sourcing is emulated")

    def _set_sense_function(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        name = expect(args, 1)[0].text.upper()
        if name not in ("CURR", "CURRENT", "CURR:DC", "CURRENT:DC"):
            raise ScpiError(-224, f"only current sensing is emulated, got {name[:20]}")

    def _set_level(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.level = expect(args, 1)[0].number("source level", -V_MAX, V_MAX)
        self._apply_output()

    def _set_output(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.output = expect(args, 1)[0].boolean("output")
        self._apply_output()

    def _set_count(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.sense_count = expect(args, 1)[0].integer("count", 1, SENSE_COUNT_MAX)

    def _set_terminals(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.terminals = expect(args, 1)[0].choice("terminals", ["FRONt", "REAR"])

    def _set_format(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        expect(args, 1)[0].choice("format", ["ASCii"])

    def _set_list(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.source_list = self._voltages(expect(args, 1, LIST_MAX))

    def _append_list(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        values = self._voltages(expect(args, 1, LIST_MAX))
        if len(self.s.source_list) + len(values) > LIST_MAX:
            raise ScpiError(-222, f"source list longer than {LIST_MAX} points")
        self.s.source_list.extend(values)

    @staticmethod
    def _voltages(args: list[Arg]) -> list[float]:
        return [arg.number("list voltage", -V_MAX, V_MAX) for arg in args]

    # -- sweeps ------------------------------------------------------------------------------------
    def _configure_linear(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        """``start,stop,points[,delay,count,rangeType,failAbort,dual,"buffer"]``."""
        args = expect(args, 3, 9)
        start = args[0].number("start", -V_MAX, V_MAX)
        stop = args[1].number("stop", -V_MAX, V_MAX)
        points = args[2].integer("points", 2, BUFFER_CAPACITY)
        delay, count = self._delay_count(args[3:5])
        if len(args) > 5:
            args[5].choice("range type", ["AUTO", "BEST", "FIXed"])
        if len(args) > 6:
            args[6].boolean("fail abort")
        dual = args[7].boolean("dual") if len(args) > 7 else False
        buffer = self._buffer_name(args[8]) if len(args) > 8 else "defbuffer1"
        voltages = np.linspace(start, stop, points)
        if dual:
            voltages = np.concatenate([voltages, voltages[::-1]])
        self._store_sweep(voltages, delay, count, buffer)

    def _configure_list(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        """``startIndex,delay[,count,failAbort,"buffer"]`` over the source list."""
        args = expect(args, 1, 5)
        if not self.s.source_list:
            raise ScpiError(-221, "source list is empty")
        start = args[0].integer("start index", 1, len(self.s.source_list))
        delay, count = self._delay_count(args[1:3])
        if len(args) > 3:
            args[3].boolean("fail abort")
        buffer = self._buffer_name(args[4]) if len(args) > 4 else "defbuffer1"
        self._store_sweep(np.asarray(self.s.source_list[start - 1:]), delay, count, buffer)

    @staticmethod
    def _delay_count(args: list[Arg]) -> tuple[float, int]:
        delay = args[0].number("delay", -1, DELAY_MAX) if args else -1.0
        if delay != -1 and delay < 0:
            raise ScpiError(-222, "delay must be -1 (auto), 0 or positive")
        count = args[1].integer("count", 1, 1000) if len(args) > 1 else 1
        return delay, count

    def _store_sweep(self, voltages: np.ndarray, delay: float, count: int, buffer: str) -> None:
        if voltages.size * count > BUFFER_CAPACITY:
            raise ScpiError(-222, f"sweep of {voltages.size * count} points exceeds the buffer")
        self.s.sweep = {"voltages": np.tile(voltages, count), "delay": delay, "buffer": buffer}

    def _initiate(self) -> None:
        """Run the trigger model: the configured sweep, else one reading."""
        if self.s.sweep is None:
            self._measure_points(np.array([self.s.level]), "defbuffer1")
            return
        sweep = self.s.sweep
        self.s.output = True  # the sweep trigger model turns the output on
        self._apply_output(sweep["voltages"][0])
        delay = AUTO_DELAY if sweep["delay"] == -1 else sweep["delay"]
        self._measure_points(sweep["voltages"], sweep["buffer"], delay=delay)
        self._apply_output()

    # -- measurement ------------------------------------------------------------------------------
    def _point_time(self, delay: float) -> float:
        return delay + self.s.nplc / LINE_FREQUENCY + OVERHEAD

    def _measure_points(self, voltages: np.ndarray, buffer: str, delay: float | None = None) -> np.ndarray:
        """Source ``voltages`` in turn, read the current, store both; readings in A."""
        if delay is None:
            delay = (AUTO_DELAY if self.s.delay_auto else self.s.delay)
        n = voltages.size
        step = self._point_time(delay)
        with self.world.lock:
            t_start = self.world.clock.now() - self._t0
            if self.s.output:  # the world advances its clock by its own point time
                currents = np.asarray(self.world.smu_sweep(voltages, self.s.ilim), dtype=float)
                step = max(step, getattr(self.world.params, "smu_point_time", 0.0))
            else:
                currents = np.full(n, NAN)
            elapsed = self.world.clock.now() - self._t0 - t_start
            self.world.clock.sleep(max(0.0, step * n - elapsed))
        times = t_start + step * np.arange(1, n + 1)
        self.buffers[buffer].append(voltages, currents, times)
        if not self.s.output:
            raise ScpiError(-221, "output is off; no reading taken")
        return currents

    def _read(self, args: list[Arg], suffixes: tuple[int, ...]) -> str:
        """``:READ? ["buffer"[,elements...]]``: one new reading (sense count readings)."""
        buffer = self._buffer_name(args[0]) if args else "defbuffer1"
        elements = self._elements(args[1:]) if len(args) > 1 else ["READing"]
        volts = np.full(self.s.sense_count, self.s.level)
        try:
            self._measure_points(volts, buffer)
        except ScpiError as err:
            self.push_error(err)
        return self._format(buffer, len(self.buffers[buffer].reading) - volts.size, None, elements)

    def _measure(self, args: list[Arg], suffixes: tuple[int, ...]) -> str:
        """``:MEAS:CURR? ["buffer"[,elements...]]``."""
        return self._read(args, suffixes)

    # -- buffers -------------------------------------------------------------------------------------
    @staticmethod
    def _buffer_name(arg: Arg) -> str:
        name = arg.text.lower()
        if name not in BUFFERS:
            raise ScpiError(-224, f"unknown buffer {arg.text[:30]}")
        return name

    def _buffer(self, args: list[Arg]) -> _Buffer:
        expect(args, 0, 1)
        return self.buffers[self._buffer_name(args[0]) if args else "defbuffer1"]

    def _trace_clear(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self._buffer(args).clear()

    @staticmethod
    def _elements(args: list[Arg]) -> list[str]:
        return [arg.choice("buffer element", ["READing", "SOURce", "RELative"]) for arg in args]

    def _trace_data(self, args: list[Arg], suffixes: tuple[int, ...]) -> str:
        """``:TRAC:DATA? start,end[,"buffer"[,elements...]]`` -> interleaved values."""
        args = expect(args, 2, 6)
        buffer = self._buffer_name(args[2]) if len(args) > 2 else "defbuffer1"
        size = len(self.buffers[buffer].reading)
        if size == 0:
            raise ScpiError(-222, "buffer is empty")
        start = args[0].integer("start index", 1, size)
        end = args[1].integer("end index", start, size)
        elements = self._elements(args[3:]) if len(args) > 3 else ["READing"]
        return self._format(buffer, start - 1, end, elements)

    def _format(self, buffer: str, first: int, end: int | None, elements: list[str]) -> str:
        buf = self.buffers[buffer]
        columns = {"READing": buf.reading, "SOURce": buf.source, "RELative": buf.time}
        table = np.column_stack([np.asarray(columns[e][first:end], float) for e in elements])
        return ",".join(f"{v:.9E}" for v in table.ravel())

    # -- world coupling ----------------------------------------------------------------------------------
    def _apply_output(self, level: float | None = None) -> None:
        """Drive the world's SMU output: on at ``level`` (default the set level) or off."""
        with self.world.lock:
            self.world.outputs.smu_on = self.s.output
            self.world.outputs.smu_level = (self.s.level if level is None else level) if self.s.output else 0.0
