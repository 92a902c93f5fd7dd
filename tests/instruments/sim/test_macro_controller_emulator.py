"""The controller-board firmware emulator, frame by frame (no transport in between)."""

from __future__ import annotations

import socket
import struct
import zlib

import numpy as np
import pytest
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instruments.macro_controller_wire import REPLY_FLAG, Frame, Op, Status, crc16, decode, encode
from instruments.sim.macro_controller import MacroControllerEmulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld

READ = struct.pack("<ff", 0.1, 1e-6)


@pytest.fixture(scope="module")
def board():
    return MacroControllerEmulator(SimWorld(seed=7))


def ask(board: MacroControllerEmulator, seq: int, op: int, payload: bytes = b"") -> Frame:
    reply = board.handle(encode(seq, op, payload)[:-1])
    assert reply is not None and b"\x00" not in reply
    return decode(reply)


def pulse(m, r, c, pol=1, amp=1.2, width=1e-6, gate=1.2) -> bytes:
    return struct.pack("<BBBbfff", m, r, c, pol, amp, width, gate)


def test_reply_echoes_seq_and_flags_the_op(board):
    reply = ask(board, 200, Op.IDENTIFY)
    assert (reply.seq, reply.op, reply.payload[0]) == (200, Op.IDENTIFY | REPLY_FLAG, Status.OK)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=300))
def test_random_bytes_never_crash_the_board_and_get_an_error_status(board, junk):
    reply = board.handle(junk)
    frame = decode(reply)  # every answer is a well-formed frame
    assert frame.op & REPLY_FLAG
    assert frame.payload[0] in set(Status) - {Status.OK, Status.BUSY} or _is_valid_request(junk)


def _is_valid_request(junk: bytes) -> bool:
    try:
        decode(junk)
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=200))
def test_intact_frames_with_random_op_and_payload_get_a_status_and_never_crash(board, seq, op, payload):
    reply = ask(board, seq, op, payload)
    assert reply.seq == seq and reply.op == op | REPLY_FLAG
    assert reply.payload[0] in set(Status)
    if reply.payload[0] != Status.OK:
        assert reply.payload[1:].decode("utf-8")  # every refusal carries its text


def test_damaged_frame_gets_bad_crc_and_is_not_executed(board):
    wire = bytearray(encode(5, Op.PULSE_BATCH, READ + pulse(0, 1, 1))[:-1])
    wire[6] ^= 0x04
    before = board.executed
    reply = decode(board.handle(bytes(wire)))
    assert reply.payload[0] == Status.BAD_CRC and reply.op == 0xFF
    assert board.executed == before


def test_wrong_sizes_unknown_ops_and_out_of_range_cells_are_refused_with_text(board):
    assert ask(board, 1, Op.PULSE_BATCH, READ + b"\x01\x02").payload[0] == Status.BAD_LENGTH
    assert ask(board, 2, Op.IDENTIFY, b"\x00").payload[0] == Status.BAD_LENGTH
    reply = ask(board, 3, 0x7E)
    assert reply.payload[0] == Status.UNKNOWN_OP and b"0x7e" in reply.payload
    reply = ask(board, 4, Op.READ_BATCH, READ + bytes([0, 32, 0]))
    assert reply.payload[0] == Status.BAD_ARGUMENT and b"outside" in reply.payload


def test_intact_frame_with_wrong_len_field_is_bad_length():
    board = MacroControllerEmulator(SimWorld(seed=7))
    body = struct.pack("<BBH", 9, Op.IDENTIFY, 4)  # promises 4 payload bytes, carries none
    raw = body + struct.pack("<H", crc16(body))
    reply = decode(board.handle(cobs.encode(raw)))
    assert reply.seq == 9 and reply.payload[0] == Status.BAD_LENGTH


@pytest.mark.parametrize("order", ["pulses-first", "read-first"])
def test_a_read_only_entry_is_read_after_the_pulses_and_not_pulsed(order):
    """Polarity 0 with amplitude 0 in a pulse batch: the cell is read (once per entry) after the
    frame's pulses and keeps its conductance, wherever it sits in the list."""
    world = SimWorld(seed=8, n_macros=1)
    world.set_conductance(0, 1, [0, 1], 20e-6)
    board = MacroControllerEmulator(world)
    entries = [pulse(0, 1, 0, amp=1.4, width=1e-7, gate=1.8), pulse(0, 1, 1, pol=0, amp=0.0, width=1e-7, gate=0.0),
               pulse(0, 1, 1, pol=0, amp=0.0, width=1e-7, gate=0.0)]
    if order == "read-first":
        entries = entries[1:] + entries[:1]
    reply = ask(board, 12, Op.PULSE_BATCH, READ + b"".join(entries))
    assert reply.payload[0] == Status.OK
    g = np.frombuffer(reply.payload[1:], "<f4")
    truth = world.conductance(0)[1, :2]
    assert truth[0] > 22e-6 and abs(truth[1] - 20e-6) < 0.3e-6, "only the SET cell moved"
    reads = g[[1, 2]] if order == "pulses-first" else g[[0, 1]]
    assert np.all(np.abs(reads - truth[1]) < 1e-6) and reads[0] != reads[1], "two reads, each with its noise"


def test_a_read_only_entry_with_an_amplitude_is_refused(board):
    reply = ask(board, 13, Op.PULSE_BATCH, READ + pulse(0, 0, 0, pol=0, amp=0.5))
    assert reply.payload[0] == Status.BAD_ARGUMENT and b"read only" in reply.payload


