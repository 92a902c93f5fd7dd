"""The macro controller board's wire format: frames, opcodes, payloads, board constants.

Shared by the driver (:mod:`instruments.macro_controller`) and the firmware emulator
(:mod:`instruments.sim.macro_controller`) so both sides pack and unpack the same bytes.
The byte-level specification is ``docs/macro-controller-protocol.md``.

A frame on the wire is ``COBS(header + payload + crc) + b"\\x00"``:

- header ``<BBH``: ``seq`` (u8), ``op`` (u8), ``len`` (u16, payload bytes);
- payload: ``len`` bytes, little-endian numbers;
- crc: CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over header + payload, u16
  little-endian (``binascii.crc_hqx(data, 0xFFFF)`` computes the same, twenty times slower).

Replies carry the request's ``seq``, the request's ``op`` with bit 7 set
(:data:`REPLY_FLAG`), and a payload whose first byte is a :class:`Status`.

Every per-cell or per-sample payload layout is a numpy structured dtype: payloads are
built with ``ndarray.tobytes()`` and read with ``np.frombuffer``, never one cell at a
time. All numbers little-endian.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass

import anycrc
import numpy as np
from cobs import cobs

# -- frames -----------------------------------------------------------------------------
DELIMITER = b"\x00"
HEADER = struct.Struct("<BBH")  # seq, op, len
CRC = struct.Struct("<H")
#: Largest payload a frame can carry (``len`` is a u16), bytes.
MAX_PAYLOAD = 0xFFFF
#: Smallest decoded frame: header and CRC around an empty payload, bytes.
MIN_FRAME = HEADER.size + CRC.size
#: Bit set in the ``op`` of every reply.
REPLY_FLAG = 0x80
#: ``op`` of a reply to a frame the board could not read (no trustworthy op).
OP_UNREADABLE = 0xFF


class Status(enum.IntEnum):
    """First payload byte of every reply."""

    OK = 0
    BAD_CRC = 1  # frame damaged (COBS, CRC or too short): host retransmits, same seq
    BAD_LENGTH = 2  # intact frame whose length is wrong for its op (host bug, not retried)
    UNKNOWN_OP = 3
    BAD_ARGUMENT = 4  # an argument is out of range; payload carries the error text
    BUSY = 5  # board busy; nothing executed, host retries later with the same seq
    INTERNAL = 6  # firmware fault; payload carries the error text


class FrameError(ValueError):
    """A received frame cannot be trusted (damaged on the wire or malformed)."""


class FrameDamaged(FrameError):
    """COBS decoding failed, the frame is too short or its CRC does not match."""


class FrameLengthError(FrameError):
    """Intact frame (CRC good) whose ``len`` field disagrees with its size."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    seq: int  # 0..255
    op: int  # 0..255, REPLY_FLAG set on replies
    payload: bytes


