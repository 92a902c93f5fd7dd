"""Frames of the macro controller board's binary protocol.

A frame on the wire is ``COBS(header + payload + crc) + b"\\x00"``:

- header ``<BBH``: ``seq`` (u8), ``op`` (u8), ``len`` (u16, payload bytes);
- payload: ``len`` bytes, little-endian numbers;
- crc: CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over header + payload, u16
  little-endian (``binascii.crc_hqx(data, 0xFFFF)``).

Replies carry the request's ``seq``, the request's ``op`` with bit 7 set
(:data:`REPLY_FLAG`), and a payload whose first byte is a :class:`Status`.
The full specification is ``docs/macro-controller-protocol.md``; this module only packs
and checks frames. Payload codecs live in :mod:`instruments.macro_controller_wire`.
"""

from __future__ import annotations

import binascii
import enum
import struct
from dataclasses import dataclass

from cobs import cobs

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


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value of b"123456789" is 0x29B1)."""
    return binascii.crc_hqx(data, 0xFFFF)


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
