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

Each opcode is one method of :class:`MacroControllerOps`: check the payload's size and
ranges, decode it with ``np.frombuffer`` into the structured dtypes of
:mod:`instruments.macro_controller_wire`, hand it to the world's vectorised methods in
one call, and return the reply body (status byte excluded). Problems are raised as :class:`Refusal` with the status
and error text the host receives. Absolute ratings of the board's hardware (the host's
``[limits]`` envelope sits inside them) are checked there too, as firmware would: see
``RATINGS``.
"""

from __future__ import annotations

import logging
import math
import threading
import zlib
from collections import deque
from collections.abc import Callable

import numpy as np

from instruments import macro_controller_wire as ops
from instruments.macro_controller_wire import (
    OP_UNREADABLE,
    REPLY_FLAG,
    FrameDamaged,
    FrameLengthError,
    Op,
    Status,
    decode,
    encode,
    peek_seq_op,
)

log = logging.getLogger("rrambench.sim.macro_controller")

IDENTITY = "RRAMBENCH,MACRO-CONTROLLER-SIM,SIM0001,{protocol}.0"
#: Bytes the staging buffer holds (large host-to-board payloads).
MAX_STAGED = 16 * 1024 * 1024
#: Absolute ratings of the board: pulse amplitude V, gate V, pulse width s, read bias and DAC V.
RATINGS = {"amplitude": 5.0, "gate": 5.0, "width_min": 1e-9, "width_max": 1.0, "bias": 1.0, "dac": 2.5}


class Refusal(Exception):
    """A request the board refuses: status code and error text for the reply."""

    def __init__(self, status: Status, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


#: Raw messages the emulator keeps (``received``).
RECEIVED_KEPT = 1024


class MacroControllerEmulator:
    """The controller board's firmware, answering frames over one world.

    ``received`` keeps the last :data:`RECEIVED_KEPT` raw messages (for tests: proof that
    nothing was sent), ``count`` counts every message handled. Not more: a 2,048-cell pulse
    batch is ~35 kB, and 10,000 of them held 350 MB in a long session.
    """

    def __init__(self, world, *, max_staged: int = MAX_STAGED) -> None:
        self.world = world
        self.ops = MacroControllerOps(world)
        self.max_staged = int(max_staged)
        self.received: deque[bytes] = deque(maxlen=RECEIVED_KEPT)
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
            Op.LOOP_INFO: self.ops.loop_info,
            Op.EVAL_LAYER: self.ops.eval_layer,
            Op.MONITOR_SELECT: self.ops.monitor_select,
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


class MacroControllerOps:
    """The operations of the board on ``world`` (and the board's own buffers)."""

    def __init__(self, world) -> None:
        self.world = world
        self.mapping_loaded = False
        self.streams_loaded = False
        self._x0: np.ndarray | None = None
        self._end: np.ndarray | None = None
        self._dac = {"initial": 0.0, "streams": 0.0}  # V, largest |output| of each DAC group

    # -- state ---------------------------------------------------------------------
    def safe_state(self, payload: bytes) -> bytes:
        _expect(payload, 0)
        self.world.safe_state()
        return b""

    def route(self, payload: bytes) -> bytes:
        _expect(payload, ops.CELL.size)
        m, r, c = ops.CELL.unpack(payload)
        self._check_cells(np.array([m]), np.array([r]), np.array([c]))
        self.world.route(m, r, c)
        return b""

    def unroute(self, payload: bytes) -> bytes:
        _expect(payload, 0)
        self.world.unroute()
        return b""

    # -- array ---------------------------------------------------------------------
    def pulse_batch(self, payload: bytes) -> bytes:
        bias, window, cells = self._batch(payload, ops.PULSE_CELL)
        pol, amp, width, gate = (cells[k] for k in ("polarity", "amplitude", "width", "gate"))
        pulsed = pol != 0  # 0: read only, no pulse (write-verify's confirmation reads ride along)
        if not np.all((pol == 1) | (pol == -1) | (~pulsed & (amp == 0))):
            raise Refusal(Status.BAD_ARGUMENT, "polarity must be +1 or -1, or 0 (read only) with amplitude 0")
        _rating("amplitude", amp, 0.0, RATINGS["amplitude"], "V")
        _rating("gate", gate, 0.0, RATINGS["gate"], "V")
        _rating("width", width, RATINGS["width_min"], RATINGS["width_max"], "s")
        m, r, c = cells["macro"], cells["row"], cells["col"]
        with self.world.lock:
            n = int(np.count_nonzero(pulsed))
            if n:
                # the pulses first, the reads after them (how write-verify lists them): a slice,
                # no copy of each field; else the pulsed cells wherever they are
                p = slice(0, n) if pulsed[:n].all() else pulsed
                self.world.pulse(m[p], r[p], c[p], pol[p].astype(int), amp[p].astype(float),
                                 width[p].astype(float), gate[p].astype(float))
            g = self.world.read(m, r, c, bias=bias, window=window)
        return np.asarray(g, dtype=ops.VALUE).tobytes()

    def read_batch(self, payload: bytes) -> bytes:
        bias, window, cells = self._batch(payload, ops.READ_CELL)
        g = self.world.read(cells["macro"], cells["row"], cells["col"], bias=bias, window=window)
        return np.asarray(g, dtype=ops.VALUE).tobytes()

    def read_macro(self, payload: bytes) -> bytes:
        _expect(payload, ops.READ_MACRO_REQ.size)
        macro, bias, window = ops.READ_MACRO_REQ.unpack(payload)
        self._check_read(bias, window)
        if macro >= self.world.n_macros:
            raise Refusal(Status.BAD_ARGUMENT, f"macro {macro} out of range 0..{self.world.n_macros - 1}")
        g = np.asarray(self.world.read_macro(macro, bias=bias, window=window), dtype=ops.VALUE)
        return ops.MACRO_SHAPE.pack(*g.shape) + g.tobytes()

    # -- closed loop ---------------------------------------------------------------
    def load_mapping(self, payload: bytes) -> bytes:
        if len(payload) < ops.MAPPING_HEAD.size:
            raise Refusal(Status.BAD_LENGTH, "LOAD_MAPPING needs v_bias and a layer count")
        v_bias, n = ops.MAPPING_HEAD.unpack_from(payload)
        _expect(payload, ops.MAPPING_HEAD.size + n * ops.LAYER.itemsize)
        records = np.frombuffer(payload, ops.LAYER, n, ops.MAPPING_HEAD.size)
        if n == 0 or np.any(records["activation"] >= len(ops.ACTIVATIONS)):
            raise Refusal(Status.BAD_ARGUMENT, "mapping needs >= 1 layer with activation codes 0..1")
        _rating("v_bias", np.array([abs(v_bias)]), 0.0, RATINGS["dac"], "V")
        _rating("r_feedback", records["r_feedback"], 1.0, 1e9, "ohm")
        if np.any(records["macro"] >= self.world.n_macros):
            raise Refusal(Status.BAD_ARGUMENT, f"layer macro outside 0..{self.world.n_macros - 1}")
        self.world.loop.load_mapping(ops.decode_layers(records), float(v_bias))
        self.mapping_loaded = True
        return b""

    def set_streams(self, payload: bytes) -> bytes:
        if len(payload) < ops.STREAMS_HEAD.size:
            raise Refusal(Status.BAD_LENGTH, "SET_STREAMS needs dt, T and H")
        dt, t_steps, hidden = ops.STREAMS_HEAD.unpack_from(payload)
        n_values = t_steps * hidden + hidden + 3 * t_steps
        _expect(payload, ops.STREAMS_HEAD.size + n_values * ops.VALUE.itemsize)
        if not (np.isfinite(dt) and dt > 0) or t_steps == 0 or hidden == 0:
            raise Refusal(Status.BAD_ARGUMENT, f"dt {dt} s, T {t_steps}, H {hidden} must all be positive")
        values = np.frombuffer(payload, ops.VALUE, n_values, ops.STREAMS_HEAD.size).astype(float)
        emb = values[: t_steps * hidden].reshape(t_steps, hidden)
        cond = values[t_steps * hidden : t_steps * hidden + hidden]
        a, b, c = values[t_steps * hidden + hidden :].reshape(3, t_steps)
        _rating("DAC voltage", np.abs(np.concatenate([emb.ravel(), cond, c])), 0.0, RATINGS["dac"], "V")
        if not np.all(np.isfinite(a) & np.isfinite(b)):
            raise Refusal(Status.BAD_ARGUMENT, "gain streams a, b must be finite")
        self.world.loop.set_streams(float(dt), emb, cond, a, b, c)
        self.streams_loaded = True
        self._drive_dacs("streams", max(np.abs(emb[0]).max(), np.abs(cond).max(), abs(c[0])))
        return b""

    def set_initial(self, payload: bytes) -> bytes:
        if len(payload) < ops.INITIAL_HEAD.size:
            raise Refusal(Status.BAD_LENGTH, "SET_INITIAL needs N and D")
        n, d = ops.INITIAL_HEAD.unpack_from(payload)
        _expect(payload, ops.INITIAL_HEAD.size + n * d * ops.VALUE.itemsize)
        if n == 0 or d == 0:
            raise Refusal(Status.BAD_ARGUMENT, f"initial conditions need N >= 1 and D >= 1, got {n} x {d}")
        x0 = np.frombuffer(payload, ops.VALUE, n * d, ops.INITIAL_HEAD.size).astype(float).reshape(n, d)
        _rating("initial condition", np.abs(x0), 0.0, RATINGS["dac"], "V")
        self._x0 = x0
        self._drive_dacs("initial", np.abs(x0).max())
        return b""

    def run_samples(self, payload: bytes) -> bytes:
        _expect(payload, ops.RUN_REQ.size)
        count, duration, sde, seed = ops.RUN_REQ.unpack(payload)
        if self._x0 is None or not (self.mapping_loaded and self.streams_loaded):
            raise Refusal(Status.BAD_ARGUMENT, "load a mapping, the DAC streams and initial conditions first")
        if not 1 <= count <= self._x0.shape[0]:
            raise Refusal(Status.BAD_ARGUMENT, f"count {count} outside 1..{self._x0.shape[0]} loaded samples")
        if not (np.isfinite(duration) and duration > 0):
            raise Refusal(Status.BAD_ARGUMENT, f"duration must be > 0 s, got {duration}")
        w = self.world
        with w.lock:
            t0 = w.clock.now()
            result = w.loop.run(self._x0[:count], float(duration), bool(sde), np.random.default_rng(seed))
            self._end = np.asarray(result.end, dtype=float)
            w.fire_trigger(result.traces, result.trace_dt, t0)
        return b""

    def fetch_end(self, payload: bytes) -> bytes:
        _expect(payload, ops.FETCH_REQ.size)
        first, max_values = ops.FETCH_REQ.unpack(payload)
        if self._end is None:
            raise Refusal(Status.BAD_ARGUMENT, "no run has finished yet")
        total, dims = self._end.shape
        if first > total:
            raise Refusal(Status.BAD_ARGUMENT, f"first sample {first} beyond {total}")
        room = (ops.REPLY_ROOM - ops.FETCH_REPLY.size) // (ops.VALUE.itemsize * dims)
        count = min(total - first, max_values // dims, room)
        if count == 0 and first < total:
            raise Refusal(Status.BAD_ARGUMENT, f"max_values {max_values} holds no sample of {dims} values")
        block = self._end[first : first + count].astype(ops.VALUE)
        return ops.FETCH_REPLY.pack(first, count, total, dims) + block.tobytes()

    def loop_info(self, payload: bytes) -> bytes:
        """The loop's constants: those of the world's circuit (built with the wire's LOOP_*),
        so what the board reports is what it integrates with."""
        _expect(payload, 0)
        with self.world.lock:  # the seed board's run swaps the circuit's settings under this lock
            p = self.world.loop.params
            return ops.LoopInfo(p.rc, p.dt_step, p.v_rail).pack()

    def eval_layer(self, payload: bytes) -> bytes:
        """One layer region on the given input voltages, outside the loop: the DACs drive its
        rows for one conversion each and return to 0 V; mapping and streams stay loaded."""
        head = ops.EVAL_HEAD.size + ops.LAYER.itemsize
        if len(payload) < head:
            raise Refusal(Status.BAD_LENGTH, f"EVAL_LAYER needs v_bias, seed, N and a layer record ({head} bytes)")
        v_bias, seed, n = ops.EVAL_HEAD.unpack_from(payload)
        record = np.frombuffer(payload, ops.LAYER, 1, ops.EVAL_HEAD.size)
        n_in, n_out = int(record["n_in"][0]), int(record["n_out"][0])
        _expect(payload, head + n * n_in * ops.VALUE.itemsize)
        if n == 0 or n_in == 0 or n_out == 0 or record["activation"][0] >= len(ops.ACTIVATIONS):
            raise Refusal(Status.BAD_ARGUMENT, "EVAL_LAYER needs N >= 1 and a layer with n_in, n_out >= 1 "
                          "and activation code 0..1")
        if n * n_out * ops.VALUE.itemsize > ops.REPLY_ROOM:
            raise Refusal(Status.BAD_LENGTH, f"{n} vectors of {n_out} outputs: the reply would exceed one frame")
        _rating("v_bias", np.array([abs(v_bias)]), 0.0, RATINGS["dac"], "V")
        _rating("r_feedback", record["r_feedback"], 1.0, 1e9, "ohm")
        x = np.frombuffer(payload, ops.VALUE, n * n_in, head).astype(float).reshape(n, n_in)
        _rating("input voltage", np.abs(x), 0.0, RATINGS["dac"], "V")
        region = ops.decode_layers(record)[0]
        y = self.world.loop.evaluate_layer(region, float(v_bias), x, np.random.default_rng(seed))
        return np.asarray(y, dtype=ops.VALUE).tobytes()

    def monitor_select(self, payload: bytes) -> bytes:
        """The analog monitor multiplexer: one node of the loaded network (a layer's activation
        output) onto the monitor output, scope channel 4; layer MONITOR_OFF: its default source."""
        _expect(payload, ops.MONITOR_REQ.size)
        layer, node = ops.MONITOR_REQ.unpack(payload)
        if layer == ops.MONITOR_OFF:
            self.world.loop.select_monitor(None)
            return b""
        if not self.mapping_loaded:
            raise Refusal(Status.BAD_ARGUMENT, "load a mapping first: the monitor selects a node of the network")
        self.world.loop.select_monitor(layer, node)   # ValueError (BAD_ARGUMENT) outside the mapping
        return b""

    def _drive_dacs(self, group: str, volts: float) -> None:
        """Loaded DACs output their (first) value at once: the world sees the largest |V|."""
        self._dac[group] = float(volts)
        with self.world.lock:
            if self.world.outputs.dac_max == 0.0:  # zeroed by a safe state since
                self._dac = {k: (v if k == group else 0.0) for k, v in self._dac.items()}
            self.world.outputs.dac_max = max(self._dac.values())

    # -- checks --------------------------------------------------------------------
    def _batch(self, payload: bytes, record: np.dtype) -> tuple[float, float, np.ndarray]:
        head = ops.READ_SETTINGS.size
        if len(payload) < head or (len(payload) - head) % record.itemsize:
            raise Refusal(Status.BAD_LENGTH, f"payload must be {head} + {record.itemsize} n bytes, got {len(payload)}")
        bias, window = ops.READ_SETTINGS.unpack_from(payload)
        self._check_read(bias, window)
        cells = np.frombuffer(payload, record, offset=head)
        if cells.size * ops.VALUE.itemsize > ops.REPLY_ROOM:
            raise Refusal(Status.BAD_LENGTH, f"{cells.size} cells: the reply would exceed one frame "
                          f"(at most {ops.REPLY_ROOM // ops.VALUE.itemsize} cells)")
        self._check_cells(cells["macro"], cells["row"], cells["col"])
        return float(bias), float(window), cells

    def _check_cells(self, m: np.ndarray, r: np.ndarray, c: np.ndarray) -> None:
        """Refuse a cell outside the array; ``m``, ``r``, ``c``: unsigned indices of equal size."""
        w = self.world
        # Three reductions on the way in (every batch); which cell is bad only on refusal.
        if m.size and (m.max() >= w.n_macros or r.max() >= w.rows or c.max() >= w.cols):
            bad = (m >= w.n_macros) | (r >= w.rows) | (c >= w.cols)
            k = int(np.argmax(bad))
            raise Refusal(Status.BAD_ARGUMENT, f"cell {k} ({m[k]}, {r[k]}, {c[k]}) outside "
                          f"{w.n_macros} macros of {w.rows}x{w.cols}")

    @staticmethod
    def _check_read(bias: float, window: float) -> None:
        if not (math.isfinite(bias) and abs(bias) <= RATINGS["bias"]):
            raise Refusal(Status.BAD_ARGUMENT, f"read bias {bias} V outside +-{RATINGS['bias']} V")
        if not (math.isfinite(window) and 0 < window <= 1.0):
            raise Refusal(Status.BAD_ARGUMENT, f"read window {window} s outside (0, 1] s")


def _expect(payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise Refusal(Status.BAD_LENGTH, f"payload must be {size} bytes, got {len(payload)}")


def _rating(name: str, values: np.ndarray, lo: float, hi: float, unit: str) -> None:
    """Refuse values outside [lo, hi] (or non-finite): the board's absolute ratings.

    ``lo`` and ``hi`` are finite, so the two reductions also catch every non-finite value (a
    NaN is the minimum and the maximum of any array holding one; an infinity lies outside),
    and they run on the values as received (float32 from a frame, no conversion): this
    runs three times on every pulse batch.
    """
    values = np.asarray(values)
    if values.size and not (values.min() >= lo and values.max() <= hi):
        raise Refusal(Status.BAD_ARGUMENT, f"{name} outside the board's rating [{lo:g}, {hi:g}] {unit}")


__all__ = ["IDENTITY", "MAX_STAGED", "RATINGS", "MacroControllerEmulator", "MacroControllerOps", "Refusal"]