#: CRC-16/CCITT-FALSE, catalogued as CRC-16/IBM-3740. anycrc's table-driven C code, not
#: ``binascii.crc_hqx``: that one goes a byte at a time (~3 us per kB) and a 2,048-cell pulse
#: batch is a 35 kB frame, checked at both ends of the link on every write-verify iteration.
_CRC16 = anycrc.Model("CRC16-IBM-3740")


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value of b"123456789" is 0x29B1)."""
    return _CRC16.calc(data)


def pack(seq: int, op: int, payload: bytes = b"") -> bytes:
    """Header + payload + CRC, before COBS (what the CRC protects)."""
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"seq must be in 0..255, got {seq}")
    if not 0 <= op <= 0xFF:
        raise ValueError(f"op must be in 0..255, got {op}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the frame maximum {MAX_PAYLOAD}")
    body = HEADER.pack(seq, op, len(payload)) + bytes(payload)
    return body + CRC.pack(crc16(body))


def encode(seq: int, op: int, payload: bytes = b"") -> bytes:
    """Wire form of a frame: COBS-encoded and terminated by the 0x00 delimiter."""
    return cobs.encode(pack(seq, op, payload)) + DELIMITER


def unpack(raw: bytes) -> Frame:
    """Check a decoded (un-COBSed) frame and split it; raises :class:`FrameError`."""
    if len(raw) < MIN_FRAME:
        raise FrameDamaged(f"frame of {len(raw)} bytes is shorter than the minimum {MIN_FRAME}")
    body = raw[: -CRC.size]
    (crc,) = CRC.unpack_from(raw, len(body))
    if crc16(body) != crc:
        raise FrameDamaged("CRC mismatch")
    seq, op, length = HEADER.unpack_from(body)
    payload = body[HEADER.size :]
    if length != len(payload):
        raise FrameLengthError(f"len field says {length} bytes, frame carries {len(payload)}")
    return Frame(seq, op, bytes(payload))


def decode(wire: bytes) -> Frame:
    """Decode one wire message (delimiter removed); raises :class:`FrameError`."""
    try:
        raw = cobs.decode(wire)
    except cobs.DecodeError as exc:
        raise FrameDamaged(f"COBS decoding failed: {exc}") from None
    return unpack(raw)


def peek_seq_op(wire: bytes) -> tuple[int, int]:
    """Best-effort ``(seq, op)`` of a damaged message, (0, OP_UNREADABLE) when unknown.

    Used by the board to address its BAD_CRC reply; the host must not trust it.
    """
    try:
        raw = cobs.decode(wire)
    except cobs.DecodeError:
        return 0, OP_UNREADABLE
    if len(raw) < 2:
        return 0, OP_UNREADABLE
    return raw[0], raw[1]


# -- the board as built ------------------------------------------------------------------
#: Macros, rows (word lines) and columns (bit lines) of the board as built: 8 macros of
#: 32x32 1T1R cells. The simulated world has this size; a board reports its own at IDENTIFY.
BOARD_MACROS, BOARD_ROWS, BOARD_COLS = 8, 32, 32

# -- opcodes and payloads ----------------------------------------------------------------
#: Version 2 added LOOP_INFO (the loop's time constants); version 3 added EVAL_LAYER (one layer
#: region evaluated open-loop on given input voltages); version 4 added MONITOR_SELECT (one node of
#: the loaded network on the analog monitor output); version 5 lets PULSE_BATCH list read-only
#: entries (polarity 0, amplitude 0: read after the pulses, not pulsed); every other op is as in version 1.
PROTOCOL_VERSION = 5
#: The first protocol version whose PULSE_BATCH takes read-only entries (polarity 0, amplitude 0).
READ_ONLY_ENTRIES_SINCE = 5


class Op(enum.IntEnum):
    """Request opcodes (replies carry ``op | 0x80``)."""

    IDENTIFY = 0x01
    STATUS = 0x02
    SAFE_STATE = 0x03
    ROUTE = 0x10
    UNROUTE = 0x11
    PULSE_BATCH = 0x20
    READ_BATCH = 0x21
    READ_MACRO = 0x22
    LOAD_MAPPING = 0x30
    SET_STREAMS = 0x31
    SET_INITIAL = 0x32
    RUN_SAMPLES = 0x33
    FETCH_END = 0x34
    LOOP_INFO = 0x35
    EVAL_LAYER = 0x36
    MONITOR_SELECT = 0x37
    STAGE = 0x40
    EXEC_STAGED = 0x41


# -- fixed structs ----------------------------------------------------------------------
IDENTIFY_REPLY = struct.Struct("<HIBBB")  # protocol, max staged bytes, n_macros, rows, cols; + text
STATUS_REPLY = struct.Struct("<BBBBBBBfdII")
# last_error, routed, macro, row, col, integrators_running, mapping_loaded, dac_max V,
# board clock s, frames handled, frames refused; + last error text (UTF-8)
CELL = struct.Struct("<BBB")  # macro, row, col (ROUTE)
READ_SETTINGS = struct.Struct("<ff")  # bias V, window s (head of PULSE_BATCH, READ_BATCH)
READ_MACRO_REQ = struct.Struct("<Bff")  # macro, bias V, window s
MACRO_SHAPE = struct.Struct("<BB")  # rows, cols (head of the READ_MACRO reply)
MAPPING_HEAD = struct.Struct("<fB")  # v_bias V, n_layers
STREAMS_HEAD = struct.Struct("<fHH")  # dt s, T steps, H hidden width
INITIAL_HEAD = struct.Struct("<IH")  # N samples, D dimensions
RUN_REQ = struct.Struct("<IfBI")  # count, duration s, sde (0/1), noise seed
FETCH_REQ = struct.Struct("<II")  # first sample, most values wanted
FETCH_REPLY = struct.Struct("<IIIH")  # first sample, count, total samples N, D
LOOP_INFO_REPLY = struct.Struct("<ddd")  # rc s, dt_step s, v_rail V: the loop's constants as built
EVAL_HEAD = struct.Struct("<fII")  # v_bias V, noise seed, N input vectors (EVAL_LAYER; a LAYER record follows)
MONITOR_REQ = struct.Struct("<BB")  # layer (mapping order; MONITOR_OFF: the default source), node
STAGE_HEAD = struct.Struct("<I")  # offset in the staging buffer, bytes
EXEC_STAGED_REQ = struct.Struct("<BII")  # op, staged length bytes, CRC-32 of the staged bytes
U32 = struct.Struct("<I")

# -- per-element records ----------------------------------------------------------------
PULSE_CELL = np.dtype([
    ("macro", "u1"), ("row", "u1"), ("col", "u1"), ("polarity", "i1"),
    ("amplitude", "<f4"), ("width", "<f4"), ("gate", "<f4"),
])  # 16 bytes: one pulse (polarity +1 SET, -1 RESET, 0 read only with amplitude 0); amplitude V, width s, gate V
READ_CELL = np.dtype([("macro", "u1"), ("row", "u1"), ("col", "u1")])  # 3 bytes
LAYER = np.dtype([
    ("macro", "u1"), ("row0", "u1"), ("col0", "u1"), ("n_in", "u1"), ("n_out", "u1"),
    ("bias_rows", "u1"), ("activation", "u1"), ("reserved", "u1"), ("r_feedback", "<f4"),
])  # 12 bytes: one layer region; r_feedback ohm
VALUE = np.dtype("<f4")  # conductance S or voltage V

#: Activation codes of a layer record.
ACTIVATIONS = ("linear", "relu")
#: MONITOR_SELECT's layer byte that returns the monitor output to its default source: the
#: injected noise voltage of integrator 0 in SDE runs, the trigger output in ODE runs.
MONITOR_OFF = 0xFF
#: Bytes a frame payload may carry after the reply's status byte.
REPLY_ROOM = MAX_PAYLOAD - 1

# -- the board's closed loop (``RC dx/dtau = a x + b y + c xi``, docs/circuit-model.md) ------
# The board as built. A board reports its own at LOOP_INFO (:class:`LoopInfo`), and hosts use
# what it reports; the simulated board's circuit is built with these (``CircuitParams``).
#: Integrator time constant RC of the board, s.
LOOP_RC = 1e-3
#: Fine time step of the board's loop, s: the DAC streams' update interval (the emulator's integration step).
LOOP_DT_STEP = 1e-6
#: Rail of the board's activation amplifiers, V: ReLU outputs lie in [0, V], linear ones in [-V, V].
LOOP_V_RAIL = 0.5


def max_cells(op: Op, max_payload: int = MAX_PAYLOAD) -> int:
    """Most cells one PULSE_BATCH or READ_BATCH frame carries within ``max_payload`` bytes.

    Both the request and the reply (status byte + one float32 per cell) must fit.
    """
    record = {Op.PULSE_BATCH: PULSE_CELL, Op.READ_BATCH: READ_CELL}[op].itemsize
    return min((max_payload - READ_SETTINGS.size) // record, (max_payload - 1) // VALUE.itemsize)


def max_vectors(n_in: int, n_out: int, max_payload: int = MAX_PAYLOAD) -> int:
    """Most input vectors one EVAL_LAYER frame carries within ``max_payload`` bytes, for a layer
    of ``n_in`` inputs and ``n_out`` outputs: the request (head, one LAYER record, N n_in
    float32) and the reply (status byte, N n_out float32) must both fit."""
    request = (max_payload - EVAL_HEAD.size - LAYER.itemsize) // (VALUE.itemsize * n_in)
    return max(0, min(request, (max_payload - 1) // (VALUE.itemsize * n_out)))


@dataclass(frozen=True)
class LayerRegion:
    """Where one network layer sits on the board (the mapping's unit, LOAD_MAPPING's record).

    macro: macro index; row0, col0: top-left cell of the region; n_in: signal inputs
    (>= 1); n_out: outputs (>= 1); bias_rows: rows driven at the bias voltage;
    activation: ``"relu"`` or ``"linear"``; r_feedback: TIA feedback resistance (ohm, > 0).
    Rows row0 .. row0 + n_in + bias_rows - 1 take the inputs, then the bias rows; G+ of
    output j sits in column col0 + j, its G- in column col0 + n_out + j, on the same rows
    (docs/macro-controller-protocol.md). The wire's own bound (every index a u8) is
    checked when the region is encoded (:func:`encode_layers`).
    """

    macro: int
    row0: int
    col0: int
    n_in: int
    n_out: int
    bias_rows: int = 0
    activation: str = "relu"
    r_feedback: float = 10e3

    def __post_init__(self) -> None:
        for name in ("macro", "row0", "col0", "n_in", "n_out", "bias_rows"):
            value = getattr(self, name)
            low = 1 if name in ("n_in", "n_out") else 0
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"LayerRegion.{name} must be an integer >= {low}, got {value!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"LayerRegion.activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        r_f = self.r_feedback
        if isinstance(r_f, bool) or not isinstance(r_f, (int, float, np.floating, np.integer)) \
                or not math.isfinite(r_f) or r_f <= 0:
            raise ValueError(f"LayerRegion.r_feedback must be a positive finite resistance (ohm), got {r_f!r}")

    def regions(self) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """(rows, columns) slices of the G+ block and of the G- block in the macro."""
        rows = slice(self.row0, self.row0 + self.n_in + self.bias_rows)
        return ((rows, slice(self.col0, self.col0 + self.n_out)),
                (rows, slice(self.col0 + self.n_out, self.col0 + 2 * self.n_out)))


def encode_layers(layers: list) -> np.ndarray:
    """Layer records from objects with LayerRegion's attributes (or mappings)."""
    out = np.zeros(len(layers), LAYER)
    for name in ("macro", "row0", "col0", "n_in", "n_out", "bias_rows", "activation", "r_feedback"):
        values = [lay[name] if isinstance(lay, dict) else getattr(lay, name) for lay in layers]
        if name == "activation":
            bad = [v for v in values if v not in ACTIVATIONS]
            if bad:
                raise ValueError(f"activation must be one of {ACTIVATIONS}, got {bad[0]!r}")
            values = [ACTIVATIONS.index(v) for v in values]
        elif name == "r_feedback":
            arr = np.asarray(values, dtype=float)
            if not np.all(np.isfinite(arr) & (arr > 0)):
                raise ValueError("r_feedback must be a positive finite resistance (ohm)")
        else:
            arr = np.asarray(values)
            if not np.all((arr >= 0) & (arr <= 255) & (arr == np.round(arr))):
                raise ValueError(f"layer field {name} must be an integer in 0..255, got {values}")
        out[name] = values
    return out


