"""Firmware emulator of the macro controller board over a :class:`SimWorld`.

``MacroControllerEmulator(world).handle(message)`` takes one wire message (COBS, delimiter
removed) and returns the COBS-encoded reply frame (the server appends the
delimiter), or None for an empty message. It behaves like the firmware described
in ``docs/macro-controller-protocol.md``:

- a damaged frame (COBS, length, CRC) is answered with BAD_CRC and never executed;
- an intact frame identical to the last executed one (same seq, same bytes) is a
  host retransmission and gets the cached reply without executing again;
- a request arriving while another is executing gets BUSY;
- a refused request gets its status and an error text, kept for STATUS;
- nothing a host sends can raise out of ``handle``.

Every per-cell payload is decoded with ``np.frombuffer`` into a structured array and
handed to the world's vectorised methods in one call.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections import deque
from collections.abc import Callable

from instruments import macro_controller_wire as ops
from instruments.macro_controller_framing import (
    OP_UNREADABLE,
    REPLY_FLAG,
    FrameDamaged,
    FrameLengthError,
    Status,
    decode,
    encode,
    peek_seq_op,
)
from instruments.macro_controller_wire import Op
from instruments.sim.macro_controller_ops import MacroControllerOps, Refusal

log = logging.getLogger("rrambench.sim.macro_controller")

IDENTITY = "RRAMBENCH,MACRO-CONTROLLER-SIM,SIM0001,{protocol}.0"
#: Bytes the staging buffer holds (large host-to-board payloads).
MAX_STAGED = 16 * 1024 * 1024


class MacroControllerEmulator:
    """The controller board's firmware, answering frames over one world.

    ``received`` keeps the last 10000 raw messages (for tests: proof that nothing
    was sent), ``count`` counts every message handled.
    """

    def __init__(self, world, *, max_staged: int = MAX_STAGED) -> None:
        self.world = world
        self.ops = MacroControllerOps(world)
        self.max_staged = int(max_staged)
        self.received: deque[bytes] = deque(maxlen=10000)
        self.count = 0
        self.refused = 0
        self.executed = 0  # requests executed (cache hits and damaged frames excluded)
        self._busy = threading.Lock()
        self._last_request: bytes | None = None
        self._last_reply = b""
        self._last_error = (0, "")
        self._staged = bytearray()
        self._handlers: dict[int, Callable[[bytes], bytes]] = {
            Op.IDENTIFY: self._identify,
            Op.STATUS: self._status,
            Op.SAFE_STATE: self.ops.safe_state,
            Op.ROUTE: self.ops.route,
            Op.UNROUTE: self.ops.unroute,
            Op.PULSE_BATCH: self.ops.pulse_batch,
            Op.READ_BATCH: self.ops.read_batch,
            Op.READ_MACRO: self.ops.read_macro,
            Op.LOAD_MAPPING: self.ops.load_mapping,
            Op.SET_STREAMS: self.ops.set_streams,
            Op.SET_INITIAL: self.ops.set_initial,
            Op.RUN_SAMPLES: self.ops.run_samples,
            Op.FETCH_END: self.ops.fetch_end,
            Op.STAGE: self._stage,
            Op.EXEC_STAGED: self._exec_staged,
        }

    # -- the firmware's main loop body ---------------------------------------------
    def handle(self, request: bytes) -> bytes | None:
        """Reply frame (COBS, no delimiter) to one message, or None for an empty one."""
        if not request:
            return None
        self.received.append(bytes(request))
        self.count += 1
        try:
            frame = decode(request)
        except FrameDamaged as exc:
            seq, _ = peek_seq_op(request)
            return self._refuse(seq, OP_UNREADABLE, Status.BAD_CRC, f"frame check failed: {exc}")
        except FrameLengthError as exc:
            seq, op = peek_seq_op(request)
            return self._refuse(seq, op | REPLY_FLAG, Status.BAD_LENGTH, str(exc))
        if not self._busy.acquire(blocking=False):
            return self._refuse(frame.seq, frame.op | REPLY_FLAG, Status.BUSY, "busy", remember=False)
        try:
            if request == self._last_request:
                log.debug("seq %d repeated: answered from the reply cache", frame.seq)
                return self._last_reply
            status, body = self._execute(frame.op, frame.payload)
            reply = encode(frame.seq, frame.op | REPLY_FLAG, bytes([status]) + body)[:-1]
            self._last_request, self._last_reply = bytes(request), reply
            return reply
        finally:
            self._busy.release()

    def _execute(self, op: int, payload: bytes) -> tuple[Status, bytes]:
        handler = self._handlers.get(op)
        try:
            if handler is None:
                raise Refusal(Status.UNKNOWN_OP, f"unknown op 0x{op:02x}")
            body = handler(payload)
            self.executed += 1
            if len(body) > ops.REPLY_ROOM:
                raise Refusal(Status.BAD_LENGTH, f"reply of {len(body)} bytes exceeds a frame; send fewer cells")
            return Status.OK, body
        except Refusal as exc:
            return self._note(exc.status, exc.text)
        except ValueError as exc:  # the world refused an argument
            return self._note(Status.BAD_ARGUMENT, str(exc))
        except Exception as exc:  # a firmware fault must answer, not kill the board
            log.exception("board: internal error on op 0x%02x", op)
            return self._note(Status.INTERNAL, f"{type(exc).__name__}: {exc}")

    def _note(self, status: Status, text: str) -> tuple[Status, bytes]:
        self.refused += 1
        self._last_error = (int(status), text)
        log.debug("refused: %s %s", status.name, text)
        return status, text.encode("utf-8")

    def _refuse(self, seq: int, op: int, status: Status, text: str, remember: bool = True) -> bytes:
        if remember:
            self._note(status, text)
        return encode(seq, op, bytes([status]) + text.encode("utf-8"))[:-1]

    # -- operations handled here (they touch the board's own state) ------------------
    def _identify(self, payload: bytes) -> bytes:
        _expect(payload, 0)
        w = self.world
        head = ops.IDENTIFY_REPLY.pack(ops.PROTOCOL_VERSION, self.max_staged, w.n_macros, w.rows, w.cols)
        return head + IDENTITY.format(protocol=ops.PROTOCOL_VERSION).encode("ascii")

    def _status(self, payload: bytes) -> bytes:
        _expect(payload, 0)
        code, text = self._last_error
        self._last_error = (0, "")
        out = self.world.outputs
        routed = out.routed
        m, r, c = routed if routed is not None else (0, 0, 0)
        head = ops.STATUS_REPLY.pack(
            code, routed is not None, m, r, c, bool(out.integrators_running), self.ops.mapping_loaded,
            float(out.dac_max), self.world.clock.now(), self.count & 0xFFFFFFFF, self.refused & 0xFFFFFFFF,
        )
        return head + text.encode("utf-8")

    def _stage(self, payload: bytes) -> bytes:
        if len(payload) < ops.STAGE_HEAD.size:
            raise Refusal(Status.BAD_LENGTH, "STAGE needs a 4-byte offset")
        (offset,) = ops.STAGE_HEAD.unpack_from(payload)
        data = payload[ops.STAGE_HEAD.size :]
        if offset > len(self._staged):
            raise Refusal(Status.BAD_ARGUMENT, f"STAGE offset {offset} beyond the {len(self._staged)} staged bytes")
        if offset + len(data) > self.max_staged:
            raise Refusal(Status.BAD_ARGUMENT, f"staging buffer holds {self.max_staged} bytes")
        del self._staged[offset:]
        self._staged += data
        return ops.U32.pack(len(self._staged))

    def _exec_staged(self, payload: bytes) -> bytes:
        _expect(payload, ops.EXEC_STAGED_REQ.size)
        op, length, crc = ops.EXEC_STAGED_REQ.unpack(payload)
        if op in (Op.STAGE, Op.EXEC_STAGED) or op not in self._handlers:
            raise Refusal(Status.BAD_ARGUMENT, f"op 0x{op:02x} cannot run from the staging buffer")
        staged = bytes(self._staged)
        if len(staged) != length or zlib.crc32(staged) != crc:
            raise Refusal(Status.BAD_ARGUMENT,
                          f"staged data ({len(staged)} bytes) does not match {length} bytes / CRC-32 {crc:08x}")
        body = self._handlers[op](staged)
        self._staged.clear()
        return body


def _expect(payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise Refusal(Status.BAD_LENGTH, f"payload must be {size} bytes, got {len(payload)}")


__all__ = ["IDENTITY", "MAX_STAGED", "MacroControllerEmulator", "Refusal"]
