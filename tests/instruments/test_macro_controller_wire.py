"""Controller frames: COBS, header, CRC-16/CCITT-FALSE, damage detection."""

from __future__ import annotations

import binascii
import struct

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.macro_controller_wire import (
    MAX_PAYLOAD,
    FrameDamaged,
    FrameLengthError,
    crc16,
    decode,
    encode,
    pack,
    peek_seq_op,
    unpack,
)


def test_crc_is_ccitt_false_with_its_published_check_value():
    assert crc16(b"123456789") == 0x29B1


@given(st.binary(max_size=70_000))
@settings(max_examples=200, deadline=None)
def test_crc_is_the_standard_librarys_ccitt_false_on_any_frame(data):
    assert crc16(data) == crc16(bytearray(data)) == binascii.crc_hqx(data, 0xFFFF)


def test_identify_frame_bytes_match_the_documented_example():
    # docs/macro-controller-protocol.md, "Worked example": IDENTIFY with seq 1.
    assert encode(1, 0x01) == bytes.fromhex("03 01 01 01 03 44 c5 00")


def test_frame_with_payload_matches_hand_built_bytes():
    body = struct.pack("<BBH", 7, 0x10, 3) + bytes([1, 2, 3])
    expected = cobs.encode(body + struct.pack("<H", binascii.crc_hqx(body, 0xFFFF))) + b"\x00"
    assert encode(7, 0x10, bytes([1, 2, 3])) == expected == bytes.fromhex("04 07 10 03 06 01 02 03 ed 7d 00")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=600))
def test_any_frame_round_trips_and_has_a_single_delimiter_at_the_end(seq, op, payload):
    wire = encode(seq, op, payload)
    assert wire.index(b"\x00") == len(wire) - 1
    frame = decode(wire[:-1])
    assert (frame.seq, frame.op, frame.payload) == (seq, op, payload)


def test_every_single_bit_flip_of_a_frame_is_detected():
    raw = pack(42, 0x20, bytes(range(40)))
    for byte in range(len(raw)):
        for bit in range(8):
            damaged = bytearray(raw)
            damaged[byte] ^= 1 << bit
            with pytest.raises((FrameDamaged, FrameLengthError)):
                unpack(bytes(damaged))


def test_a_dropped_byte_is_detected():
    wire = encode(3, 0x21, bytes(range(1, 30)))[:-1]
    for k in range(len(wire)):
        with pytest.raises((FrameDamaged, FrameLengthError)):
            decode(wire[:k] + wire[k + 1 :])


def test_intact_frame_with_a_wrong_length_field_is_a_length_error_not_damage():
    body = struct.pack("<BBH", 1, 2, 5) + b"abc"  # says 5 bytes, carries 3
    raw = body + struct.pack("<H", crc16(body))
    with pytest.raises(FrameLengthError, match="len field says 5"):
        unpack(raw)


def test_short_and_undecodable_messages_are_damage():
    with pytest.raises(FrameDamaged, match="shorter"):
        decode(cobs.encode(b"\x01\x02\x03"))
    with pytest.raises(FrameDamaged, match="COBS"):
        decode(b"\x05\x01")  # code byte promises 4 bytes, 1 present


def test_payload_beyond_the_u16_length_is_refused():
    with pytest.raises(ValueError, match="exceeds the frame maximum"):
        encode(0, 1, bytes(MAX_PAYLOAD + 1))
    assert decode(encode(0, 1, bytes(MAX_PAYLOAD))[:-1]).payload == bytes(MAX_PAYLOAD)


def test_seq_and_op_must_be_bytes():
    with pytest.raises(ValueError, match="seq"):
        encode(256, 1)
    with pytest.raises(ValueError, match="op"):
        encode(0, -1)


def test_peek_reads_seq_and_op_of_a_damaged_frame_when_possible():
    wire = bytearray(encode(9, 0x22, b"xyz")[:-1])
    wire[-1] ^= 0x10  # damage the CRC only
    assert peek_seq_op(bytes(wire)) == (9, 0x22)
    assert peek_seq_op(b"\x09") == (0, 0xFF)