def decode_layers(records: np.ndarray) -> list[LayerRegion]:
    """LayerRegion objects from layer records (activation codes already checked)."""
    return [
        LayerRegion(int(r["macro"]), int(r["row0"]), int(r["col0"]), int(r["n_in"]), int(r["n_out"]),
                    int(r["bias_rows"]), ACTIVATIONS[int(r["activation"])], float(r["r_feedback"]))
        for r in records
    ]


@dataclass(frozen=True)
class BoardInfo:
    """What IDENTIFY reports."""

    text: str  # identity string, "MAKER,MODEL,SERIAL,FIRMWARE"
    protocol: int  # protocol version
    max_staged: int  # bytes the staging buffer holds
    n_macros: int
    rows: int
    cols: int


@dataclass(frozen=True)
class LoopInfo:
    """What LOOP_INFO reports: the closed loop's constants, fixed when the board was built."""

    rc: float  # s, integrator time constant RC
    dt_step: float  # s, fine step: the DAC streams' update interval
    v_rail: float  # V, rail of the activation amplifiers

    def pack(self) -> bytes:
        return LOOP_INFO_REPLY.pack(self.rc, self.dt_step, self.v_rail)

    @classmethod
    def unpack(cls, body: bytes) -> LoopInfo:
        return cls(*(float(v) for v in LOOP_INFO_REPLY.unpack_from(body)))


@dataclass(frozen=True)
class BoardStatus:
    """What STATUS reports (reading it clears the board's last error)."""

    last_error: int  # Status code of the last refused request, 0 when none
    error_text: str
    routed: tuple[int, int, int] | None  # (macro, row, col) connected to the SMU
    integrators_running: bool
    mapping_loaded: bool
    dac_max: float  # V, largest |DAC output| now applied
    clock: float  # s, board time
    frames: int  # requests handled
    refused: int  # requests answered with an error status

    @classmethod
    def unpack(cls, body: bytes) -> BoardStatus:
        (err, routed, m, r, c, running, mapped, dac_max, clock, frames, refused) = STATUS_REPLY.unpack_from(body)
        return cls(
            last_error=err, error_text=body[STATUS_REPLY.size :].decode("utf-8", "replace"),
            routed=(m, r, c) if routed else None, integrators_running=bool(running),
            mapping_loaded=bool(mapped), dac_max=float(dac_max), clock=float(clock),
            frames=frames, refused=refused,
        )
