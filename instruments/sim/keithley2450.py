"""Keithley 2450 SourceMeter emulation (native SCPI command set) over the simulated world.

Follows the 2450 Reference Manual (2450-901-01), section "SCPI command reference";
docs/instruments-emulated.md lists the commands and the section each follows.

The SMU's terminals are wired through the board's switch matrix to whatever cell
the board has routed (open circuit when none): voltage sourcing goes through
``world.smu_sweep`` (the cell switches as the levels go), current sourcing applies
the voltage that drives the requested current through the routed cell at its present
conductance (clamped at the voltage limit). Every function answers its settings
whatever function is active: source VOLTage/CURRent (level, range, limit, delays,
read back, protection), sense CURRent/VOLTage/RESistance (range, autorange limits,
NPLC, autozero, 4-wire, filter, relative offset, unit). Measurement time (NPLC at the
line frequency, source delays) advances the world's clock.

Trigger model: the sweep commands (``:SOUR:SWE:<f>:LIN``, ``:LIN:STEP``, ``:LOG``,
``:LIST``) and ``:TRIG:LOAD "SimpleLoop"|"DurationLoop"|"Empty"`` build the model that
``:INIT`` runs. A sweep's model starts with a buffer-clear block, so the sweep fills
entries 1..N of its buffer and nothing earlier stays; ``failAbort ON`` stops the sweep
at the first point in limit. Readings (``:READ?``, ``:MEAS?``, ``:TRAC:TRIG``) append
to a buffer; ``:FETC?`` and ``:TRAC:DATA?`` read any buffer element; user buffers
come from ``:TRAC:MAKE``. Status model: standard event (``*ESE``), operation and
questionable registers with ``:MAP`` (error numbers are the events), ``*SRE``/``*STB?``.
Values beyond the instrument's ranges answer -222, unknown headers -113.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instruments.sim.device_physics import nonlinearity
from instruments.sim.keithley2450_buffer import (
    CAPACITY_MAX,
    DEFAULT_BUFFERS,
    ELEMENTS,
    FILL_MODES,
    NAN,
    SOURCE_STAT_LIMIT,
    SOURCE_STAT_READBACK,
    STAT_QUESTIONABLE,
    STAT_START_GROUP,
    STAT_TERMINAL,
    STYLES,
    ReadingBuffer,
    check_name,
)
from instruments.sim.scpi import Arg, Handler, ScpiError, ScpiInstrument, expect, fmt, no_args, short_form

LINE_FREQUENCY = 60.0  # Hz; NPLC are counted in cycles of this
SOURCE_FUNCTIONS = ("VOLTage", "CURRent")
SENSE_FUNCTIONS = ("CURRent", "VOLTage", "RESistance")
CURRENT_RANGES = (10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0)
VOLTAGE_RANGES = (20e-3, 200e-3, 2.0, 20.0, 200.0)
RESISTANCE_RANGES = (20.0, 200.0, 2e3, 20e3, 200e3, 2e6, 20e6, 200e6)
SOURCE_RANGES = {"VOLTage": VOLTAGE_RANGES, "CURRent": CURRENT_RANGES}
SENSE_RANGES = {"CURRent": CURRENT_RANGES, "VOLTage": VOLTAGE_RANGES, "RESistance": RESISTANCE_RANGES}
OVER_RANGE = 1.05  # a range sources and reads up to 105 % of its value
V_MAX, I_MAX = 210.0, 1.05  # largest source levels
#: limit command, [lo, hi], *RST value: ILIMit (A) of the voltage source, VLIMit (V) of the current source
LIMITS = {"VOLTage": ("ILIMit", 1e-9, 1.05, 1.05e-4), "CURRent": ("VLIMit", 0.02, 210.0, 21.0)}
PROTECTION = ("NONE", "PROT2", "PROT5", "PROT10", "PROT20", "PROT40", "PROT60", "PROT80", "PROT100",
              "PROT120", "PROT140", "PROT160", "PROT180")
UNITS = {"CURRent": ("AMP", "OHM", "WATT"), "VOLTage": ("VOLT", "OHM", "WATT"), "RESistance": ("OHM",)}
SOURCE_UNIT = {"VOLTage": "VOLT", "CURRent": "AMP"}
SENSE_NAMES = {"CURRent": '"CURR:DC"', "VOLTage": '"VOLT:DC"', "RESistance": '"RES"'}
NPLC_MIN, NPLC_MAX = 0.01, 10.0
DELAY_MAX = 10_000.0  # s, largest source or user delay
AUTO_DELAY = 1e-3  # s, source delay used for "auto"
OVERHEAD = 200e-6  # s, per-reading overhead beyond the integration time
LIST_MAX = 2500  # points of a source list
SWEEP_COUNT_MAX = 1000  # repetitions of a sweep (the emulation's bound)
SWEEP_POINTS_MAX = 1_000_000  # readings of one trigger-model run (the emulation's bound)
SENSE_COUNT_MAX = 300_000  # readings per :READ?/:MEAS?
FILTER_COUNT = (1, 100)
SAVED_SETUPS = 5  # *SAV / *RCL 0..4
BEEP_FREQUENCY = (20.0, 8000.0)  # Hz
BEEP_DURATION = (0.001, 100.0)  # s
TRIGGER_TEMPLATES = ("Empty", "SimpleLoop", "DurationLoop")


@dataclass
class _Source:
    """Settings of one source function."""

    function: str
    level: float = 0.0
    range: float = 0.0
    range_auto: bool = True
    limit: float = 0.0
    delay: float = 0.0
    delay_auto: bool = True
    readback: bool = True
    high_capacitance: bool = False
    protection: str = "NONE"
    off_mode: str = "NORMal"  # :OUTPut:<function>:SMODe
    user_delay: list[float] = field(default_factory=lambda: [0.0] * 5)
    source_list: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.limit = LIMITS[self.function][3]
        self.range = SOURCE_RANGES[self.function][0]


@dataclass
class _Sense:
    """Settings of one measure function."""

    function: str
    range: float = 0.0
    range_auto: bool = True
    auto_low: float = 0.0
    auto_high: float = 0.0
    rebound: bool = False
    nplc: float = 1.0
    azero: bool = True
    rsense: bool = False
    average: bool = False
    average_count: int = 10
    average_type: str = "REPeat"
    rel: bool = False
    rel_level: float = 0.0
    unit: str = ""
    ocomp: bool = False
    user_delay: list[float] = field(default_factory=lambda: [0.0] * 5)

    def __post_init__(self) -> None:
        ranges = SENSE_RANGES[self.function]
        self.range = {"CURRent": 1e-4, "VOLTage": 20.0, "RESistance": 200e3}[self.function]
        self.auto_low, self.auto_high = ranges[0], ranges[-1]
        self.unit = UNITS[self.function][0]


@dataclass
class _Model:
    """The trigger model that :INIT runs."""

    template: str  # Sweep, SimpleLoop, DurationLoop
    buffer: str
    levels: np.ndarray | None = None  # source levels of a sweep, repetitions included
    function: str = "VOLTage"
    delay: float = -1.0  # s, -1: auto
    fail_abort: bool = False
    count: int = 1
    duration: float = 0.0


@dataclass
class _Settings:
    """Everything ``*RST`` restores (2450 defaults)."""

    source_function: str = "VOLTage"
    sense_function: str = "CURRent"
    source: dict[str, _Source] = field(default_factory=lambda: {f: _Source(f) for f in SOURCE_FUNCTIONS})
    sense: dict[str, _Sense] = field(default_factory=lambda: {f: _Sense(f) for f in SENSE_FUNCTIONS})
    sense_count: int = 1
    output: bool = False
    terminals: str = "FRONt"
    model: _Model | None = None
    precision: int = 0  # :FORMat:ASCii:PRECision, 0: automatic

    # the bench's mode, kept as attributes for its tests
    @property
    def level(self) -> float:
        """Level of the active source function (V or A)."""
        return self.source[self.source_function].level

    @property
    def ilim(self) -> float:
        """Current limit of the voltage source, A."""
        return self.source["VOLTage"].limit


@dataclass
class _Register:
    """An operation or questionable event register set with its event map."""

    condition: int = 0
    event: int = 0
    enable: int = 0
    maps: dict[int, tuple[int, int]] = field(default_factory=dict)  # bit -> (set event, clear event)


def _best_range(value: float, ranges: tuple[float, ...], lo: float = 0.0, hi: float = math.inf,
                headroom: float = 1.0) -> float:
    """Smallest range in [lo, hi] holding ``|value|`` (``headroom``: fraction of it usable)."""
    usable = [r for r in ranges if lo * (1 - 1e-9) <= r <= hi * (1 + 1e-9)] or [ranges[-1]]
    for r in usable:
        if abs(value) <= r * headroom * (1 + 1e-9):
            return r
    return usable[-1]


class Keithley2450Emulator(ScpiInstrument):
    """2450 front end over ``world`` (see the module docstring for what is emulated)."""

    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04531968,1.7.12b"

    def __init__(self, world: Any) -> None:
        self.world = world
        self.s = _Settings()
        self.buffers: dict[str, ReadingBuffer] = {name: ReadingBuffer() for name in DEFAULT_BUFFERS}
        self._epoch = time.time() - float(world.clock.now())  # world clock -> UTC seconds
        self._saved: dict[int, _Settings] = {}
        self.operation, self.questionable = _Register(), _Register()
        self.tripped = {f: False for f in SOURCE_FUNCTIONS}  # last reading in limit
        self.beeps: list[tuple[float, float]] = []  # (Hz, s) of every :SYST:BEEP
        self._filter: list[float] = []  # moving-average history of the active function
        self._last_block = 0
        super().__init__()

    def reset(self) -> None:
        self.s = _Settings()
        self.buffers = {name: ReadingBuffer() for name in DEFAULT_BUFFERS}  # user buffers deleted
        self.tripped = {f: False for f in SOURCE_FUNCTIONS}
        self._filter = []
        self._apply_output()

    # -- status model -----------------------------------------------------------------------
    def status_bits(self) -> int:
        bits = 4 if self._errors else 0  # EAV
        bits |= 8 if self.questionable.event & self.questionable.enable else 0  # QSB
        return bits | (128 if self.operation.event & self.operation.enable else 0)  # OSB

    def clear_status(self) -> None:
        self.operation.event = self.questionable.event = 0

    def push_error(self, err: ScpiError) -> None:
        super().push_error(err)
        for reg in (self.operation, self.questionable):
            for bit, (set_event, clear_event) in reg.maps.items():
                if err.code == set_event:
                    reg.condition |= 1 << bit
                    reg.event |= 1 << bit
                elif err.code == clear_event:
                    reg.condition &= ~(1 << bit)

    # -- command table ------------------------------------------------------------------------
    def commands(self) -> Mapping[str, Handler]:
        table: dict[str, Handler] = {
            "*LANG?": lambda a, s: no_args(a, "SCPI"),
            "*LANG": self._accept("language", ["SCPI", "TSP", "SCPI2400"]),  # takes effect after a power cycle
            "*TRG": lambda a, s: no_args(a, None),
            "*OPT?": lambda a, s: no_args(a, "0"),
            "*SAV": self._save,
            "*RCL": self._recall,
            ":SOURce[1]:FUNCtion[:MODE]": self._set_source_function,
            ":SOURce[1]:FUNCtion[:MODE]?": lambda a, s: no_args(a, short_form(self.s.source_function)),
            "[:SENSe[1]]:FUNCtion[:ON]": self._set_sense_function,
            "[:SENSe[1]]:FUNCtion[:ON]?": lambda a, s: no_args(a, SENSE_NAMES[self.s.sense_function]),
            "[:SENSe[1]]:COUNt": self._setter(lambda: self.s, "sense_count", self._int(1, SENSE_COUNT_MAX)),
            "[:SENSe[1]]:COUNt?": lambda a, s: no_args(a, str(self.s.sense_count)),
            "[:SENSe[1]]:AZERo:ONCE": lambda a, s: no_args(a, None),
            ":OUTPut[1][:STATe]": self._set_output,
            ":OUTPut[1][:STATe]?": lambda a, s: no_args(a, "1" if self.s.output else "0"),
            ":OUTPut[1]:INTerlock:STATe?": lambda a, s: no_args(a, "1"),
            ":ROUTe:TERMinals": self._set_terminals,
            ":ROUTe:TERMinals?": lambda a, s: no_args(a, short_form(self.s.terminals)),
            ":READ[:DEFault]?": self._read,
            ":MEASure?": self._read,
            ":FETCh?": self._fetch,
            ":INITiate[:IMMediate]": lambda a, s: no_args(a, self._initiate()),
            ":ABORt": lambda a, s: no_args(a, None),  # the trigger model completes within :INIT
            ":TRIGger:LOAD": self._load_template,
            ":TRIGger:STATe?": lambda a, s: no_args(a, f"IDLE;IDLE;{self._last_block}"),
            ":TRIGger:PAUSe": lambda a, s: no_args(a, None),
            ":TRIGger:RESume": lambda a, s: no_args(a, None),
            ":FORMat[:DATA]": self._accept("data format", ["ASCii"]),
            ":FORMat[:DATA]?": lambda a, s: no_args(a, "ASC"),
            ":FORMat:ASCii:PRECision": self._setter(lambda: self.s, "precision", self._int(0, 16)),
            ":FORMat:ASCii:PRECision?": lambda a, s: no_args(a, str(self.s.precision)),
            ":SYSTem:LFRequency?": lambda a, s: no_args(a, f"{LINE_FREQUENCY:g}"),
            ":SYSTem:BEEPer[:IMMediate]": self._beep,
            ":SYSTem:CLEar": lambda a, s: no_args(a, self._errors.clear()),
            ":SYSTem:TIME?": lambda a, s: no_args(a, str(int(self._epoch + self.world.clock.now()))),
            ":SYSTem:EVENtlog:COUNt?": self._event_count,
            ":SYSTem:EVENtlog:NEXT?": self._event_next,
            ":STATus:CLEar": lambda a, s: no_args(a, self.clear_status()),
            ":STATus:PRESet": lambda a, s: no_args(a, self._status_preset()),
        }
        for function in SOURCE_FUNCTIONS:
            table.update(self._source_commands(function))
        for function in SENSE_FUNCTIONS:
            table.update(self._sense_commands(function))
        table.update(self._trace_commands())
        for name, reg in (("OPERation", lambda: self.operation), ("QUEStionable", lambda: self.questionable)):
            table.update(self._register_commands(name, reg))
        return table

    def _source_commands(self, f: str) -> dict[str, Handler]:
        src = f":SOURce[1]:{f}"
        get = lambda: self.s.source[f]  # noqa: E731 - settings are replaced by *RST
        limit, lo, hi, _ = LIMITS[f]
        table = {
            src + "[:LEVel][:IMMediate][:AMPLitude]": lambda a, s: self._set_level(f, a),
            src + "[:LEVel][:IMMediate][:AMPLitude]?": lambda a, s: no_args(a, fmt(get().level)),
            src + ":RANGe": lambda a, s: self._set_source_range(f, a),
            src + ":RANGe?": lambda a, s: no_args(a, fmt(get().range)),
            src + f":{limit}[:LEVel]": self._setter(get, "limit", self._num(lo, hi)),
            src + f":{limit}[:LEVel]?": lambda a, s: no_args(a, fmt(get().limit)),
            src + f":{limit}[:LEVel]:TRIPped?": lambda a, s: no_args(a, "1" if self.tripped[f] else "0"),
            src + ":DELay": self._setter(get, "delay", self._num(0, DELAY_MAX), auto="delay_auto"),
            src + ":DELay?": lambda a, s: no_args(a, fmt(get().delay)),
            src + ":DELay:USER<n>": lambda a, s: self._set_user_delay(get, a, s),
            src + ":DELay:USER<n>?": lambda a, s: no_args(a, fmt(get().user_delay[self._user(s)])),
        }
        table.update(self._flag_pair(src + ":RANGe:AUTO", get, "range_auto", after=lambda: self._autorange_source(f)))
        table.update(self._flag_pair(src + ":DELay:AUTO", get, "delay_auto"))
        table.update(self._flag_pair(src + ":READ:BACK", get, "readback"))
        table.update(self._flag_pair(src + ":HIGH:CAPacitance", get, "high_capacitance"))
        table.update(self._choice_pair(f":OUTPut[1]:{f}:SMODe", get, "off_mode",
                                       ["HIMPedance", "NORMal", "ZERO", "GUARd"]))
        if f == "VOLTage":
            table.update(self._choice_pair(src + ":PROTection[:LEVel]", get, "protection", list(PROTECTION)))
            table[src + ":PROTection[:LEVel]:TRIPped?"] = lambda a, s: no_args(a, "0")
        lst = f":SOURce[1]:LIST:{f}"
        table.update({
            lst: lambda a, s: self._set_list(f, a, append=False),
            lst + ":APPend": lambda a, s: self._set_list(f, a, append=True),
            lst + "?": lambda a, s: no_args(a, ",".join(map(fmt, get().source_list))),
            lst + ":POINts?": lambda a, s: no_args(a, str(len(get().source_list))),
        })
        swe = f":SOURce[1]:SWEep:{f}"
        table.update({
            swe + ":LINear": lambda a, s: self._configure_sweep(f, "LINear", a),
            swe + ":LINear:STEP": lambda a, s: self._configure_sweep(f, "STEP", a),
            swe + ":LOG": lambda a, s: self._configure_sweep(f, "LOG", a),
            swe + ":LIST": lambda a, s: self._configure_list_sweep(f, a),
        })
        return table

    def _sense_commands(self, f: str) -> dict[str, Handler]:
        sen = f"[:SENSe[1]]:{f}" + ("" if f == "RESistance" else "[:DC]")
        get = lambda: self.s.sense[f]  # noqa: E731
        ranges = SENSE_RANGES[f]
        table = {
            sen + ":RANGe[:UPPer]": lambda a, s: self._set_sense_range(f, a),
            sen + ":RANGe[:UPPer]?": lambda a, s: no_args(a, fmt(get().range)),
            sen + ":RANGe:AUTO:LLIMit": self._setter(get, "auto_low", self._pick(ranges)),
            sen + ":RANGe:AUTO:LLIMit?": lambda a, s: no_args(a, fmt(get().auto_low)),
            sen + ":RANGe:AUTO:ULIMit": self._setter(get, "auto_high", self._pick(ranges)),
            sen + ":RANGe:AUTO:ULIMit?": lambda a, s: no_args(a, fmt(get().auto_high)),
            sen + ":NPLCycles": self._setter(get, "nplc", self._num(NPLC_MIN, NPLC_MAX)),
            sen + ":NPLCycles?": lambda a, s: no_args(a, fmt(get().nplc)),
            sen + ":AVERage:COUNt": self._setter(get, "average_count", self._int(*FILTER_COUNT)),
            sen + ":AVERage:COUNt?": lambda a, s: no_args(a, str(get().average_count)),
            sen + ":DELay:USER<n>": lambda a, s: self._set_user_delay(get, a, s),
            sen + ":DELay:USER<n>?": lambda a, s: no_args(a, fmt(get().user_delay[self._user(s)])),
            sen + ":RELative": self._setter(get, "rel_level", self._num(-1e9, 1e9)),
            sen + ":RELative?": lambda a, s: no_args(a, fmt(get().rel_level)),
            sen + ":RELative:ACQuire": lambda a, s: no_args(a, self._acquire_relative(f)),
            f":MEASure:{f}" + ("" if f == "RESistance" else "[:DC]") + "?": lambda a, s: self._read(a, s, f),
        }
        table.update(self._flag_pair(sen + ":RANGe:AUTO", get, "range_auto"))
        table.update(self._flag_pair(sen + ":RANGe:AUTO:REBound", get, "rebound"))
        table.update(self._flag_pair(sen + ":AZERo[:STATe]", get, "azero"))
        table.update(self._flag_pair(sen + ":RSENse", get, "rsense"))
        table.update(self._flag_pair(sen + ":AVERage[:STATe]", get, "average"))
        table.update(self._flag_pair(sen + ":RELative:STATe", get, "rel"))
        table.update(self._choice_pair(sen + ":AVERage:TCONtrol", get, "average_type", ["REPeat", "MOVing"]))
        table.update(self._choice_pair(sen + ":UNIT", get, "unit", list(UNITS[f])))
        if f == "RESistance":
            table.update(self._flag_pair(sen + ":OCOMpensated", get, "ocomp"))
        return table

    def _trace_commands(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            ":TRACe:MAKE": self._make_buffer,
            ":TRACe:DELete": self._delete_buffer,
            ":TRACe:CLEar": lambda a, s: self._buffer(a)[1].clear(),
            ":TRACe:POINts": self._set_capacity,
            ":TRACe:POINts?": lambda a, s: str(self._buffer(a)[1].capacity),
            ":TRACe:ACTual?": lambda a, s: str(len(self._buffer(a)[1])),
            ":TRACe:ACTual:STARt?": lambda a, s: "1" if len(self._buffer(a)[1]) else "0",
            ":TRACe:ACTual:END?": lambda a, s: str(len(self._buffer(a)[1])),
            ":TRACe:FILL:MODE": self._set_fill_mode,
            ":TRACe:FILL:MODE?": lambda a, s: short_form(self._buffer(a)[1].fill).upper(),
            ":TRACe:DATA?": self._trace_data,
            ":TRACe:TRIGger": self._trace_trigger,
            ":TRACe:STATistics:CLEar": lambda a, s: self._buffer(a)[1].clear_statistics(),
        }
        for kind in ("AVERage", "MAXimum", "MINimum", "PK2Pk", "STDDev"):
            table[f":TRACe:STATistics:{kind}?"] = lambda a, s, k=kind: fmt(self._buffer(a)[1].statistic(k))
        return table

    def _register_commands(self, name: str, reg: Callable[[], _Register]) -> dict[str, Handler]:
        stat = f":STATus:{name}"

        def read_event(args: list[Arg], suffixes: tuple[int, ...]) -> str:
            no_args(args, None)
            value, reg().event = reg().event, 0
            return str(value)

        def set_map(args: list[Arg], suffixes: tuple[int, ...]) -> None:
            args = expect(args, 2, 3)
            bit = args[0].integer("bit", 0, 14)
            set_event = args[1].integer("set event", -999_999, 999_999)
            clear_event = args[2].integer("clear event", -999_999, 999_999) if len(args) > 2 else 0
            reg().maps[bit] = (set_event, clear_event)

        def query_map(args: list[Arg], suffixes: tuple[int, ...]) -> str:
            bit = expect(args, 1)[0].integer("bit", 0, 14)
            return "{},{}".format(*reg().maps.get(bit, (0, 0)))

        return {
            stat + "[:EVENt]?": read_event,
            stat + ":CONDition?": lambda a, s: no_args(a, str(reg().condition)),
            stat + ":ENABle": self._setter(reg, "enable", self._int(0, 65535)),
            stat + ":ENABle?": lambda a, s: no_args(a, str(reg().enable)),
            stat + ":MAP": set_map,
            stat + ":MAP?": query_map,
        }

    # -- declarative helpers -------------------------------------------------------------------
    @staticmethod
    def _num(lo: float, hi: float) -> Callable[[Arg, str], float]:
        return lambda arg, name: arg.number(name, lo, hi)

    @staticmethod
    def _int(lo: int, hi: int) -> Callable[[Arg, str], int]:
        return lambda arg, name: arg.integer(name, lo, hi)

    @staticmethod
    def _pick(ranges: tuple[float, ...]) -> Callable[[Arg, str], float]:
        """A range value: the smallest range holding the number given."""

        def parse(arg: Arg, name: str) -> float:
            value = arg.number(name, -ranges[-1], ranges[-1])
            return _best_range(value, ranges)

        return parse

    @staticmethod
    def _setter(obj: Callable[[], Any], attr: str, parse: Callable[[Arg, str], Any],
                auto: str | None = None) -> Handler:
        """Handler storing one parsed setting (``auto``: a flag the setting turns off)."""

        def setter(args: list[Arg], suffixes: tuple[int, ...]) -> None:
            value = parse(expect(args, 1)[0], attr)
            setattr(obj(), attr, value)
            if auto is not None:
                setattr(obj(), auto, False)

        return setter

    def _flag_pair(self, pattern: str, obj: Callable[[], Any], attr: str,
                   after: Callable[[], None] | None = None) -> dict[str, Handler]:
        def setter(args: list[Arg], suffixes: tuple[int, ...]) -> None:
            setattr(obj(), attr, expect(args, 1)[0].boolean(attr))
            if after is not None:
                after()

        return {pattern: setter, pattern + "?": lambda a, s: no_args(a, "1" if getattr(obj(), attr) else "0")}

    def _choice_pair(self, pattern: str, obj: Callable[[], Any], attr: str, options: list[str]) -> dict[str, Handler]:
        return {
            pattern: self._setter(obj, attr, lambda arg, name: arg.choice(name, options)),
            pattern + "?": lambda a, s: no_args(a, short_form(getattr(obj(), attr)).upper()),
        }

    def _event_count(self, args: list[Arg], suffixes: tuple[int, ...]) -> str:
        """``:SYST:EVEN:COUN? [ALL|ERRor|WARNing|INFormation]``: the emulation logs errors only."""
        kinds = expect(args, 0, 1) and args[0].choice("event type", ["ALL", "ERRor", "WARNing", "INFormation"])
        return str(len(self._errors) if kinds in ([], "ALL", "ERRor") else 0)

    def _event_next(self, args: list[Arg], suffixes: tuple[int, ...]) -> str:
        """``:SYST:EVEN:NEXT? [type]``: the oldest logged event (an error), removed."""
        expect(args, 0, 1)
        return self._next_error()

    @staticmethod
    def _user(suffixes: tuple[int, ...]) -> int:
        if not 1 <= suffixes[-1] <= 5:
            raise ScpiError(-114, f"user delay {suffixes[-1]}")
        return suffixes[-1] - 1

    def _set_user_delay(self, obj: Callable[[], Any], args: list[Arg], suffixes: tuple[int, ...]) -> None:
        obj().user_delay[self._user(suffixes)] = expect(args, 1)[0].number("user delay", 0, DELAY_MAX)

    # -- source and sense settings ---------------------------------------------------------------
    def _set_source_function(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        function = expect(args, 1)[0].choice("source function", list(SOURCE_FUNCTIONS))
        if function != self.s.source_function:
            self.s.source_function = function
            self.s.output = False  # changing the source function turns the output off
            self.s.model = None
            self._apply_output()

    def _set_sense_function(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        word = expect(args, 1)[0].text.upper().replace(" ", "")
        if word.endswith(":DC"):
            word = word[:-3]
        for function in SENSE_FUNCTIONS:
            if word in (function.upper(), short_form(function)):
                self.s.sense_function = function
                self._filter = []
                return
        raise ScpiError(-224, f"measure function expects VOLTage|CURRent|RESistance, got {word[:20]}")

    def _set_level(self, f: str, args: list[Arg]) -> None:
        src = self.s.source[f]
        top = V_MAX if f == "VOLTage" else I_MAX
        level = expect(args, 1)[0].number("source level", -top, top)
        if not src.range_auto and abs(level) > src.range * OVER_RANGE * (1 + 1e-9):
            raise ScpiError(-222, f"level {level:g} beyond the fixed {src.range:g} range")
        if f == "VOLTage" and src.protection != "NONE" and abs(level) > float(src.protection[4:]):
            raise ScpiError(-222, f"level {level:g} V beyond the overvoltage protection")
        src.level = level
        self._autorange_source(f)
        if f == self.s.source_function:
            self._apply_output()

    def _autorange_source(self, f: str) -> None:
        src = self.s.source[f]
        if src.range_auto:
            src.range = _best_range(src.level, SOURCE_RANGES[f], headroom=OVER_RANGE)

    def _set_source_range(self, f: str, args: list[Arg]) -> None:
        ranges, src = SOURCE_RANGES[f], self.s.source[f]
        value = expect(args, 1)[0].number("source range", -ranges[-1] * OVER_RANGE, ranges[-1] * OVER_RANGE)
        src.range, src.range_auto = _best_range(value, ranges), False

    def _set_sense_range(self, f: str, args: list[Arg]) -> None:
        ranges, sen = SENSE_RANGES[f], self.s.sense[f]
        value = expect(args, 1)[0].number("measure range", -ranges[-1] * OVER_RANGE, ranges[-1] * OVER_RANGE)
        sen.range, sen.range_auto = _best_range(value, ranges), False

    def _set_output(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.output = expect(args, 1)[0].boolean("output")
        self._apply_output()

    def _set_terminals(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        terminals = expect(args, 1)[0].choice("terminals", ["FRONt", "REAR"])
        if terminals != self.s.terminals:
            self.s.terminals, self.s.output = terminals, False  # switching terminals turns the output off
            self._apply_output()

    def _set_list(self, f: str, args: list[Arg], *, append: bool) -> None:
        top = V_MAX if f == "VOLTage" else I_MAX
        values = [arg.number("list value", -top, top) for arg in expect(args, 1, LIST_MAX)]
        src = self.s.source[f]
        if append and len(src.source_list) + len(values) > LIST_MAX:
            raise ScpiError(-222, f"source list longer than {LIST_MAX} points")
        src.source_list = (src.source_list if append else []) + values

    def _acquire_relative(self, f: str) -> None:
        """``:REL:ACQ``: a new reading of function ``f`` (not stored) becomes its relative offset."""
        sen, scratch = self.s.sense[f], ReadingBuffer(capacity=1)
        previous, self.s.sense_function = self.s.sense_function, f
        rel, sen.rel = sen.rel, False
        try:
            self._measure(np.full(1, self.s.source[self.s.source_function].level), scratch)
            sen.rel_level = scratch.reading[-1]
        finally:
            self.s.sense_function, sen.rel = previous, rel

    def _save(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self._saved[expect(args, 1)[0].integer("setup", 0, SAVED_SETUPS - 1)] = copy.deepcopy(self.s)

    def _recall(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        slot = expect(args, 1)[0].integer("setup", 0, SAVED_SETUPS - 1)
        if slot not in self._saved:
            raise ScpiError(-221, f"no setup saved in {slot}")
        self.s = copy.deepcopy(self._saved[slot])
        self._apply_output()

    def _beep(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        args = expect(args, 2)
        self.beeps.append((args[0].number("frequency", *BEEP_FREQUENCY), args[1].number("duration", *BEEP_DURATION)))

    def _status_preset(self) -> None:
        self.operation, self.questionable = _Register(), _Register()

    # -- trigger model ------------------------------------------------------------------------------
    def _configure_sweep(self, f: str, kind: str, args: list[Arg]) -> None:
        """``start,stop,points|step[,delay,count,rangeType,failAbort,dual,"buffer"[,asymptote]]``."""
        self._check_function(f)
        top = V_MAX if f == "VOLTage" else I_MAX
        args = expect(args, 3, 10 if kind == "LOG" else 9)
        start, stop = args[0].number("start", -top, top), args[1].number("stop", -top, top)
        if kind == "STEP":
            step = args[2].number("step", -2 * top, 2 * top)
            if step == 0 or (stop - start) * step < 0:
                raise ScpiError(-222, "step must be non-zero and point from start to stop")
            levels = start + step * np.arange(int(math.floor((stop - start) / step + 1e-9)) + 1)
        else:
            points = args[2].integer("points", 2, SWEEP_POINTS_MAX)
            if kind == "LOG":
                asymptote = args[9].number("asymptote", -top, top) if len(args) > 9 else 0.0
                a, b = start - asymptote, stop - asymptote
                if a * b <= 0:
                    raise ScpiError(-222, "a log sweep needs start and stop on one side of the asymptote")
                levels = asymptote + np.sign(a) * np.logspace(np.log10(abs(a)), np.log10(abs(b)), points)
            else:
                levels = np.linspace(start, stop, points)
        delay, count = self._delay_count(args[3:5])
        if len(args) > 5:
            args[5].choice("range type", ["AUTO", "BEST", "FIXed"])
        fail_abort = args[6].boolean("fail abort") if len(args) > 6 else True
        if len(args) > 7 and args[7].boolean("dual"):
            levels = np.concatenate([levels, levels[::-1]])
        buffer = self._buffer_name(args[8]) if len(args) > 8 else "defbuffer1"
        self._store_sweep(f, levels, delay, count, fail_abort, buffer)

    def _configure_list_sweep(self, f: str, args: list[Arg]) -> None:
        """``startIndex[,delay,count,failAbort,"buffer"]`` over the function's source list."""
        self._check_function(f)
        args = expect(args, 1, 5)
        values = self.s.source[f].source_list
        if not values:
            raise ScpiError(-221, "source list is empty")
        start = args[0].integer("start index", 1, len(values))
        delay, count = self._delay_count(args[1:3])
        fail_abort = args[3].boolean("fail abort") if len(args) > 3 else True
        buffer = self._buffer_name(args[4]) if len(args) > 4 else "defbuffer1"
        self._store_sweep(f, np.asarray(values[start - 1:]), delay, count, fail_abort, buffer)

    def _check_function(self, f: str) -> None:
        if f != self.s.source_function:
            raise ScpiError(-221, f"sweep of {f} while the source function is {self.s.source_function}")

    @staticmethod
    def _delay_count(args: list[Arg]) -> tuple[float, int]:
        delay = args[0].number("delay", -1, DELAY_MAX) if args else -1.0
        if delay != -1 and delay < 0:
            raise ScpiError(-222, "delay must be -1 (auto), 0 or positive")
        count = args[1].integer("count", 1, SWEEP_COUNT_MAX) if len(args) > 1 else 1
        return delay, count

    def _store_sweep(self, f: str, levels: np.ndarray, delay: float, count: int, fail_abort: bool,
                     buffer: str) -> None:
        if levels.size * count > SWEEP_POINTS_MAX:
            raise ScpiError(-222, f"sweep of {levels.size * count} points is too long")
        self.s.model = _Model("Sweep", buffer, np.tile(levels, count), f, delay, fail_abort)

    def _load_template(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        """``:TRIG:LOAD "Empty"|"SimpleLoop",count[,delay[,"buffer"]]|"DurationLoop",s[,delay[,"buffer"]]``."""
        args = expect(args, 1, 4)
        name = next((t for t in TRIGGER_TEMPLATES if t.lower() == args[0].text.lower()), None)
        if name is None:
            raise ScpiError(-224, f"trigger model template {args[0].text[:30]} not emulated")
        if name == "Empty":
            expect(args, 1)
            self.s.model = None
            return
        expect(args, 2, 4)
        delay = args[2].number("delay", 0, DELAY_MAX) if len(args) > 2 else 0.0
        buffer = self._buffer_name(args[3]) if len(args) > 3 else "defbuffer1"
        if name == "SimpleLoop":
            self.s.model = _Model(name, buffer, delay=delay, count=args[1].integer("count", 1, SWEEP_POINTS_MAX))
        else:
            self.s.model = _Model(name, buffer, delay=delay, duration=args[1].number("duration", 1e-6, 1e5))

    def _initiate(self) -> None:
        """Run the trigger model; it completes before the next command is handled."""
        model = self.s.model
        if model is None:
            self._last_block = 0
            return
        level = self.s.source[self.s.source_function].level
        if model.template == "Sweep":  # buffer clear, output on, (delay, measure) per point
            self.buffers[model.buffer].clear()
            self.s.output = True
            self._apply_output()
            delay = AUTO_DELAY if model.delay == -1 else model.delay
            try:
                self._measure(model.levels, model.buffer, delay=delay, fail_abort=model.fail_abort)
            finally:
                self._apply_output()  # back at the programmed level, output on
            self._last_block = 9
            return
        if model.template == "SimpleLoop":
            points = model.count
        else:
            points = max(1, math.ceil(model.duration / self._point_time(model.delay)))
            points = min(points, SWEEP_POINTS_MAX)
        self._measure(np.full(points, level), model.buffer, delay=model.delay)
        self._last_block = 3

    # -- measurement ------------------------------------------------------------------------------
    def _source_delay(self) -> float:
        src = self.s.source[self.s.source_function]
        return AUTO_DELAY if src.delay_auto else src.delay

    def _point_time(self, delay: float) -> float:
        sen = self.s.sense[self.s.sense_function]
        samples = sen.average_count if sen.average and sen.average_type == "REPeat" else 1
        return delay + samples * sen.nplc / LINE_FREQUENCY + OVERHEAD

    def _cell(self) -> tuple[float, Any] | None:
        """Conductance (S) of the routed cell and the device parameters, None when open."""
        routed = self.world.routed
        if routed is None:
            return None
        macro, row, col = routed
        return float(self.world.conductance(macro)[row, col]), self.world.params

    def _volts_for(self, amps: float, v_max: float) -> float:
        """Voltage that drives ``amps`` through the routed cell now, within +-``v_max``."""
        cell = self._cell()
        if amps == 0:
            return 0.0
        if cell is None:
            return math.copysign(v_max, amps)
        g, params = cell
        lo, hi = 0.0, v_max
        if g * float(nonlinearity(v_max, params)) * v_max <= abs(amps):
            return math.copysign(v_max, amps)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if g * float(nonlinearity(mid, params)) * mid < abs(amps):
                lo = mid
            else:
                hi = mid
        return math.copysign(0.5 * (lo + hi), amps)

    def _drive(self, levels: np.ndarray, fail_abort: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Source ``levels`` of the active function on the world: (volts, amps, in limit).

        The world clamps the current of a voltage source in limit but does not lower its
        voltage, so the voltage read back is the programmed level.
        """
        f = self.s.source_function
        limit = self.s.source[f].limit
        volts, amps, limited = [], [], []
        if f == "VOLTage" and not fail_abort:
            amps = np.asarray(self.world.smu_sweep(levels, limit), dtype=float)
            return levels.copy(), amps, np.abs(amps) >= limit * 0.999
        for level in levels:
            if f == "VOLTage":
                v = float(level)
                i = float(self.world.smu_sweep([v], limit)[0])
                lim = abs(i) >= limit * 0.999
            else:
                v = self._volts_for(float(level), limit)
                i = float(self.world.smu_sweep([v], max(abs(float(level)), 1e-12))[0]) if v else 0.0
                lim = level != 0 and abs(v) >= limit * 0.999
            volts.append(v), amps.append(i), limited.append(lim)
            if fail_abort and lim:
                break
        return np.asarray(volts, float), np.asarray(amps, float), np.asarray(limited, bool)

    def _measure(self, levels: np.ndarray, buffer: str | ReadingBuffer, delay: float | None = None,
                 fail_abort: bool = False) -> tuple[int, int]:
        """Source ``levels`` in turn, read the active function, store in ``buffer``.

        Returns (index of the first stored reading, readings stored). With the output off
        the readings are NaN and -221 is queued.
        """
        f, g = self.s.source_function, self.s.sense_function
        src, sen = self.s.source[f], self.s.sense[g]
        if delay is None:
            delay = self._source_delay()
        samples = sen.average_count if sen.average and sen.average_type == "REPeat" else 1
        step = self._point_time(delay)
        levels = np.asarray(levels, dtype=float)
        with self.world.lock:
            t_start = self.world.clock.now()
            if self.s.output:
                volts, amps, limited = self._drive(np.repeat(levels, samples), fail_abort)
                step = max(step, samples * getattr(self.world.params, "smu_point_time", 0.0))
            else:
                volts = amps = np.full(levels.size * samples, NAN)
                limited = np.zeros(levels.size * samples, bool)
            n = -(-volts.size // samples)
            pad = n * samples - volts.size  # fail abort mid-average: the last group is short
            if pad:
                volts, amps = (np.concatenate([x, np.full(pad, x[-1])]) for x in (volts, amps))
            volts, amps = (x.reshape(n, samples).mean(axis=1) for x in (volts, amps))
            limited = np.concatenate([limited, np.zeros(pad, bool)]).reshape(n, samples).any(axis=1)
            elapsed = self.world.clock.now() - t_start
            self.world.clock.sleep(max(0.0, step * n - elapsed))
        times = t_start + step * np.arange(1, n + 1)
        if self.s.output:
            readings, overflow = self._readings(g, volts, amps)
        else:
            readings, overflow = np.full(n, NAN), np.ones(n, bool)
        status = np.where(limited | overflow, STAT_QUESTIONABLE, 0) | (STAT_TERMINAL if self.s.terminals == "FRONt"
                                                                       else 0)
        status[:1] |= STAT_START_GROUP
        source = (volts if f == "VOLTage" else amps) if src.readback else levels[:n]
        source_status = np.where(limited, SOURCE_STAT_LIMIT, 0) | (SOURCE_STAT_READBACK if src.readback else 0)
        if self.s.output and n:
            self.tripped[f] = bool(limited[-1])
        buf = buffer if isinstance(buffer, ReadingBuffer) else self.buffers[buffer]
        kept = buf.append(readings, source, times, status, source_status, sen.unit, SOURCE_UNIT[f])
        if not self.s.output:
            raise ScpiError(-221, "output is off; no reading taken")
        return len(buf) - kept, kept

    def _readings(self, g: str, volts: np.ndarray, amps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Readings of measure function ``g`` in its unit, and which of them overflow."""
        sen = self.s.sense[g]
        with np.errstate(divide="ignore", invalid="ignore"):
            values = {"AMP": amps, "VOLT": volts, "OHM": volts / amps, "WATT": volts * amps}[sen.unit]
        values = np.where(np.isfinite(values), values, NAN)
        nan = np.abs(values) >= NAN
        if sen.average and sen.average_type == "MOVing":
            smoothed = []
            for v in values:
                self._filter = (self._filter + [float(v)])[-sen.average_count:]
                smoothed.append(float(np.mean(self._filter)))
            values = np.asarray(smoothed)
        if sen.rel:
            values = np.where(nan, NAN, values - sen.rel_level)
        ranges = SENSE_RANGES[g]
        over = np.zeros(values.shape, bool)
        if sen.unit == UNITS[g][0]:  # ranges are in the function's own unit
            top = sen.auto_high if sen.range_auto else sen.range  # autorange: each reading its range
            over = np.abs(values) > top * OVER_RANGE * (1 + 1e-9)
            if sen.range_auto and values.size and not nan[-1]:
                sen.range = _best_range(values[-1], ranges, sen.auto_low, sen.auto_high, OVER_RANGE)
        overflow = nan | over
        return np.where(overflow, NAN, values), overflow

    def _read(self, args: list[Arg], suffixes: tuple[int, ...], function: str | None = None) -> str:
        """``:READ?``/``:MEAS[:<f>]? ["buffer"[,elements...]]``: sense count readings, the last answered."""
        buffer = self._buffer_name(args[0]) if args else "defbuffer1"
        elements = self._elements(args[1:])
        if function is not None:
            self.s.sense_function = function
        level = self.s.source[self.s.source_function].level
        try:
            first, count = self._measure(np.full(self.s.sense_count, level), buffer)
        except ScpiError as err:  # output off: NaN readings stored, the error queued, still answered
            self.push_error(err)
            count = min(self.s.sense_count, len(self.buffers[buffer]))
            first = len(self.buffers[buffer]) - count
        if count == 0:
            raise ScpiError(-230, f"{buffer} is full (fill mode ONCE)")
        return self._format(buffer, first + count - 1, first + count, elements)

    def _fetch(self, args: list[Arg], suffixes: tuple[int, ...]) -> str:
        """``:FETC? ["buffer"[,elements...]]``: the latest reading of the buffer, no new one."""
        buffer = self._buffer_name(args[0]) if args else "defbuffer1"
        elements = self._elements(args[1:])
        size = len(self.buffers[buffer])
        if size == 0:
            raise ScpiError(-230, f"{buffer} is empty")
        return self._format(buffer, size - 1, size, elements)

    def _trace_trigger(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        """``:TRAC:TRIG ["buffer"]``: sense count readings into the buffer, no reply."""
        buffer = self._buffer(args)[0]
        self._measure(np.full(self.s.sense_count, self.s.source[self.s.source_function].level), buffer)

    # -- buffers -------------------------------------------------------------------------------------
    def _buffer_name(self, arg: Arg) -> str:
        name = arg.text
        if name.lower() in DEFAULT_BUFFERS:
            return name.lower()
        if name not in self.buffers:
            raise ScpiError(-224, f"no buffer named {name[:30]}")
        return name

    def _buffer(self, args: list[Arg]) -> tuple[str, ReadingBuffer]:
        expect(args, 0, 1)
        name = self._buffer_name(args[0]) if args else "defbuffer1"
        return name, self.buffers[name]

    def _make_buffer(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        """``:TRAC:MAKE "name", size[, style]``."""
        args = expect(args, 2, 3)
        name = check_name(args[0].text)
        if name in self.buffers:
            raise ScpiError(-221, f"buffer {name} exists")
        size = args[1].integer("buffer size", 1, CAPACITY_MAX)
        style = args[2].choice("buffer style", list(STYLES)) if len(args) > 2 else "STANdard"
        self.buffers[name] = ReadingBuffer(capacity=size, style=style)

    def _delete_buffer(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        name = self._buffer_name(expect(args, 1)[0])
        if name in DEFAULT_BUFFERS:
            raise ScpiError(-221, f"{name} cannot be deleted")
        del self.buffers[name]
        if self.s.model is not None and self.s.model.buffer == name:
            self.s.model = None

    def _set_capacity(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        """``:TRAC:POIN size[, "buffer"]``: a new capacity clears the buffer."""
        args = expect(args, 1, 2)
        size = args[0].integer("buffer size", 1, CAPACITY_MAX)
        buf = self._buffer(args[1:])[1]
        buf.clear()
        buf.capacity = size

    def _set_fill_mode(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        args = expect(args, 1, 2)
        mode = args[0].choice("fill mode", list(FILL_MODES))
        self._buffer(args[1:])[1].fill = mode

    @staticmethod
    def _elements(args: list[Arg]) -> list[str]:
        return [arg.choice("buffer element", list(ELEMENTS)) for arg in args] or ["READing"]

    def _trace_data(self, args: list[Arg], suffixes: tuple[int, ...]) -> str:
        """``:TRAC:DATA? start,end[,"buffer"[,elements...]]`` -> the elements, reading by reading."""
        args = expect(args, 2, 3 + len(ELEMENTS))
        buffer = self._buffer_name(args[2]) if len(args) > 2 else "defbuffer1"
        size = len(self.buffers[buffer])
        if size == 0:
            raise ScpiError(-222, "buffer is empty")
        start = args[0].integer("start index", 1, size)
        end = args[1].integer("end index", start, size)
        return self._format(buffer, start - 1, end, self._elements(args[3:]))

    def _format(self, buffer: str, first: int, end: int, elements: list[str]) -> str:
        return ",".join(self.buffers[buffer].rows(first, end, elements, self._epoch, self.s.precision))

    # -- world coupling ----------------------------------------------------------------------------------
    def _apply_output(self) -> None:
        """Drive the world's SMU output: on at the voltage of the active source, or off."""
        f = self.s.source_function
        src = self.s.source[f]
        with self.world.lock:
            self.world.outputs.smu_on = self.s.output
            if not self.s.output:
                self.world.outputs.smu_level = 0.0
            else:
                self.world.outputs.smu_level = src.level if f == "VOLTage" else self._volts_for(src.level, src.limit)
