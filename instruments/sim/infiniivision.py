"""Keysight InfiniiVision 3000X oscilloscope emulation over the simulated world.

The board's trigger output fires ``world``'s trigger listeners with the node
voltages of a closed-loop run (``traces`` (S, C, P) V, one segment per sample:
integrator outputs, embedding channel, the board's monitor output: a network node
MONITOR_SELECT chose, by default the trigger channel). Trace channel k is
wired to scope channel k + 1; the board's trigger output to EXTernal (it rises as
the run starts, t0). When the scope is armed (``:SINGle``, ``:RUN``) it finds the
trigger of each segment on its source (EXTernal: the run start; a channel: its
first edge through the level, the node resting at 0 V before), resamples every
displayed channel onto its own time grid (timebase scale and position, trigger at
t = 0, reference at the screen centre by default), adds input noise and keeps the
volts. In segmented mode one segment is kept per trigger until ``:ACQ:SEGM:COUN``
are full; ``:TER?`` latches at the first trigger of the acquisition (programmer's
guide, ``:TER``), ``:WAV:SEGM:COUN?`` counts the segments stored so far and
``:STOP`` ends a segmented acquisition with the segments it holds.
``:DIGitize`` acquires at once (auto trigger): the inputs are at rest, so it
captures noise around 0 V.

The last node voltages the board produced are "the signals present" at the inputs:
``:AUToscale`` sets each channel showing one to fit it (1-2-5 scales, offset at its
middle), turns the others off, triggers on the largest one and spreads the run over
the screen. ``:DISPlay:DATA?`` renders the screen (:mod:`instruments.sim.scope_screen`),
``:SYSTem:SETup?`` answers the settings as a block that the set form restores.

Transfers quantize like the real instrument: BYTE codes 1..255 around yreference
128, WORD codes 1..65535 around 32768, the screen's ±4 divisions spanning the code
range, anything beyond the screen clipped to the extreme codes (code 0 is a hole).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from instruments.sim.scope_capture import find_edges, nice_scale, resample
from instruments.sim.scope_screen import Trace, render
from instruments.sim.scpi import (
    Arg,
    Handler,
    ScpiError,
    ScpiInstrument,
    block,
    expect,
    fmt,
    no_args,
    short_form,
)

N_CHANNELS = 4
DIVS_X, DIVS_Y = 10, 8  # screen divisions
RECORD = 2000  # points per channel per acquisition (RAW/MAXimum)
NORMAL_POINTS = 1000  # points in :WAV:POIN:MODE NORMal
SEGMENTS_MAX = 1000
NOISE_FLOOR, NOISE_PER_DIV = 100e-6, 2e-3  # V and V/(V/div): rms input noise
SCALE_RANGE = (1e-3, 5.0)  # V/div
OFFSET_MAX = 40.0  # V
TIMEBASE_RANGE = (1e-9, 50.0)  # s/div
POSITION_MAX = 500.0  # s
FORMAT_CODE = {"BYTE": 0, "WORD": 1, "ASCii": 4}
TYPE_CODE = {"NORMal": 0, "PEAK": 1, "AVERage": 2, "HRESolution": 3}
HALF_CODES = {"BYTE": 127, "WORD": 32767}  # codes from the centre to a screen edge
Y_REFERENCE = {"BYTE": 128, "WORD": 32768}
REFERENCE_DIV = {"LEFT": 1.0, "CENTer": 5.0, "RIGHt": 9.0}  # divisions from the left edge
SIGNAL_MIN = 10e-3  # V; autoscale sees a channel whose trace reaches beyond this
AUTOSCALE_DIVS = 6.0  # divisions an autoscaled signal spans (at most)
SETUP_TAG = "RRAMBENCH-INFINIIVISION-SETUP-1"


@dataclass
class _Settings:
    """Everything ``*RST`` restores."""

    scale: list[float] = field(default_factory=lambda: [1.0] * N_CHANNELS)  # V/div
    offset: list[float] = field(default_factory=lambda: [0.0] * N_CHANNELS)  # V at centre
    display: list[bool] = field(default_factory=lambda: [True] + [False] * (N_CHANNELS - 1))
    coupling: list[str] = field(default_factory=lambda: ["DC"] * N_CHANNELS)
    probe: list[float] = field(default_factory=lambda: [1.0] * N_CHANNELS)
    bwlimit: list[bool] = field(default_factory=lambda: [False] * N_CHANNELS)
    invert: list[bool] = field(default_factory=lambda: [False] * N_CHANNELS)
    label: list[str] = field(default_factory=lambda: [str(i + 1) for i in range(N_CHANNELS)])
    impedance: list[str] = field(default_factory=lambda: ["ONEMeg"] * N_CHANNELS)
    units: list[str] = field(default_factory=lambda: ["VOLT"] * N_CHANNELS)
    tb_mode: str = "MAIN"
    tb_reference: str = "CENTer"
    tb_scale: float = 100e-6  # s/div
    tb_position: float = 0.0  # s, trigger to the reference
    trig_source: str = "CHANnel1"
    trig_level: float = 0.0  # V
    trig_slope: str = "POSitive"
    trig_sweep: str = "AUTO"
    acq_type: str = "NORMal"
    acq_count: int = 8
    segmented: bool = False
    seg_count: int = 2
    seg_index: int = 1
    wav_source: int = 1
    wav_format: str = "BYTE"
    msb_first: bool = True
    unsigned: bool = True
    points_mode: str = "NORMal"
    points: int = NORMAL_POINTS
    ink_saver: bool = True


@dataclass
class _Capture:
    """One acquisition: volts (segments, channels, RECORD) and the settings it used."""

    volts: np.ndarray
    channels: set[int]
    xinc: float
    xorigin: float
    scale: list[float]
    offset: list[float]


class InfiniiVisionEmulator(ScpiInstrument):
    """4-channel InfiniiVision 3000X front end listening to ``world``'s trigger."""

    idn = "KEYSIGHT TECHNOLOGIES,DSOX3024T,MY58260512,07.50.2021102830"

    def __init__(self, world: Any, *, seed: int = 0) -> None:
        self.world = world
        self.s = _Settings()
        self._rng = np.random.default_rng(seed)
        self.capture: _Capture | None = None
        self._pending: list[np.ndarray] = []  # segments gathered while armed
        self.armed = False  # :SINGle waiting for its trigger(s)
        self.running = False  # :RUN
        self._ter = False
        self._signals: tuple[np.ndarray, float] | None = None  # last node voltages (C, P) and dt
        super().__init__()
        world.add_trigger_listener(self.on_trigger)

    def reset(self) -> None:
        self.s = _Settings()
        self.capture, self._pending = None, []
        self.armed = self.running = self._ter = False

    def status_bits(self) -> int:
        """Bit 0 TRG (a trigger since :TER? was read), bit 2 while errors are queued."""
        return (1 if self._ter else 0) | (4 if self._errors else 0)

    # -- command table ---------------------------------------------------------------------
    def commands(self) -> Mapping[str, Handler]:
        chan = ":CHANnel<n>"
        return {
            chan + ":SCALe": self._channel_number("scale", *SCALE_RANGE),
            chan + ":SCALe?": self._channel_query("scale"),
            chan + ":RANGe": self._set_range,
            chan + ":RANGe?": lambda a, n: no_args(a, fmt(self.s.scale[self._ch(n)] * DIVS_Y)),
            chan + ":OFFSet": self._channel_number("offset", -OFFSET_MAX, OFFSET_MAX),
            chan + ":OFFSet?": self._channel_query("offset"),
            chan + ":PROBe": self._channel_number("probe", 0.001, 10_000),
            chan + ":PROBe?": self._channel_query("probe"),
            chan + ":DISPlay": self._set_display,
            chan + ":DISPlay?": lambda a, n: no_args(a, "1" if self.s.display[self._ch(n)] else "0"),
            chan + ":COUPling": self._set_coupling,
            chan + ":COUPling?": lambda a, n: no_args(a, self.s.coupling[self._ch(n)]),
            chan + ":BWLimit": self._channel_flag("bwlimit"),
            chan + ":BWLimit?": self._channel_flag_query("bwlimit"),
            chan + ":INVert": self._channel_flag("invert"),
            chan + ":INVert?": self._channel_flag_query("invert"),
            chan + ":LABel": self._set_label,
            chan + ":LABel?": lambda a, n: no_args(a, f'"{self.s.label[self._ch(n)]}"'),
            chan + ":IMPedance": self._channel_choice("impedance", ["ONEMeg", "FIFTy"]),
            chan + ":IMPedance?": lambda a, n: no_args(a, short_form(self.s.impedance[self._ch(n)])),
            chan + ":UNITs": self._channel_choice("units", ["VOLT", "AMPere"]),
            chan + ":UNITs?": lambda a, n: no_args(a, short_form(self.s.units[self._ch(n)])),
            chan + "?": lambda a, n: no_args(a, self._channel_summary(self._ch(n))),
            ":AUToscale": self._autoscale,
            ":SYSTem:PRESet": lambda a, n: no_args(a, self._preset()),
            ":SYSTem:SETup": self._set_setup,
            ":SYSTem:SETup?": lambda a, n: no_args(a, self._setup()),
            ":DISPlay:DATA?": self._display_data,
            ":HARDcopy:INKSaver": self._set_ink_saver,
            ":HARDcopy:INKSaver?": lambda a, n: no_args(a, "1" if self.s.ink_saver else "0"),
            ":TIMebase[:MAIN]:SCALe": self._number("tb_scale", *TIMEBASE_RANGE),
            ":TIMebase[:MAIN]:SCALe?": lambda a, n: no_args(a, fmt(self.s.tb_scale)),
            ":TIMebase[:MAIN]:RANGe": self._set_tb_range,
            ":TIMebase[:MAIN]:RANGe?": lambda a, n: no_args(a, fmt(self.s.tb_scale * DIVS_X)),
            ":TIMebase[:MAIN]:POSition": self._number("tb_position", -POSITION_MAX, POSITION_MAX),
            ":TIMebase[:MAIN]:POSition?": lambda a, n: no_args(a, fmt(self.s.tb_position)),
            ":TIMebase:MODE": self._choice("tb_mode", ["MAIN", "WINDow", "XY", "ROLL"]),
            ":TIMebase:MODE?": self._choice_query("tb_mode"),
            ":TIMebase:REFerence": self._choice("tb_reference", list(REFERENCE_DIV)),
            ":TIMebase:REFerence?": self._choice_query("tb_reference"),
            ":TIMebase?": lambda a, n: no_args(a, self._timebase_summary()),
            ":TRIGger:MODE": self._accept("trigger mode", ["EDGE"]),
            ":TRIGger:MODE?": lambda a, n: no_args(a, "EDGE"),
            ":TRIGger:SWEep": self._choice("trig_sweep", ["AUTO", "NORMal"]),
            ":TRIGger:SWEep?": self._choice_query("trig_sweep"),
            ":TRIGger[:EDGE]:SOURce": self._set_trigger_source,
            ":TRIGger[:EDGE]:SOURce?": lambda a, n: no_args(a, short_form(self.s.trig_source)),
            ":TRIGger[:EDGE]:LEVel": self._number("trig_level", -OFFSET_MAX, OFFSET_MAX),
            ":TRIGger[:EDGE]:LEVel?": lambda a, n: no_args(a, fmt(self.s.trig_level)),
            ":TRIGger[:EDGE]:SLOPe": self._choice("trig_slope", ["POSitive", "NEGative"]),
            ":TRIGger[:EDGE]:SLOPe?": self._choice_query("trig_slope"),
            ":ACQuire:TYPE": self._choice("acq_type", list(TYPE_CODE)),
            ":ACQuire:TYPE?": self._choice_query("acq_type"),
            ":ACQuire:COUNt": self._integer("acq_count", 1, 65536),
            ":ACQuire:COUNt?": lambda a, n: no_args(a, str(self.s.acq_count)),
            ":ACQuire:MODE": self._set_acquire_mode,
            ":ACQuire:MODE?": lambda a, n: no_args(a, "SEGM" if self.s.segmented else "RTIM"),
            ":ACQuire:SEGMented:COUNt": self._integer("seg_count", 2, SEGMENTS_MAX),
            ":ACQuire:SEGMented:COUNt?": lambda a, n: no_args(a, str(self.s.seg_count)),
            ":ACQuire:SEGMented:INDex": self._set_segment_index,
            ":ACQuire:SEGMented:INDex?": lambda a, n: no_args(a, str(self.s.seg_index)),
            ":ACQuire:POINts?": lambda a, n: no_args(a, str(RECORD)),
            ":ACQuire:SRATe?": lambda a, n: no_args(a, fmt(RECORD / (DIVS_X * self.s.tb_scale))),
            ":RUN": lambda a, n: no_args(a, self._arm(running=True)),
            ":STOP": lambda a, n: no_args(a, self._stop()),
            ":SINGle": lambda a, n: no_args(a, self._arm(running=False)),
            ":DIGitize": self._digitize,
            ":TER?": lambda a, n: no_args(a, self._read_ter()),
            ":OPERegister[:EVENt]?": lambda a, n: no_args(a, self._operation_status()),
            ":OPERegister:CONDition?": lambda a, n: no_args(a, self._operation_status()),
            ":WAVeform:SOURce": self._set_waveform_source,
            ":WAVeform:SOURce?": lambda a, n: no_args(a, f"CHAN{self.s.wav_source}"),
            ":WAVeform:FORMat": self._choice("wav_format", list(FORMAT_CODE)),
            ":WAVeform:FORMat?": self._choice_query("wav_format"),
            ":WAVeform:BYTeorder": self._set_byte_order,
            ":WAVeform:BYTeorder?": lambda a, n: no_args(a, "MSBF" if self.s.msb_first else "LSBF"),
            ":WAVeform:UNSigned": self._set_unsigned,
            ":WAVeform:UNSigned?": lambda a, n: no_args(a, "1" if self.s.unsigned else "0"),
            ":WAVeform:POINts:MODE": self._choice("points_mode", ["NORMal", "MAXimum", "RAW"]),
            ":WAVeform:POINts:MODE?": self._choice_query("points_mode"),
            ":WAVeform:POINts": self._integer("points", 1, 8_000_000),
            ":WAVeform:POINts?": lambda a, n: no_args(a, str(self._transfer_grid()[1])),
            ":WAVeform:SEGMented:COUNt?": lambda a, n: no_args(a, str(self._segments_acquired())),
            ":WAVeform:PREamble?": lambda a, n: no_args(a, self._preamble()),
            ":WAVeform:DATA?": lambda a, n: no_args(a, self._data()),
            ":WAVeform:TYPE?": lambda a, n: no_args(a, {"NORMal": "NORM", "PEAK": "PEAK", "AVERage": "AVER",
                                                         "HRESolution": "HRES"}[self.s.acq_type]),
            ":WAVeform:COUNt?": lambda a, n: no_args(a, self._preamble_field(3)),
            ":WAVeform:XINCrement?": lambda a, n: no_args(a, self._preamble_field(4)),
            ":WAVeform:XORigin?": lambda a, n: no_args(a, self._preamble_field(5)),
            ":WAVeform:XREFerence?": lambda a, n: no_args(a, self._preamble_field(6)),
            ":WAVeform:YINCrement?": lambda a, n: no_args(a, self._preamble_field(7)),
            ":WAVeform:YORigin?": lambda a, n: no_args(a, self._preamble_field(8)),
            ":WAVeform:YREFerence?": lambda a, n: no_args(a, self._preamble_field(9)),
        }

    # -- declarative setters ------------------------------------------------------------------
    def _number(self, attr: str, lo: float, hi: float) -> Handler:
        return lambda a, n: setattr(self.s, attr, expect(a, 1)[0].number(attr, lo, hi))

    def _integer(self, attr: str, lo: int, hi: int) -> Handler:
        return lambda a, n: setattr(self.s, attr, expect(a, 1)[0].integer(attr, lo, hi))

    def _choice(self, attr: str, options: list[str]) -> Handler:
        return lambda a, n: setattr(self.s, attr, expect(a, 1)[0].choice(attr, options))

    def _choice_query(self, attr: str) -> Handler:
        return lambda a, n: no_args(a, short_form(getattr(self.s, attr)))

    def _set_unsigned(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.unsigned = expect(args, 1)[0].boolean("unsigned")

    @staticmethod
    def _ch(suffixes: tuple[int, ...]) -> int:
        if not 1 <= suffixes[0] <= N_CHANNELS:
            raise ScpiError(-114, f"channel {suffixes[0]}")
        return suffixes[0] - 1

    def _channel_number(self, attr: str, lo: float, hi: float) -> Handler:
        def setter(args: list[Arg], suffixes: tuple[int, ...]) -> None:
            getattr(self.s, attr)[self._ch(suffixes)] = expect(args, 1)[0].number(attr, lo, hi)

        return setter

    def _channel_query(self, attr: str) -> Handler:
        return lambda a, n: no_args(a, fmt(getattr(self.s, attr)[self._ch(n)]))

    def _channel_flag(self, attr: str) -> Handler:
        def setter(args: list[Arg], suffixes: tuple[int, ...]) -> None:
            getattr(self.s, attr)[self._ch(suffixes)] = expect(args, 1)[0].boolean(attr)

        return setter

    def _channel_flag_query(self, attr: str) -> Handler:
        return lambda a, n: no_args(a, "1" if getattr(self.s, attr)[self._ch(n)] else "0")

    def _channel_choice(self, attr: str, options: list[str]) -> Handler:
        def setter(args: list[Arg], suffixes: tuple[int, ...]) -> None:
            getattr(self.s, attr)[self._ch(suffixes)] = expect(args, 1)[0].choice(attr, options)

        return setter

    def _set_label(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        """``:CHAN<n>:LAB "text"``: up to 10 characters, kept in upper case."""
        text = expect(args, 1)[0].string()
        self.s.label[self._ch(suffixes)] = text[:10].upper()

    def _channel_summary(self, ch: int) -> str:
        """``:CHANnel<n>?``: the channel's settings in one reply."""
        s = self.s
        return (f":CHAN{ch + 1}:RANG {s.scale[ch] * DIVS_Y:+.2E};OFFS {s.offset[ch]:+.5E};COUP {s.coupling[ch]};"
                f"IMP {short_form(s.impedance[ch])};DISP {int(s.display[ch])};BWL {int(s.bwlimit[ch])};"
                f"INV {int(s.invert[ch])};LAB \"{s.label[ch]}\";UNIT {short_form(s.units[ch])};"
                f"PROB {s.probe[ch]:+.5E};PROB:SKEW +0.00E+00;STYP SING")

    def _set_ink_saver(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.ink_saver = expect(args, 1)[0].boolean("ink saver")

    def _set_range(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        lo, hi = SCALE_RANGE
        full = expect(args, 1)[0].number("range", lo * DIVS_Y, hi * DIVS_Y)
        self.s.scale[self._ch(suffixes)] = full / DIVS_Y

    def _set_tb_range(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        lo, hi = TIMEBASE_RANGE
        self.s.tb_scale = expect(args, 1)[0].number("range", lo * DIVS_X, hi * DIVS_X) / DIVS_X

    def _set_display(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.display[self._ch(suffixes)] = expect(args, 1)[0].boolean("display")

    def _set_coupling(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.coupling[self._ch(suffixes)] = expect(args, 1)[0].choice("coupling", ["DC", "AC"])

    def _set_trigger_source(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        arg = expect(args, 1)[0]
        if arg.text.upper() in ("EXT", "EXTERNAL"):
            self.s.trig_source = "EXTernal"
        else:
            self.s.trig_source = f"CHANnel{self._source_channel(arg)}"

    def _set_waveform_source(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.wav_source = self._source_channel(expect(args, 1)[0])

    @staticmethod
    def _source_channel(arg: Arg) -> int:
        word = arg.text.upper()
        for prefix in ("CHANNEL", "CHAN"):
            digits = word[len(prefix):]
            if word.startswith(prefix) and digits.isdigit():
                if 1 <= int(digits) <= N_CHANNELS:
                    return int(digits)
                raise ScpiError(-222, f"no channel {digits}")
        raise ScpiError(-224, f"source expects CHANnel<n>, got {arg.text[:20]}")

    def _set_byte_order(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        order = expect(args, 1)[0].choice("byte order", ["MSBFirst", "LSBFirst"])
        self.s.msb_first = order == "MSBFirst"

    def _set_acquire_mode(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        mode = expect(args, 1)[0].choice("acquire mode", ["RTIMe", "SEGMented"])
        self.s.segmented = mode == "SEGMented"

    def _set_segment_index(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        self.s.seg_index = expect(args, 1)[0].integer("segment index", 1, SEGMENTS_MAX)

    def _timebase_summary(self) -> str:
        return (f":TIM:MODE {short_form(self.s.tb_mode)};REF {short_form(self.s.tb_reference)};"
                f"MAIN:RANG {self.s.tb_scale * DIVS_X:+.2E};POS {self.s.tb_position:+.1E}")

    def _left_edge(self) -> float:
        """Time of the screen's left edge relative to the trigger, s."""
        return self.s.tb_position - REFERENCE_DIV[self.s.tb_reference] * self.s.tb_scale

    # -- acquisition state --------------------------------------------------------------------------
    def _arm(self, *, running: bool) -> None:
        self._pending = []
        self.running, self.armed = running, not running
        self._ter = False

    def _stop(self) -> None:
        """Stop acquiring; a segmented acquisition keeps the segments stored so far."""
        if self.armed and self.s.segmented and self._pending:
            self._finish(np.stack(self._pending))
        self.running = self.armed = False

    def _read_ter(self) -> str:
        value, self._ter = self._ter, False
        return "+1" if value else "+0"

    def _operation_status(self) -> str:
        return f"+{8 if (self.running or self.armed) else 0}"

    def _segments_acquired(self) -> int:
        """Segments of the last acquisition, or stored so far by one in progress."""
        if self.armed and self.s.segmented and self._pending:
            return len(self._pending)
        return 0 if self.capture is None else self.capture.volts.shape[0]

    def on_trigger(self, traces: np.ndarray, dt: float, t0: float) -> None:
        """World callback: the board fired the trigger output over ``traces`` (S, C, P) V."""
        with self.lock:
            traces = np.asarray(traces, dtype=float)
            if traces.ndim == 3 and traces.shape[0] and traces.shape[2] >= 2:
                self._signals = (traces[0].copy(), float(dt))  # what autoscale sees
            if not (self.armed or self.running):
                return
            segments = self._acquire(traces, float(dt))
            if segments.shape[0] == 0:
                return  # no edge on the trigger source: still waiting
            self._ter = True  # latched at the acquisition's first trigger
            if not self.s.segmented:
                self._finish(segments[-1:] if self.running else segments[:1])
                return
            self._pending.extend(segments)
            if len(self._pending) >= self.s.seg_count:
                self._finish(np.stack(self._pending[: self.s.seg_count]))

    def _finish(self, volts: np.ndarray) -> None:
        channels = {i + 1 for i, on in enumerate(self.s.display) if on}
        self._store(volts, channels)
        self._pending = []
        self.armed = False if not self.running else self.armed

    def _store(self, volts: np.ndarray, channels: set[int]) -> None:
        xinc = DIVS_X * self.s.tb_scale / RECORD
        self.capture = _Capture(volts, channels, xinc, self._left_edge(), list(self.s.scale), list(self.s.offset))

    def _acquire(self, traces: np.ndarray, dt: float) -> np.ndarray:
        """Trigger and resample every segment with a trigger: (S', N_CHANNELS, RECORD) V."""
        n_seg, n_ch, n_pts = traces.shape
        if n_pts < 2:
            return np.empty((0, N_CHANNELS, RECORD))
        if self.s.trig_source == "EXTernal":  # the board's trigger output: the run starts
            rows, t_trig = np.arange(n_seg), np.zeros(n_seg)
        else:
            src = int(self.s.trig_source[7:]) - 1
            if src >= n_ch:
                return np.empty((0, N_CHANNELS, RECORD))
            rows, t_trig = find_edges(traces[:, src, :], dt, self.s.trig_level,
                                      rising=self.s.trig_slope == "POSitive")
        xinc = DIVS_X * self.s.tb_scale / RECORD
        tau = self._left_edge() + xinc * np.arange(RECORD)
        volts = resample(traces[rows], dt, t_trig, tau, N_CHANNELS)
        volts = np.where(np.asarray(self.s.invert)[None, :, None], -volts, volts)
        return volts + self._noise(volts.shape)

    def _noise(self, shape: tuple[int, ...]) -> np.ndarray:
        sigma = NOISE_FLOOR + NOISE_PER_DIV * np.asarray(self.s.scale)  # V per channel
        return self._rng.normal(0.0, 1.0, shape) * sigma[None, :, None]

    def _digitize(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        """``:DIGitize [CHANnel<n>,...]``: acquire now (auto trigger), inputs at rest."""
        channels = {self._source_channel(a) for a in args} or {
            i + 1 for i, on in enumerate(self.s.display) if on
        }
        n_seg = self.s.seg_count if self.s.segmented else 1
        self._store(self._noise((n_seg, N_CHANNELS, RECORD)), channels)
        self._ter = True  # the auto trigger
        self.running = self.armed = False

    # -- autoscale, presets, setups, screen ------------------------------------------------------------
    def _autoscale(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        """``:AUToscale [CHANnel<n>,...]``: fit the channels that carry a signal, turn the others off.

        The signals are the last node voltages the board produced. No signal: nothing
        changes. Acquisition goes to normal real-time mode and runs.
        """
        chosen = sorted({self._source_channel(a) for a in args}) or list(range(1, N_CHANNELS + 1))
        if self._signals is None:
            return
        traces, dt = self._signals
        found = {}
        for ch in chosen:
            if ch - 1 < traces.shape[0] and np.max(np.abs(traces[ch - 1])) > SIGNAL_MIN:
                found[ch] = traces[ch - 1]
        if not found:
            return
        for ch in range(1, N_CHANNELS + 1):
            self.s.display[ch - 1] = ch in found
        for ch, v in found.items():
            lo, hi = float(v.min()), float(v.max())
            span = max(hi - lo, 0.25 * max(abs(lo), abs(hi)))
            self.s.scale[ch - 1] = nice_scale(span / AUTOSCALE_DIVS, *SCALE_RANGE)
            self.s.offset[ch - 1] = 0.5 * (lo + hi)
            self.s.coupling[ch - 1] = "DC"
        source = max(found, key=lambda c: float(np.ptp(found[c])))
        level = 0.5 * (float(found[source].min()) + float(found[source].max()))
        rows, t_edge = find_edges(found[source][None, :], dt, level, rising=True)
        t_trig = float(t_edge[0]) if rows.size else 0.0
        duration = dt * (traces.shape[1] - 1)
        self.s.trig_source, self.s.trig_level, self.s.trig_slope = f"CHANnel{source}", level, "POSitive"
        self.s.trig_sweep = "AUTO"
        self.s.tb_mode, self.s.tb_reference = "MAIN", "CENTer"
        self.s.tb_scale = nice_scale(duration / DIVS_X, *TIMEBASE_RANGE)
        self.s.tb_position = duration / 2 - t_trig
        self.s.acq_type, self.s.segmented = "NORMal", False
        self._arm(running=True)

    def _preset(self) -> None:
        """``:SYSTem:PRESet`` (Default Setup): the settings, not the acquired data."""
        self.s = _Settings()
        self._pending, self.armed, self.running = [], False, True

    def _setup(self) -> bytes:
        """``:SYSTem:SETup?``: the settings as a definite-length block (printable ASCII)."""
        text = json.dumps({"tag": SETUP_TAG, **asdict(self.s)}, separators=(",", ":"))
        return block(text.encode("ascii"))

    def _set_setup(self, args: list[Arg], suffixes: tuple[int, ...]) -> None:
        """``:SYSTem:SETup <block>``: restore settings read with the query (-224 if not one)."""
        arg = expect(args, 1)[0]
        defaults = _Settings()
        try:
            data = json.loads(arg.text) if arg.block else None
        except ValueError:
            data = None
        names = {f.name for f in fields(_Settings)}
        if not (isinstance(data, dict) and data.pop("tag", None) == SETUP_TAG and set(data) == names):
            raise ScpiError(-224, "not a setup of this instrument")
        for name in names:
            want, got = getattr(defaults, name), data[name]
            if isinstance(want, list):
                ok = isinstance(got, list) and len(got) == len(want) and all(
                    isinstance(g, type(w)) or (isinstance(w, float) and isinstance(g, int)) for g, w in zip(
                        got, want, strict=True))
            else:
                ok = isinstance(got, type(want)) or (isinstance(want, float) and isinstance(got, int))
            if not ok:
                raise ScpiError(-224, f"setup field {name} malformed")
        self.s = _Settings(**data)

    def _display_data(self, args: list[Arg], suffixes: tuple[int, ...]) -> bytes:
        """``:DISPlay:DATA? [BMP|BMP8bit|PNG][,COLor|GRAYscale]``: the screen as a block."""
        args = expect(args, 0, 2)
        image = args[0].choice("image format", ["BMP", "BMP8bit", "PNG"]) if args else "BMP"
        palette = args[1].choice("palette", ["COLor", "GRAYscale"]) if len(args) > 1 else "COLor"
        traces = []
        cap = self.capture
        if cap is not None:
            segment = min(self.s.seg_index if self.s.segmented else 1, cap.volts.shape[0])
            t = cap.xorigin + cap.xinc * np.arange(RECORD)
            for ch in sorted(cap.channels):
                if self.s.display[ch - 1]:
                    traces.append(Trace(ch, t, cap.volts[segment - 1, ch - 1], self.s.scale[ch - 1],
                                        self.s.offset[ch - 1], self.s.label[ch - 1]))
        source = None if self.s.trig_source == "EXTernal" else int(self.s.trig_source[7:])
        return block(render(traces, tb_scale=self.s.tb_scale, tb_position=self.s.tb_position,
                            reference_div=REFERENCE_DIV[self.s.tb_reference],
                            trigger=(source, self.s.trig_level), fmt=image, palette=palette,
                            ink_saver=self.s.ink_saver))

    # -- transfer -------------------------------------------------------------------------------------
    def _transfer_grid(self) -> tuple[int, int]:
        """(decimation step, points) of the next transfer.

        Like the instrument, a transfer never holds more points than requested: the
        record is decimated by the smallest step that fits, and ``points`` counts
        exactly the samples ``record[::step]`` sends (the preamble and the data agree).
        """
        available = NORMAL_POINTS if self.s.points_mode == "NORMal" else RECORD
        wanted = min(self.s.points, available)
        step = RECORD // available * -(-available // wanted)
        return step, -(-RECORD // step)

    def _selected(self) -> tuple[_Capture, np.ndarray, int]:
        cap, ch = self.capture, self.s.wav_source
        if cap is None or ch not in cap.channels:
            raise ScpiError(-222, f"no data for CHANnel{ch}")
        segment = self.s.seg_index if self.s.segmented else 1
        if segment > cap.volts.shape[0]:
            raise ScpiError(-222, f"segment {segment} not acquired")
        step, _ = self._transfer_grid()
        return cap, cap.volts[segment - 1, ch - 1, ::step], step

    def _preamble(self) -> str:
        fmt_name, unsigned = self.s.wav_format, self.s.unsigned
        step, points = self._transfer_grid()
        cap = self.capture
        xinc = (DIVS_X * self.s.tb_scale / RECORD if cap is None else cap.xinc) * step
        xorigin = self._left_edge() if cap is None else cap.xorigin
        scale = (self.s.scale if cap is None else cap.scale)[self.s.wav_source - 1]
        offset = (self.s.offset if cap is None else cap.offset)[self.s.wav_source - 1]
        kind = "WORD" if fmt_name == "WORD" else "BYTE"
        yinc = DIVS_Y / 2 * scale / HALF_CODES[kind]
        yref = Y_REFERENCE[kind] if unsigned else 0
        count = self.s.acq_count if self.s.acq_type == "AVERage" else 1
        return (f"+{FORMAT_CODE[fmt_name]},+{TYPE_CODE[self.s.acq_type]},+{points},+{count},"
                f"{xinc:+.9E},{xorigin:+.9E},+0,{yinc:+.9E},{offset:+.9E},+{yref}")

    def _preamble_field(self, index: int) -> str:
        return self._preamble().split(",")[index]

    def _data(self) -> bytes:
        try:
            cap, volts, _ = self._selected()
        except ScpiError as err:
            self.push_error(err)
            return b"#800000000"
        ch = self.s.wav_source - 1
        if self.s.wav_format == "ASCii":
            payload = ",".join(f"{v:+.6E}" for v in volts).encode("ascii")
        else:
            kind = self.s.wav_format
            yinc = DIVS_Y / 2 * cap.scale[ch] / HALF_CODES[kind]
            codes = np.rint((volts - cap.offset[ch]) / yinc)
            codes = np.clip(codes, -HALF_CODES[kind], HALF_CODES[kind])
            codes += Y_REFERENCE[kind] if self.s.unsigned else 0
            if kind == "BYTE":
                payload = codes.astype(np.uint8 if self.s.unsigned else np.int8).tobytes()
            else:
                dtype = (">" if self.s.msb_first else "<") + ("u2" if self.s.unsigned else "i2")
                payload = codes.astype(dtype).tobytes()
        return block(payload)
