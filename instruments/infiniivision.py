"""Keysight InfiniiVision 3000X oscilloscope driver.

Channels, timebase, edge trigger, single/run/stop/digitize, segmented memory (one
segment per closed-loop sample) and waveform transfer in BYTE or WORD with the
preamble that turns raw codes into seconds and volts. The scope sources nothing,
so it has no safety-envelope checks; its safe state is "acquisition stopped".
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from instruments.errors import InstrumentError, InstrumentTimeout
from instruments.limits import Limits
from instruments.transport import Settings, VisaTransport, query_settings

log = logging.getLogger("rrambench.scope")

CHANNELS = (1, 2, 3, 4)
SEGMENTS_MAX = 1000
ACQUIRE_TYPES = ("NORMal", "AVERage", "HRESolution", "PEAK")
SLOPES = ("POSitive", "NEGative")
FORMATS = {"BYTE": ("B", 1), "WORD": ("H", 2)}  # struct code, bytes per point
TRIGGER_POLL = 0.01  # s between :TER? polls
#: What :meth:`InfiniiVision3000X.snapshot` asks of each channel ``{ch}`` and of the scope
#: (``query_settings`` tables); scales are per division.
CHANNEL_SETTINGS = """
channel{ch}_display          :CHAN{ch}:DISP?   flag
channel{ch}_scale            :CHAN{ch}:SCAL?   number   V
channel{ch}_offset           :CHAN{ch}:OFFS?   number   V
channel{ch}_coupling         :CHAN{ch}:COUP?   text
channel{ch}_probe            :CHAN{ch}:PROB?   number
channel{ch}_bandwidth_limit  :CHAN{ch}:BWL?    flag
channel{ch}_impedance        :CHAN{ch}:IMP?    text
"""
SETTINGS = """
timebase_mode       :TIM:MODE?         text
timebase_scale      :TIM:SCAL?         number    s
timebase_position   :TIM:POS?          number    s
timebase_reference  :TIM:REF?          text
trigger_mode        :TRIG:MODE?        text
trigger_sweep       :TRIG:SWE?         text
trigger_source      :TRIG:EDGE:SOUR?   text
trigger_level       :TRIG:EDGE:LEV?    number    V
trigger_slope       :TRIG:EDGE:SLOP?   text
acquire_type        :ACQ:TYPE?         text
acquire_mode        :ACQ:MODE?         text
acquire_count       :ACQ:COUN?         integer
acquire_segments    :ACQ:SEGM:COUN?    integer
sample_rate         :ACQ:SRAT?         number    Hz
acquire_points      :ACQ:POIN?         integer
"""


@dataclass(frozen=True)
class Preamble:
    """``:WAVeform:PREamble?``: how codes map to seconds and volts.

    t = (i - xreference) * xincrement + xorigin (s, trigger at 0);
    V = (code - yreference) * yincrement + yorigin.
    """

    format: int  # 0 BYTE, 1 WORD, 4 ASCii
    type: int  # 0 NORMal, 1 PEAK, 2 AVERage, 3 HRESolution
    points: int
    count: int
    xincrement: float  # s
    xorigin: float  # s
    xreference: float  # points
    yincrement: float  # V per code
    yorigin: float  # V
    yreference: float  # code

    @classmethod
    def from_values(cls, values: Sequence[float]) -> Preamble:
        """Build from the 10 numbers of the preamble reply."""
        if len(values) != 10:
            raise ValueError(f"a preamble has 10 fields, got {len(values)}")
        f = [float(v) for v in values]
        return cls(int(f[0]), int(f[1]), int(f[2]), int(f[3]), *f[4:])


@dataclass(frozen=True)
class Waveform:
    """One channel of one acquisition: raw codes plus the preamble to convert them."""

    channel: int
    codes: np.ndarray  # integer ADC codes as transferred (code 0 marks a hole)
    preamble: Preamble
    segment: int = 1

    @property
    def time(self) -> np.ndarray:
        """Sample times in s relative to the trigger."""
        p = self.preamble
        return (np.arange(self.codes.size) - p.xreference) * p.xincrement + p.xorigin

    @property
    def volts(self) -> np.ndarray:
        """Sample voltages in V (holes, code 0, are NaN)."""
        p = self.preamble
        volts = (self.codes.astype(float) - p.yreference) * p.yincrement + p.yorigin
        return np.where(self.codes == 0, np.nan, volts)


class InfiniiVision3000X:
    """InfiniiVision 3000X, 4 analog channels.

    Parameters
    ----------
    io:
        The instrument's transport (no I/O happens here).
    limits:
        The bench's safety envelope (kept for uniformity; the scope sources nothing).
    """

    def __init__(self, io: VisaTransport, limits: Limits) -> None:
        self._io, self._limits = io, limits

    # -- identity and errors -------------------------------------------------------------------
    def identify(self) -> str:
        """``*IDN?`` reply: maker, model, serial, firmware."""
        return self._io.query("*IDN?")

    def reset(self) -> None:
        """Factory defaults and an empty error queue."""
        self._io.write("*RST;*CLS")

    def check_errors(self) -> None:
        """Raise :class:`InstrumentError` with the instrument's text if its queue holds errors."""
        self._io.check_errors()

    def snapshot(self) -> Settings:
        """What the scope is set to now, asked of it (name -> (value, unit)).

        Per channel (``channel<n>_...``): display, scale, offset, coupling, probe
        attenuation, bandwidth limit, input impedance; the timebase (mode, scale,
        position, reference); the edge trigger (mode, sweep, source, level, slope);
        the acquisition (type, mode, averages, segments, sample rate, points). Only
        queries the 3000X answers (Programmer's Guide: :CHANnel, :TIMebase,
        :TRIGger, :ACQuire).
        """
        settings = {"identity": (self.identify(), "")}
        for ch in CHANNELS:
            settings.update(query_settings(self._io, CHANNEL_SETTINGS, ch=str(ch)))
        settings.update(query_settings(self._io, SETTINGS))
        return settings

    # -- vertical --------------------------------------------------------------------------------
    def set_channel_scale(self, channel: int, volts_per_div: float) -> None:
        """Vertical scale in V/div (> 0; the 3000X takes 1 mV to 5 V per division)."""
        self._io.write(f":CHAN{_channel(channel)}:SCAL {_positive('volts_per_div', volts_per_div):.6g}")

    def set_channel_offset(self, channel: int, volts: float) -> None:
        """Voltage at the screen centre, V."""
        self._io.write(f":CHAN{_channel(channel)}:OFFS {_finite('volts', volts):.6g}")

    def set_channel_display(self, channel: int, on: bool) -> None:
        """Show (and acquire) the channel, or not."""
        self._io.write(f":CHAN{_channel(channel)}:DISP {1 if on else 0}")

    def configure_channel(self, channel: int, *, scale: float, offset: float = 0.0, display: bool = True) -> None:
        """Scale (V/div), offset (V) and display of one channel, then an error check."""
        ch = _channel(channel)
        scale, offset = _positive("scale", scale), _finite("offset", offset)
        self._io.write(f":CHAN{ch}:SCAL {scale:.6g};:CHAN{ch}:OFFS {offset:.6g};:CHAN{ch}:DISP {int(display)}")
        self.check_errors()

    # -- horizontal and trigger ---------------------------------------------------------------------
    def set_timebase(self, scale: float, position: float = 0.0) -> None:
        """Horizontal scale in s/div (> 0) and trigger-to-centre position in s."""
        scale, position = _positive("scale", scale), _finite("position", position)
        self._io.write(f":TIM:SCAL {scale:.6g};:TIM:POS {position:.6g}")
        self.check_errors()

    def set_edge_trigger(self, source: int | str, level: float, slope: str = "POSitive") -> None:
        """Edge trigger on channel ``source`` (1-4) or ``"EXT"``, at ``level`` V, slope POS/NEG."""
        src = "EXT" if str(source).upper() in ("EXT", "EXTERNAL") else f"CHAN{_channel(source)}"
        slope_word = _choice("slope", slope, SLOPES)
        self._io.write(
            f":TRIG:MODE EDGE;:TRIG:EDGE:SOUR {src};:TRIG:EDGE:LEV {_finite('level', level):.6g};"
            f":TRIG:EDGE:SLOP {slope_word}"
        )
        self.check_errors()

    def set_acquire_type(self, kind: str) -> None:
        """Acquisition type: NORMal, AVERage, HRESolution or PEAK."""
        self._io.write(f":ACQ:TYPE {_choice('kind', kind, ACQUIRE_TYPES)}")

    def set_segmented(self, count: int) -> None:
        """Segmented memory with ``count`` segments (2 to 1000): one per trigger."""
        if not (isinstance(count, (int, np.integer)) and 2 <= count <= SEGMENTS_MAX):
            raise ValueError(f"count must be an integer in [2, {SEGMENTS_MAX}], got {count!r}")
        self._io.write(f":ACQ:MODE SEGM;:ACQ:SEGM:COUN {int(count)}")
        self.check_errors()

    def set_realtime(self) -> None:
        """Ordinary (non-segmented) acquisitions."""
        self._io.write(":ACQ:MODE RTIM")

    # -- acquisition --------------------------------------------------------------------------------
    def single(self) -> None:
        """Arm for one acquisition (all segments in segmented mode).

        Returns once the scope has taken the command: the status query behind it is
        answered only after ``:SING`` was processed, so a trigger that another
        instrument fires right after this call is never missed. (``*OPC?`` would not
        do: on InfiniiVision it may wait for the acquisition itself.)
        """
        self._io.write(":SING")
        self._io.query(":OPER:COND?")

    def run(self) -> None:
        """Acquire continuously."""
        self._io.write(":RUN")

    def stop(self) -> None:
        """Stop acquiring; the last acquisition stays in memory."""
        self._io.write(":STOP")

    def digitize(self, channels: Sequence[int]) -> None:
        """Acquire ``channels`` now and wait until done (``:DIGitize ...;*OPC?``)."""
        sources = ",".join(f"CHAN{_channel(c)}" for c in _channels(channels))
        self._io.query(f":DIG {sources};*OPC?")

    def triggered(self) -> bool:
        """True once after each trigger (``:TER?`` clears on read)."""
        return int(self._io.query(":TER?")) == 1

    def wait_triggered(self, timeout: float, poll: float = TRIGGER_POLL) -> None:
        """Poll ``:TER?`` until the scope triggered; :class:`InstrumentTimeout` after ``timeout`` s."""
        _positive("timeout", timeout)
        deadline = time.monotonic() + timeout
        while not self.triggered():
            if time.monotonic() >= deadline:
                raise InstrumentTimeout(f"{self._io.name}: no trigger within {timeout:g} s")
            time.sleep(poll)

    def segments_acquired(self) -> int:
        """Segments held by the last segmented acquisition (or stored so far by one in progress)."""
        return int(self._io.query(":WAV:SEGM:COUN?"))

    def wait_segments(self, count: int, timeout: float, poll: float = TRIGGER_POLL) -> None:
        """Poll ``:WAV:SEGM:COUN?`` until ``count`` segments are stored.

        ``:TER?`` latches at the first trigger of a segmented acquisition, so it does not
        say that all segments are in. :class:`InstrumentTimeout` after ``timeout`` s.
        """
        _positive("timeout", timeout)
        deadline = time.monotonic() + timeout
        while (acquired := self.segments_acquired()) < count:
            if time.monotonic() >= deadline:
                raise InstrumentTimeout(f"{self._io.name}: {acquired} of {count} segments within {timeout:g} s")
            time.sleep(poll)

    # -- transfer -----------------------------------------------------------------------------------
    def fetch(self, channel: int, *, fmt: str = "WORD", points: int = 2000, segment: int | None = None) -> Waveform:
        """Transfer one channel (BYTE or WORD codes, up to ``points`` points).

        ``segment`` (1-based) selects a segment of a segmented acquisition.
        """
        ch = _channel(channel)
        if fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if not (isinstance(points, (int, np.integer)) and points >= 1):
            raise ValueError(f"points must be a positive integer, got {points!r}")
        setup = (
            f":WAV:SOUR CHAN{ch};:WAV:FORM {fmt};:WAV:BYT MSBF;:WAV:UNS 1;"
            f":WAV:POIN:MODE RAW;:WAV:POIN {int(points)}"
        )
        if segment is not None:
            if not (isinstance(segment, (int, np.integer)) and 1 <= segment <= SEGMENTS_MAX):
                raise ValueError(f"segment must be an integer in [1, {SEGMENTS_MAX}], got {segment!r}")
            setup = f":ACQ:SEGM:IND {int(segment)};" + setup
        self._io.write(setup)
        preamble = Preamble.from_values(self._io.query_ascii(":WAV:PRE?"))
        datatype, _ = FORMATS[fmt]
        codes = self._io.query_binary(":WAV:DATA?", datatype=datatype, is_big_endian=True)
        if codes.size != preamble.points:
            self.check_errors()
            raise InstrumentError(self._io.name, f"CHAN{ch}: {codes.size} points, preamble says {preamble.points}")
        return Waveform(ch, codes, preamble, segment or 1)

    def fetch_channels(self, channels: Sequence[int], **options: object) -> dict[int, Waveform]:
        """:meth:`fetch` each of ``channels``; same options for all."""
        return {c: self.fetch(c, **options) for c in _channels(channels)}

    def fetch_segments(self, channel: int, count: int, *, fmt: str = "WORD", points: int = 2000) -> list[Waveform]:
        """Segments 1..``count`` of ``channel`` from a segmented acquisition.

        :class:`InstrumentError` if the scope holds fewer than ``count`` segments.
        """
        acquired = self.segments_acquired()
        if acquired < count:
            raise InstrumentError(self._io.name, f"{acquired} segments acquired, {count} requested")
        return [self.fetch(channel, fmt=fmt, points=points, segment=i) for i in range(1, count + 1)]

    # -- safety --------------------------------------------------------------------------------------
    def safe_state(self) -> None:
        """Stop acquiring; safe in any state, and twice."""
        self._io.write(":STOP")


def _channel(channel: object) -> int:
    if not (isinstance(channel, (int, np.integer)) and channel in CHANNELS):
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    return int(channel)


def _channels(channels: Sequence[int]) -> list[int]:
    chosen = [_channel(c) for c in channels]
    if not chosen:
        raise ValueError("channels must name at least one channel")
    return chosen


def _finite(name: str, value: float) -> float:
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _positive(name: str, value: float) -> float:
    if not _finite(name, value) > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def _choice(name: str, value: str, options: Sequence[str]) -> str:
    """Accept a long or short form (any case); return the short form the driver sends."""
    word = str(value).upper()
    for option in options:
        short = "".join(ch for ch in option if not ch.islower())
        if word in (option.upper(), short):
            return short
    raise ValueError(f"{name} must be one of {', '.join(options)}, got {value!r}")
