"""Exact transcripts: the bytes each MacroController call puts on the wire.

Expected payloads are packed field by field with ``struct`` from the layouts in
docs/macro-controller-protocol.md (not with the driver's numpy dtypes), so a change of
layout on either side shows here. The board emulator's ``received`` log is the tap.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from instruments.limits import Limits
from instruments.macro_controller import LayerRegion, MacroController
from instruments.macro_controller_wire import decode, encode
from instruments.serial_link import SerialLink
from instruments.sim.macro_controller import MacroControllerEmulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld

LAYERS = [
    LayerRegion(0, 0, 0, 2, 14, 1, "relu", 20e3),
    LayerRegion(1, 0, 0, 14, 14, 1, "relu", 20e3),
    LayerRegion(2, 0, 0, 14, 2, 1, "linear", 10e3),
]
EMB = np.linspace(-0.2, 0.2, 10 * 14).reshape(10, 14)
COND = np.full(14, 0.05)
A, B, C = -0.5 * np.ones(10), np.ones(10), np.linspace(0.1, 0.3, 10)
X0 = np.array([[0.1, -0.2], [0.3, 0.05], [0.0, 0.2], [-0.1, -0.1]])


class Tap:
    def __init__(self, **driver) -> None:
        self.world = SimWorld(seed=2)
        self.board = MacroControllerEmulator(self.world)
        self.server = LoopbackServer(self.board.handle, delimiter=b"\x00", name="macro_controller").start()
        self.link = SerialLink.open(self.server.url, timeout=2.0)
        self.ctl = MacroController(self.link, Limits(), **driver)

    def close(self) -> None:
        self.link.close()
        self.server.stop()


@pytest.fixture(scope="module")
def tap():
    t = Tap()
    yield t
    t.close()


def f32s(values) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def load_everything(c: MacroController) -> None:
    c.load_mapping(LAYERS, 0.1)
    c.set_streams(1e-5, EMB, COND, A, B, C)
    c.set_initial(X0)


def run_then_fetch(c: MacroController) -> None:
    load_everything(c)
    c.run_samples(4, 1e-4, sde=True, seed=9)
    c.fetch_end_values()


CASES = {
    "identify": (lambda c: c.identify(), 0x01, b""),
    "status": (lambda c: c.status(), 0x02, b""),
    "safe_state": (lambda c: c.safe_state(), 0x03, b""),
    "route": (lambda c: c.route(1, 2, 3), 0x10, bytes([1, 2, 3])),
    "unroute": (lambda c: c.unroute(), 0x11, b""),
    "pulse_batch": (
        lambda c: c.pulse_batch(0, [1, 2], 3, [1, -1], [1.2, 1.5], [1e-7, 2e-7], [1.0, 1.1]),
        0x20,
        struct.pack("<ff", 0.1, 1e-6)
        + struct.pack("<BBBbfff", 0, 1, 3, 1, 1.2, 1e-7, 1.0)
        + struct.pack("<BBBbfff", 0, 2, 3, -1, 1.5, 2e-7, 1.1),
    ),
    "read_batch": (
        lambda c: c.read_batch(1, [0, 1], [5, 6], bias=0.2, window=2e-6),
        0x21,
        struct.pack("<ff", 0.2, 2e-6) + bytes([1, 0, 5, 1, 1, 6]),
    ),
    "read_macro": (lambda c: c.read_macro(3, 0.15, 1e-5), 0x22, struct.pack("<Bff", 3, 0.15, 1e-5)),
    "load_mapping": (
        lambda c: c.load_mapping(LAYERS, 0.1),
        0x30,
        struct.pack("<fB", 0.1, 3)
        + struct.pack("<8Bf", 0, 0, 0, 2, 14, 1, 1, 0, 20e3)
        + struct.pack("<8Bf", 1, 0, 0, 14, 14, 1, 1, 0, 20e3)
        + struct.pack("<8Bf", 2, 0, 0, 14, 2, 1, 0, 0, 10e3),
    ),
    "set_streams": (
        lambda c: c.set_streams(1e-5, EMB, COND, A, B, C),
        0x31,
        struct.pack("<fHH", 1e-5, 10, 14) + f32s(EMB.ravel()) + f32s(COND) + f32s(A) + f32s(B) + f32s(C),
    ),
    "set_initial": (lambda c: c.set_initial(X0), 0x32, struct.pack("<IH", 4, 2) + f32s(X0.ravel())),
    "run_samples": (
        lambda c: (load_everything(c), c.run_samples(4, 1e-4, sde=True, seed=9)),
        0x33,
        struct.pack("<IfBI", 4, 1e-4, 1, 9),
    ),
    "fetch_end_values": (run_then_fetch, 0x34, struct.pack("<II", 0, (65535 - 1 - 14) // 4)),
    "loop_info": (lambda c: c.loop_info(), 0x35, b""),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_call_sends_exactly_the_documented_frame(tap, name):
    call, op, payload = CASES[name]
    call(tap.ctl)
    sent = tap.board.received[-1]
    seq = decode(sent).seq
    assert sent == encode(seq, op, payload)[:-1]


def test_seq_increments_by_one_per_request_and_wraps_after_255():
    tap = Tap()
    try:
        for _ in range(257):
            tap.ctl.status()
        seqs = [decode(m).seq for m in tap.board.received]
        assert seqs[:3] == [1, 2, 3] and seqs[254:257] == [255, 0, 1]
    finally:
        tap.close()


def test_first_identify_is_the_documented_worked_example():
    tap = Tap()
    try:
        tap.ctl.identify()
        assert tap.board.received[0] == bytes.fromhex("03 01 01 01 03 44 c5")
    finally:
        tap.close()


def test_payload_larger_than_max_payload_goes_as_stage_chunks_then_exec_staged():
    tap = Tap(max_payload=64)
    try:
        tap.ctl.set_initial(X0[:, :1].repeat(8, axis=0))  # 32 x 1 values: 6 + 128 bytes
        full = struct.pack("<IH", 32, 1) + f32s(np.repeat(X0[:, 0], 8))
        sent = [decode(m) for m in tap.board.received]
        chunks = [(f.op, f.payload) for f in sent[:-1]]
        assert chunks == [(0x40, struct.pack("<I", o) + full[o:o + 60]) for o in range(0, len(full), 60)]
        assert (sent[-1].op, sent[-1].payload) == (0x41, struct.pack("<BII", 0x32, len(full), zlib.crc32(full)))
    finally:
        tap.close()
