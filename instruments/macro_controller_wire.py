"""Opcodes and payload layouts of the macro controller board protocol.

Shared by the driver (:mod:`instruments.macro_controller`) and the firmware emulator
(:mod:`instruments.sim.macro_controller`) so both sides pack and unpack the same bytes. Every
per-cell or per-sample layout is a numpy structured dtype: payloads are built with
``ndarray.tobytes()`` and read with ``np.frombuffer``, never one cell at a time.
All numbers little-endian. The byte-level specification is
``docs/macro-controller-protocol.md``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import numpy as np

from instruments.macro_controller_framing import MAX_PAYLOAD

PROTOCOL_VERSION = 1


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
STAGE_HEAD = struct.Struct("<I")  # offset in the staging buffer, bytes
EXEC_STAGED_REQ = struct.Struct("<BII")  # op, staged length bytes, CRC-32 of the staged bytes
U32 = struct.Struct("<I")

# -- per-element records ----------------------------------------------------------------
PULSE_CELL = np.dtype([
    ("macro", "u1"), ("row", "u1"), ("col", "u1"), ("polarity", "i1"),
    ("amplitude", "<f4"), ("width", "<f4"), ("gate", "<f4"),
])  # 16 bytes: one pulse; amplitude V (magnitude), width s, gate V
READ_CELL = np.dtype([("macro", "u1"), ("row", "u1"), ("col", "u1")])  # 3 bytes
LAYER = np.dtype([
    ("macro", "u1"), ("row0", "u1"), ("col0", "u1"), ("n_in", "u1"), ("n_out", "u1"),
    ("bias_rows", "u1"), ("activation", "u1"), ("reserved", "u1"), ("r_feedback", "<f4"),
])  # 12 bytes: one layer region; r_feedback ohm
VALUE = np.dtype("<f4")  # conductance S or voltage V

#: Activation codes of a layer record.
ACTIVATIONS = ("linear", "relu")
#: Bytes a frame payload may carry after the reply's status byte.
REPLY_ROOM = MAX_PAYLOAD - 1


def max_cells(op: Op, max_payload: int = MAX_PAYLOAD) -> int:
    """Most cells one PULSE_BATCH or READ_BATCH frame carries within ``max_payload`` bytes.

    Both the request and the reply (status byte + one float32 per cell) must fit.
    """
    record = {Op.PULSE_BATCH: PULSE_CELL, Op.READ_BATCH: READ_CELL}[op].itemsize
    return min((max_payload - READ_SETTINGS.size) // record, (max_payload - 1) // VALUE.itemsize)


@dataclass(frozen=True)
class LayerRegion:
    """Where one network layer sits on the board.

    macro: 0..n_macros-1; row0, col0: top-left cell of the region; n_in: signal
    inputs; n_out: outputs; bias_rows: rows driven at the bias voltage;
    activation: ``"relu"`` or ``"linear"``; r_feedback: TIA feedback resistance, ohm.
    How the differential pairs are laid out inside the region is the board's
    (documented in docs/macro-controller-protocol.md).
    """

    macro: int
    row0: int
    col0: int
    n_in: int
    n_out: int
    bias_rows: int
    activation: str
    r_feedback: float


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
