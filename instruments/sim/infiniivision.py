"""Keysight InfiniiVision 3000X oscilloscope emulation over the simulated world.

The board's trigger output fires ``world``'s trigger listeners with the node
voltages of a closed-loop run (``traces`` (S, C, P) V, one segment per sample:
integrator outputs, embedding channel, trigger channel). Trace channel k is
wired to scope channel k + 1; the board's trigger output to EXTernal (it rises as
the run starts, t0). When the scope is armed (``:SINGle``, ``:RUN``) it finds the
trigger of each segment on its source (EXTernal: the run start; a channel: its
first edge through the level, the node resting at 0 V before), resamples every
displayed channel onto its own time grid (timebase scale and position, trigger at
t = 0, reference at the screen centre), adds input noise and keeps the volts. In
segmented mode one segment is kept per trigger until ``:ACQ:SEGM:COUN`` are full.
``:DIGitize`` acquires at once (auto trigger): the inputs are at rest, so it
captures noise around 0 V.

Transfers quantize like the real instrument: BYTE codes 1..255 around yreference
128, WORD codes 1..65535 around 32768, the screen's ±4 divisions spanning the code
range, anything beyond the screen clipped to the extreme codes (code 0 is a hole).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instruments.sim.scope_capture import find_edges, resample
from instruments.sim.scpi import (
    Arg,
    Handler,
    ScpiError,
    ScpiInstrument,
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


@dataclass
class _Settings:
    """Everything ``*RST`` restores."""

    scale: list[float] = field(default_factory=lambda: [1.0] * N_CHANNELS)  # V/div
    offset: list[float] = field(default_factory=lambda: [0.0] * N_CHANNELS)  # V at centre
    display: list[bool] = field(default_factory=lambda: [True] + [False] * (N_CHANNELS - 1))
    coupling: list[str] = field(default_factory=lambda: ["DC"] * N_CHANNELS)
    probe: list[float] = field(default_factory=lambda: [1.0] * N_CHANNELS)
    tb_scale: float = 100e-6  # s/div
    tb_position: float = 0.0  # s, trigger to screen centre
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
        super().__init__()
        world.add_trigger_listener(self.on_trigger)

    def reset(self) -> None:
        self.s = _Settings()
        self.capture, self._pending = None, []
        self.armed = self.running = self._ter = False

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
            ":TIMebase[:MAIN]:SCALe": self._number("tb_scale", *TIMEBASE_RANGE),
            ":TIMebase[:MAIN]:SCALe?": lambda a, n: no_args(a, fmt(self.s.tb_scale)),
            ":TIMebase[:MAIN]:RANGe": self._set_tb_range,
            ":TIMebase[:MAIN]:RANGe?": lambda a, n: no_args(a, fmt(self.s.tb_scale * DIVS_X)),
            ":TIMebase[:MAIN]:POSition": self._number("tb_position", -POSITION_MAX, POSITION_MAX),
            ":TIMebase[:MAIN]:POSition?": lambda a, n: no_args(a, fmt(self.s.tb_position)),
            ":TIMebase:MODE": self._accept("timebase mode", ["MAIN"]),
            ":TIMebase:REFerence": self._accept("timebase reference", ["CENTer"]),
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

    @staticmethod
    def _accept(name: str, options: list[str]) -> Handler:
        """Handler for a setting the emulation supports in one value only."""

        def setter(args: list[Arg], suffixes: tuple[int, ...]) -> None:
            expect(args, 1)[0].choice(name, options)

        return setter

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
        return (f":TIM:MODE MAIN;REF CENT;MAIN:RANG {self.s.tb_scale * DIVS_X:+.2E};"
                f"POS {self.s.tb_position:+.1E}")

    # -- acquisition state --------------------------------------------------------------------------
    def _arm(self, *, running: bool) -> None:
        self._pending = []
        self.running, self.armed = running, not running
        self._ter = False

    def _stop(self) -> None:
        self.running = self.armed = False

    def _read_ter(self) -> str:
        value, self._ter = self._ter, False
        return "+1" if value else "+0"

    def _operation_status(self) -> str:
        return f"+{8 if (self.running or self.armed) else 0}"

    def _segments_acquired(self) -> int:
        return 0 if self.capture is None else self.capture.volts.shape[0]

    def on_trigger(self, traces: np.ndarray, dt: float, t0: float) -> None:
        """World callback: the board fired the trigger output over ``traces`` (S, C, P) V."""
        with self.lock:
            if not (self.armed or self.running):
                return
            segments = self._acquire(np.asarray(traces, dtype=float), float(dt))
            if segments.shape[0] == 0:
                return  # no edge on the trigger source: still waiting
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
        xorigin = self.s.tb_position - DIVS_X / 2 * self.s.tb_scale
        self.capture = _Capture(volts, channels, xinc, xorigin, list(self.s.scale), list(self.s.offset))
        self._ter = True

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
        tau = self.s.tb_position - DIVS_X / 2 * self.s.tb_scale + xinc * np.arange(RECORD)
        volts = resample(traces[rows], dt, t_trig, tau, N_CHANNELS)
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
        self.running = self.armed = False

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
        xorigin = self.s.tb_position - DIVS_X / 2 * self.s.tb_scale if cap is None else cap.xorigin
        scale = (self.s.scale if cap is None else cap.scale)[self.s.wav_source - 1]
        offset = (self.s.offset if cap is None else cap.offset)[self.s.wav_source - 1]
        kind = "WORD" if fmt_name == "WORD" else "BYTE"
        yinc = DIVS_Y / 2 * scale / HALF_CODES[kind]
        yref = Y_REFERENCE[kind] if unsigned else 0
        count = self.s.acq_count if self.s.acq_type == "AVERage" else 1
        return (f"+{FORMAT_CODE[fmt_name]},+{TYPE_CODE[self.s.acq_type]},+{points},+{count},"
                f"{xinc:+.9E},{xorigin:+.9E},+0,{yinc:+.9E},{offset:+.9E},+{yref}")

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
        return b"#8%08d" % len(payload) + payload