def test_board_enforces_its_absolute_ratings_whatever_the_host_limits(board):
    reply = ask(board, 10, Op.PULSE_BATCH, READ + pulse(0, 0, 0, amp=6.0))
    assert reply.payload[0] == Status.BAD_ARGUMENT and b"amplitude" in reply.payload
    reply = ask(board, 11, Op.PULSE_BATCH, READ + pulse(0, 0, 0, pol=0))
    assert reply.payload[0] == Status.BAD_ARGUMENT and b"polarity" in reply.payload


@pytest.mark.parametrize(("cell", "text"), [
    (dict(amp=float("nan")), b"amplitude outside the board's rating"),
    (dict(gate=float("inf")), b"gate outside the board's rating"),
    (dict(width=float("nan")), b"width outside the board's rating"),
    (dict(width=float("-inf")), b"width outside the board's rating"),
    (dict(gate=-0.5), b"gate outside the board's rating"),
    (dict(pol=2), b"polarity"), (dict(m=8), b"cell 2 (8, 0, 2) outside"), (dict(r=32), b"cell 2 (0, 32, 2) outside"),
])
def test_one_bad_cell_in_a_batch_is_refused_with_what_is_wrong(cell, text):
    """Ratings are checked by a minimum and a maximum of the values as received: a NaN or an
    infinity in any cell must still be refused (the bounds are finite), and a bad cell named."""
    board = MacroControllerEmulator(SimWorld(seed=7))
    good = [pulse(0, 0, 0), pulse(1, 2, 3)]
    bad = pulse(**{"m": 0, "r": 0, "c": 2, **cell})
    reply = ask(board, 12, Op.PULSE_BATCH, READ + b"".join([*good, bad]))
    assert reply.payload[0] == Status.BAD_ARGUMENT and text in reply.payload
    assert board.executed == 0


def test_identical_frame_is_answered_from_cache_and_a_new_seq_executes_again():
    world = SimWorld(seed=7)
    board = MacroControllerEmulator(world)
    frame = encode(42, Op.PULSE_BATCH, READ + pulse(1, 2, 3))[:-1]
    first = board.handle(frame)
    g_after_one = world.conductance(1)[2, 3]
    again = board.handle(frame)
    assert again == first and board.executed == 1
    assert world.conductance(1)[2, 3] == g_after_one
    board.handle(encode(43, Op.PULSE_BATCH, READ + pulse(1, 2, 3))[:-1])
    assert board.executed == 2


def test_a_request_during_another_gets_busy_and_is_not_cached():
    board = MacroControllerEmulator(SimWorld(seed=7))
    frame = encode(1, Op.IDENTIFY)[:-1]
    with board._busy:  # a request is executing (the firmware's main loop is inside a handler)
        busy = decode(board.handle(frame))
    assert busy.payload[0] == Status.BUSY and busy.seq == 1
    assert decode(board.handle(frame)).payload[0] == Status.OK  # the retry executes


def test_staged_payload_executes_only_when_length_and_crc32_match():
    world = SimWorld(seed=7)
    board = MacroControllerEmulator(world)
    payload = READ + b"".join(pulse(0, r, 0) for r in range(8))
    half = len(payload) // 2
    assert ask(board, 1, Op.STAGE, struct.pack("<I", 0) + payload[:half]).payload[0] == Status.OK
    reply = ask(board, 2, Op.STAGE, struct.pack("<I", half + 5) + payload[half:])
    assert reply.payload[0] == Status.BAD_ARGUMENT  # a gap in the staging buffer
    ok = ask(board, 3, Op.STAGE, struct.pack("<I", half) + payload[half:])
    assert struct.unpack("<I", ok.payload[1:]) == (len(payload),)
    wrong = ask(board, 4, Op.EXEC_STAGED, struct.pack("<BII", Op.PULSE_BATCH, len(payload), 0))
    assert wrong.payload[0] == Status.BAD_ARGUMENT and b"CRC-32" in wrong.payload
    run = ask(board, 5, Op.EXEC_STAGED, struct.pack("<BII", Op.PULSE_BATCH, len(payload), zlib.crc32(payload)))
    assert run.payload[0] == Status.OK and len(run.payload) == 1 + 8 * 4
    assert np.all(np.frombuffer(run.payload[1:], "<f4") > 0)


def test_a_batch_whose_reply_would_not_fit_a_frame_is_refused_before_touching_the_world():
    world = SimWorld(seed=7)
    board = MacroControllerEmulator(world)
    t0 = world.clock.now()
    reply = ask(board, 1, Op.READ_BATCH, READ + bytes(3 * 20000))
    assert reply.payload[0] == Status.BAD_LENGTH and world.clock.now() == t0


def test_random_bytes_on_the_socket_do_not_hang_the_server_and_the_link_resynchronises():
    board = MacroControllerEmulator(SimWorld(seed=7))
    rng = np.random.default_rng(0)
    with LoopbackServer(board.handle, delimiter=b"\x00", name="macro_controller") as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=2.0) as sock:
        sock.sendall(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes() + b"\x00")
        sock.sendall(encode(9, Op.IDENTIFY))
        data = b""
        while True:
            data += sock.recv(65536)
            frames = [decode(m) for m in data.split(b"\x00")[:-1] if m]
            if frames and frames[-1].seq == 9 and frames[-1].payload[0] == Status.OK:
                break
    assert all(f.payload[0] != Status.OK for f in frames[:-1])
