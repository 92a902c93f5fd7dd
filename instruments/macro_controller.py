"""Driver of our macro controller board (binary framed protocol over pyserial).

One method per board function, SI units in and out (V, S, s, ohm). Every source
value is checked against the bench's safety envelope before any byte is sent.
The protocol (frames, opcodes, payloads, status codes, retries, batching) is
specified in ``docs/macro-controller-protocol.md``; frames and payload layouts live in
:mod:`instruments.macro_controller_wire`.

Reliability: each request gets the next ``seq``; on a damaged reply, a BAD_CRC
status, BUSY, or a timeout the same frame (same ``seq``) is sent again, up to
``retries`` times. The board answers a repeated frame from its reply cache, so a
retried pulse batch is never applied twice. ``round_trips`` counts completed
request/reply exchanges, ``retries`` the retransmissions.

Batching: a pulse or read batch goes out as few frames as possible; each frame
holds at most :func:`~instruments.macro_controller_wire.max_cells` cells for the
driver's ``max_payload`` (4095 pulses or 16383 reads at the 64 KiB maximum), so
the 2048 cells of two macros are one round trip. Host-to-board payloads larger
than a frame (long DAC streams, many initial conditions) are uploaded in chunks
with STAGE and executed with EXEC_STAGED.
"""

from __future__ import annotations

import dataclasses
import json
import time
import zlib
from collections.abc import Sequence

import numpy as np

from instruments import macro_controller_wire as ops
from instruments.errors import InstrumentError, InstrumentTimeout, LinkError
from instruments.limits import Limits
from instruments.macro_controller_wire import (
    MAX_PAYLOAD,
    REPLY_FLAG,
    BoardInfo,
    BoardStatus,
    FrameError,
    LayerRegion,
    LoopInfo,
    Op,
    Status,
    decode,
    encode,
)
from instruments.serial_link import SerialLink
from instruments.transport import Settings

__all__ = ["BoardInfo", "BoardStatus", "LayerRegion", "LoopInfo", "MacroController"]

_RETRY = (Status.BAD_CRC, Status.BUSY)
#: Units of the settings :meth:`MacroController.snapshot` reports (others are dimensionless).
SNAPSHOT_UNITS = {"staging_capacity": "B", "dac_max": "V", "board_clock": "s", "loop_rc": "s", "loop_dt_step": "s",
                  "loop_v_rail": "V", "mapping_v_bias": "V", "stream_dt": "s", "max_payload": "B"}


class MacroController:
    """Macro controller board: pulses, reads, routing, DAC streams, closed-loop runs, layers
    evaluated open-loop.

    Parameters
    ----------
    link:
        The board's serial link (``SerialLink.open("socket://...")`` or a tty).
    limits:
        Safety envelope; every amplitude, gate, width and DAC voltage is checked.
    retries:
        Retransmissions of one frame before giving up (>= 0).
    max_payload:
        Largest frame payload this driver sends or asks for, bytes (64..65535).
        Lower it on a noisy link: a frame survives with probability (1 - p)^bytes.
    busy_wait:
        Pause before retrying a BUSY reply, s (>= 0).
    """

    name = "macro_controller"

    def __init__(
        self,
        link: SerialLink,
        limits: Limits,
        *,
        retries: int = 8,
        max_payload: int = MAX_PAYLOAD,
        busy_wait: float = 0.01,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if not 64 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload must be in 64..{MAX_PAYLOAD} bytes, got {max_payload}")
        if not busy_wait >= 0:
            raise ValueError(f"busy_wait must be >= 0 s, got {busy_wait}")
        self._link, self._limits = link, limits
        self.max_retries, self.max_payload, self.busy_wait = retries, max_payload, busy_wait
        self.round_trips = 0
        self.retries = 0
        self._seq = 0
        self._log = link.log
        # What this driver last loaded (the board reports only that a mapping is loaded).
        self.mapping: list[LayerRegion] | None = None
        self.mapping_v_bias: float | None = None
        self.stream_dt: float | None = None  # s, time step of the last DAC streams
        self.stream_steps: int | None = None
        self.monitor: tuple[int, int] | None = None  # (layer, node) last put on the monitor output
        self._loop: LoopInfo | None = None  # the board's loop constants, asked once (they are hardware)
        self._protocol: int | None = None  # the board's protocol version, from its last IDENTIFY

    # -- identity and state ------------------------------------------------------------
    def info(self) -> BoardInfo:
        """Identity, protocol version, staging capacity and array geometry."""
        body = self._request(Op.IDENTIFY)
        protocol, max_staged, n_macros, rows, cols = ops.IDENTIFY_REPLY.unpack_from(body)
        text = body[ops.IDENTIFY_REPLY.size :].decode("utf-8", "replace")
        self._protocol = protocol
        return BoardInfo(text, protocol, max_staged, n_macros, rows, cols)

    def identify(self) -> str:
        """Identity string ``MAKER,MODEL,SERIAL,FIRMWARE`` (like ``*IDN?``)."""
        return self.info().text

    def loop_info(self) -> LoopInfo:
        """The closed loop's constants as the board reports them (LOOP_INFO): RC, fine step, rail."""
        self._loop = LoopInfo.unpack(self._request(Op.LOOP_INFO))
        return self._loop

    @property
    def loop(self) -> LoopInfo:
        """The board's loop constants, asked of it at the first use (fixed when it was built)."""
        return self._loop if self._loop is not None else self.loop_info()

    @property
    def loop_rc(self) -> float:
        """Integrator time constant RC of the board's loop, s (as the board reports it)."""
        return self.loop.rc

    @property
    def loop_dt_step(self) -> float:
        """Fine step of the board's loop, s: the DAC streams' update interval (as the board reports it)."""
        return self.loop.dt_step

    @property
    def loop_v_rail(self) -> float:
        """Rail of the board's activation amplifiers, V (as the board reports it)."""
        return self.loop.v_rail

    def status(self) -> BoardStatus:
        """Board state and its last error (reading clears the error)."""
        return BoardStatus.unpack(self._request(Op.STATUS))

    def safe_state(self) -> None:
        """Integrators reset, DACs to 0 V, pulse generator idle, SMU unrouted; idempotent."""
        self._request(Op.SAFE_STATE)

    def snapshot(self) -> Settings:
        """The board's state (name -> (value, unit)): asked of it (IDENTIFY: firmware,
        protocol, geometry; STATUS: route, integrators, mapping loaded, DAC peak, board
        clock, frame counters; LOOP_INFO, once: the loop's constants), and what this driver last
        loaded (mapping, bias-row voltage, DAC stream time step; None before any).

        Reading STATUS clears the board's last error; the driver has already raised
        every refused request as an :class:`InstrumentError`, so nothing is lost.
        """
        info, status, loop = self.info(), self.status(), self.loop
        values = dict(
            identity=info.text, protocol_version=info.protocol, staging_capacity=info.max_staged,
            macros=info.n_macros, rows=info.rows, cols=info.cols,
            routed=":".join(map(str, status.routed)) if status.routed is not None else "",  # "macro:row:col"
            integrators_running=status.integrators_running, mapping_loaded=status.mapping_loaded,
            dac_max=status.dac_max, board_clock=status.clock, frames_handled=status.frames,
            frames_refused=status.refused, last_error=status.last_error,
            loop_rc=loop.rc, loop_dt_step=loop.dt_step, loop_v_rail=loop.v_rail,
            mapping=None if self.mapping is None else json.dumps([dataclasses.asdict(r) for r in self.mapping]),
            mapping_v_bias=self.mapping_v_bias, stream_dt=self.stream_dt, stream_steps=self.stream_steps,
            monitor="" if self.monitor is None else ":".join(map(str, self.monitor)),  # "layer:node"
            max_payload=self.max_payload, max_retries=self.max_retries,
        )
        return {name: (value, SNAPSHOT_UNITS.get(name, "")) for name, value in values.items()}

    def route(self, macro: int, row: int, col: int) -> None:
        """Connect the external SMU to one cell (any previous route is opened first)."""
        cell = (_index(macro, "macro"), _index(row, "row"), _index(col, "col"))
        self._request(Op.ROUTE, ops.CELL.pack(*cell))

    def unroute(self) -> None:
        """Disconnect the SMU from the array."""
        self._request(Op.UNROUTE)

    # -- array operations --------------------------------------------------------------
    def pulse_batch(self, macro, row, col, polarity, amplitude, width, gate, *,
                    bias: float = 0.1, window: float = 1e-6) -> np.ndarray:
        """Apply one pulse to each listed cell, then read those cells back.

        Arguments broadcast to the number of cells. macro/row/col: cell indices;
        polarity: +1 SET (bit line), -1 RESET (source line), or 0: no pulse, the cell
        is only read (its amplitude must be 0; write-verify's confirmation reads ride in
        the next pulse batch so, not in a round trip of their own); amplitude: pulse
        magnitude in V (>= 0, within the SET or RESET limit); width: s, within the
        pulse width limits; gate: word-line voltage in V. ``bias`` (V) and ``window``
        (s, > 0) set the verify read. Returns the read conductances in S, one per
        cell, in the order given (a cell listed k times is read k times).
        """
        m, r, c, pol, amp, wid, gat = args = [np.asarray(a) for a in (macro, row, col, polarity, amplitude, width,
                                                                      gate)]
        shape = np.broadcast(*args).shape  # refuses arguments that do not broadcast
        # Every check runs on the arguments as given, before broadcasting: a scalar width
        # or gate is checked once, not once per cell (this runs on every write-verify
        # iteration, and its cost is paid again at the board).
        amp = amp.astype(float, copy=False)
        if not (np.abs(pol) == 1).all() and not ((np.abs(pol) == 1) | ((pol == 0) & (amp == 0))).all():
            raise ValueError("polarity must be +1 (SET) or -1 (RESET) for every cell, or 0 (read only) "
                             "with amplitude 0")
        lowest = amp.min() if amp.size else 0.0
        if lowest < 0:
            raise ValueError("amplitude is a magnitude in V and must be >= 0; polarity gives the sign")
        self._limits.pulse_amplitudes(pol, amp)
        self._limits.pulse_width(wid)
        self._limits.gate(gat)
        head = self._read_settings(bias, window)
        cells = np.empty(shape, ops.PULSE_CELL)
        cells["macro"], cells["row"], cells["col"] = _indices(m, r, c)
        cells["polarity"], cells["amplitude"], cells["width"], cells["gate"] = pol, amp, wid, gat
        return self._batched(Op.PULSE_BATCH, head, cells.reshape(-1)).reshape(shape)

    @property
    def pulse_cells_per_frame(self) -> int:
        """Most cells, pulsed or read only, one :meth:`pulse_batch` sends in one round trip; 0 where
        the board takes no read-only entries (protocol < 5). A board not identified yet is
        asked once (IDENTIFY, one round trip; a run identifies its instruments when it starts)."""
        if self._protocol is None:
            self.info()
        if self._protocol < ops.READ_ONLY_ENTRIES_SINCE:
            return 0
        return ops.max_cells(Op.PULSE_BATCH, self.max_payload)

    def read_batch(self, macro, row, col, bias: float = 0.1, window: float = 1e-6) -> np.ndarray:
        """Conductance of each listed cell in S (indices broadcast; order kept).

        bias: read voltage in V (within the read limit); window: integration time in s (> 0).
        """
        m, r, c = args = [np.asarray(a) for a in (macro, row, col)]
        shape = np.broadcast(*args).shape
        head = self._read_settings(bias, window)
        cells = np.empty(shape, ops.READ_CELL)
        cells["macro"], cells["row"], cells["col"] = _indices(m, r, c)
        return self._batched(Op.READ_BATCH, head, cells.reshape(-1)).reshape(shape)

    def read_macro(self, macro: int, bias: float = 0.1, window: float = 1e-6) -> np.ndarray:
        """Conductance map of a whole macro, (rows, cols) S; bias V, window s as in read_batch."""
        self._read_settings(bias, window)
        body = self._request(Op.READ_MACRO, ops.READ_MACRO_REQ.pack(_index(macro, "macro"), bias, window))
        rows, cols = ops.MACRO_SHAPE.unpack_from(body)
        g = np.frombuffer(body, ops.VALUE, rows * cols, ops.MACRO_SHAPE.size)
        return g.astype(float).reshape(rows, cols)

    # -- closed-loop network -----------------------------------------------------------
    def load_mapping(self, layers: Sequence[LayerRegion], v_bias: float) -> None:
        """Tell the board which macro regions form which layer, in order.

        layers: LayerRegion objects (or dicts with its fields), 1..255 of them;
        v_bias: voltage on the bias rows, V (within the read/DAC limit).
        """
        if not 1 <= len(layers) <= 255:
            raise ValueError(f"layers must hold 1..255 layer regions, got {len(layers)}")
        self._limits.read_bias(v_bias)
        records = ops.encode_layers(list(layers))
        self._request(Op.LOAD_MAPPING, ops.MAPPING_HEAD.pack(v_bias, len(layers)) + records.tobytes())
        self.mapping, self.mapping_v_bias = ops.decode_layers(records), float(v_bias)
        self.monitor = None  # the board returns its monitor to the default source

    def select_monitor(self, layer: int | None, node: int = 0) -> None:
        """Put one node of the loaded network on the board's analog monitor output (MONITOR_SELECT).

        layer: index of a layer of the mapping this driver loaded (0 .. len(mapping) - 1, in
        mapping order: the hidden ReLU layers, then the output layer); node: its output
        0 .. n_out - 1. The monitor output (wired to scope channel 4 on the bench) then
        carries that node's activation-amplifier output voltage (V: a hidden node within
        [0, v_rail], an output node within +-v_rail) during every closed-loop run.
        ``layer`` None returns the monitor to its default source (the injected noise voltage
        of integrator 0 in SDE runs, the trigger output in ODE runs). Loading a mapping
        returns it to the default too. Indices outside the loaded mapping, or any node
        before a mapping was loaded, raise ValueError before a byte is sent. A board older
        than protocol version 4 answers UNKNOWN_OP (:class:`InstrumentError`).
        """
        if layer is None:
            self._request(Op.MONITOR_SELECT, ops.MONITOR_REQ.pack(ops.MONITOR_OFF, 0))
            self.monitor = None
            return
        if self.mapping is None:
            raise ValueError("no mapping loaded: load_mapping first, the monitor selects a node of that network")
        if isinstance(layer, bool) or int(layer) != layer or not 0 <= int(layer) < len(self.mapping):
            raise ValueError(f"monitor layer must be an integer in 0..{len(self.mapping) - 1} (the loaded "
                             f"mapping's layers), got {layer!r}")
        n_out = self.mapping[int(layer)].n_out
        if isinstance(node, bool) or int(node) != node or not 0 <= int(node) < n_out:
            raise ValueError(f"monitor node must be an integer in 0..{n_out - 1} (outputs of layer {int(layer)}), "
                             f"got {node!r}")
        self._request(Op.MONITOR_SELECT, ops.MONITOR_REQ.pack(int(layer), int(node)))
        self.monitor = (int(layer), int(node))

    def set_streams(self, dt: float, embedding, condition, a, b, c) -> None:
        """DAC streams of one closed-loop sample, one value per time step of ``dt`` s.

        embedding: (T, H) V, time embedding added to each hidden layer's inputs;
        condition: (H,) V, class embedding (zeros for unconditional sampling);
        a, b: (T,) dimensionless integrator gains and c: (T,) V noise gain of
        ``RC dx/dt = a x + b y(x) + c xi`` (docs/circuit-model.md). The DAC voltages
        (embedding, condition, c) are checked against the read/DAC limit.
        """
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive time step in s, got {dt}")
        emb = _finite("embedding", embedding, ndim=2)
        cond = _finite("condition", condition, ndim=1)
        t_steps, hidden = emb.shape
        if cond.shape != (hidden,):
            raise ValueError(f"condition must have shape ({hidden},) to match embedding, got {cond.shape}")
        gains = [_finite(n, v, ndim=1) for n, v in (("a", a), ("b", b), ("c", c))]
        for n, g in zip("abc", gains, strict=True):
            if g.shape != (t_steps,):
                raise ValueError(f"{n} must have shape ({t_steps},) to match embedding, got {g.shape}")
        if not (1 <= t_steps <= 0xFFFF and 1 <= hidden <= 0xFFFF):
            raise ValueError(f"embedding shape {emb.shape} outside 1..65535 x 1..65535")
        self._limits.read_bias(emb)
        self._limits.read_bias(cond)
        self._limits.read_bias(gains[2])
        data = np.concatenate([emb.ravel(), cond, *gains]).astype(ops.VALUE)
        self._request_large(Op.SET_STREAMS, ops.STREAMS_HEAD.pack(dt, t_steps, hidden) + data.tobytes())
        self.stream_dt, self.stream_steps = float(dt), int(t_steps)

    def set_initial(self, x0) -> None:
        """Initial integrator voltages of N samples, (N, D) V, within the read/DAC limit."""
        x = _finite("x0", x0, ndim=2)
        if not (1 <= x.shape[0] <= 0xFFFFFFFF and 1 <= x.shape[1] <= 0xFFFF):
            raise ValueError(f"x0 shape {x.shape} outside 1..2^32-1 x 1..65535")
        self._limits.read_bias(x)
        self._request_large(Op.SET_INITIAL, ops.INITIAL_HEAD.pack(*x.shape) + x.astype(ops.VALUE).tobytes())

    def run_samples(self, count: int, duration: float, sde: bool, seed: int = 0) -> None:
        """Run the closed loop for the first ``count`` initial conditions.

        duration: integration time in s (> 0); sde: inject the noise streams;
        seed: 0..2^32-1, seed of the board's noise generator. Fires the scope trigger.
        """
        if not 1 <= int(count) <= 0xFFFFFFFF or int(count) != count:
            raise ValueError(f"count must be a positive integer, got {count}")
        if not (np.isfinite(duration) and duration > 0):
            raise ValueError(f"duration must be a positive time in s, got {duration}")
        if not 0 <= int(seed) <= 0xFFFFFFFF or int(seed) != seed:
            raise ValueError(f"seed must be an integer in 0..2^32-1, got {seed}")
        # the board answers when the last sample has run: each wait for the reply allows the
        # loop's own time (count x duration) on top of the link's timeout
        self._request(Op.RUN_SAMPLES, ops.RUN_REQ.pack(int(count), duration, int(bool(sde)), int(seed)),
                      wait=self._link.timeout + int(count) * float(duration))

    def fetch_end_values(self) -> np.ndarray:
        """Integrator voltages at the end of the last run, (N, D) V."""
        room = (self.max_payload - 1 - ops.FETCH_REPLY.size) // ops.VALUE.itemsize
        parts, first = [], 0
        while True:
            body = self._request(Op.FETCH_END, ops.FETCH_REQ.pack(first, room))
            start, count, total, dims = ops.FETCH_REPLY.unpack_from(body)
            if start != first or (count == 0 and first < total):
                raise InstrumentError(self.name, f"FETCH_END returned samples {start}+{count} for {first}")
            values = np.frombuffer(body, ops.VALUE, count * dims, ops.FETCH_REPLY.size)
            parts.append(values.reshape(count, dims))
            first += count
            if first >= total:
                return np.concatenate(parts).astype(float)

    # -- open-loop layers --------------------------------------------------------------
    def evaluate_layer(self, layer: LayerRegion, inputs, v_bias: float, seed: int = 0) -> np.ndarray:
        """One layer region evaluated on given input voltages (EVAL_LAYER), outside the loop.

        layer: where the layer sits (a LayerRegion); inputs: (N, layer.n_in) V, driven by
        the DACs on its input rows, each within the read/DAC limit; v_bias: voltage of its
        bias rows (V, within the read/DAC limit); seed: 0..2^32-1, seed of the read noise
        (each frame of a split request takes the next seed). Returns the outputs of its
        activation amplifiers as the readout ADC digitises them, (N, layer.n_out) V. The
        loaded mapping and DAC streams of the closed loop are untouched.
        """
        x = _finite("inputs", inputs, ndim=2)
        if x.shape[0] < 1 or x.shape[1] != layer.n_in:
            raise ValueError(f"inputs must have shape (N >= 1, {layer.n_in}) for this layer, got {x.shape}")
        if not 0 <= int(seed) <= 0xFFFFFFFF or int(seed) != seed:
            raise ValueError(f"seed must be an integer in 0..2^32-1, got {seed}")
        self._limits.read_bias(v_bias)
        self._limits.read_bias(x)
        record = ops.encode_layers([layer]).tobytes()
        per_frame = ops.max_vectors(layer.n_in, layer.n_out, self.max_payload)
        if per_frame < 1:
            raise ValueError(f"a layer of {layer.n_in} inputs and {layer.n_out} outputs does not fit a frame of "
                             f"{self.max_payload} bytes")
        values = x.astype(ops.VALUE)
        out = np.empty((x.shape[0], layer.n_out))
        for k, start in enumerate(range(0, x.shape[0], per_frame)):
            chunk = values[start : start + per_frame]
            head = ops.EVAL_HEAD.pack(v_bias, (int(seed) + k) & 0xFFFFFFFF, len(chunk))
            body = self._request(Op.EVAL_LAYER, head + record + chunk.tobytes())
            if len(body) != chunk.size // layer.n_in * layer.n_out * ops.VALUE.itemsize:
                raise InstrumentError(self.name, f"EVAL_LAYER reply holds {len(body)} bytes for {len(chunk)} vectors")
            out[start : start + len(chunk)] = np.frombuffer(body, ops.VALUE).reshape(len(chunk), layer.n_out)
        return out

    # -- requests ----------------------------------------------------------------------
    def _read_settings(self, bias: float, window: float) -> bytes:
        self._limits.read_bias(bias)
        if not (np.isfinite(window) and window > 0):
            raise ValueError(f"window must be a positive integration time in s, got {window}")
        return ops.READ_SETTINGS.pack(bias, window)

    def _batched(self, op: Op, head: bytes, cells: np.ndarray) -> np.ndarray:
        """Send ``cells`` in as few frames as ``max_payload`` allows; reads in S."""
        per_frame = ops.max_cells(op, self.max_payload)
        if cells.size <= per_frame:  # one frame (2048 cells at the default payload): no assembly
            body = self._request(op, head + cells.tobytes())
            if len(body) != cells.size * ops.VALUE.itemsize:
                raise InstrumentError(self.name, f"{op.name} reply holds {len(body)} bytes for {cells.size} cells")
            return np.frombuffer(body, ops.VALUE).astype(float)
        out = np.empty(cells.size, float)
        for start in range(0, cells.size, per_frame):
            chunk = cells[start : start + per_frame]
            body = self._request(op, head + chunk.tobytes())
            if len(body) != chunk.size * ops.VALUE.itemsize:
                raise InstrumentError(self.name, f"{op.name} reply holds {len(body)} bytes for {chunk.size} cells")
            out[start : start + chunk.size] = np.frombuffer(body, ops.VALUE)
        return out

    def _request_large(self, op: Op, payload: bytes) -> bytes:
        """Send ``payload`` in one frame, or stage it in chunks and execute it."""
        if len(payload) <= self.max_payload:
            return self._request(op, payload)
        room = self.max_payload - ops.STAGE_HEAD.size
        for offset in range(0, len(payload), room):
            self._request(Op.STAGE, ops.STAGE_HEAD.pack(offset) + payload[offset : offset + room])
        return self._request(Op.EXEC_STAGED, ops.EXEC_STAGED_REQ.pack(op, len(payload), zlib.crc32(payload)))

    def _request(self, op: Op, payload: bytes = b"", wait: float | None = None) -> bytes:
        """One request/reply exchange with retransmission; returns the body after the status.

        wait: s to wait for each reply (default: the link's timeout)."""
        with self._link.lock:
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
            frame = encode(seq, op, payload)
            self._link.write(frame)
            failures: list[str] = []
            while True:
                why = self._await(seq, op, wait)
                if isinstance(why, bytes):
                    self.round_trips += 1
                    return why
                failures.append(why)
                if len(failures) > self.max_retries:
                    message = f"{op.name} seq {seq} failed after {self.max_retries} retries: {', '.join(failures)}"
                    if all(f == "timeout" for f in failures):
                        raise InstrumentTimeout(f"{self.name}: {message}")
                    raise LinkError(f"{self.name}: {message}")
                if why == "busy" and self.busy_wait:
                    time.sleep(self.busy_wait)
                self.retries += 1
                self._log.info("%s: retry %d of %s seq %d (%s)", self.name, len(failures), op.name, seq, why)
                self._link.write(frame)

    def _await(self, seq: int, op: Op, wait: float | None = None) -> bytes | str:
        """Reply body for (seq, op), or the reason to retransmit; raises on a board error."""
        while True:
            try:
                message = self._link.read_message(wait)
            except InstrumentTimeout:
                return "timeout"
            if not message:
                continue  # an empty message between two delimiters carries nothing
            try:
                reply = decode(message)
            except FrameError as exc:
                self._log.debug("%s: damaged reply dropped (%s)", self.name, exc)
                return "damaged reply"
            if not reply.payload:
                self._log.debug("%s: reply without a status byte dropped", self.name)
                return "damaged reply"
            status = reply.payload[0]
            if status in _RETRY:  # BAD_CRC seq is unreliable: any such reply means resend
                return "busy" if status == Status.BUSY else "board saw a damaged frame"
            if reply.seq != seq or reply.op != (op | REPLY_FLAG):
                self._log.debug("%s: stale reply seq %d op 0x%02x dropped", self.name, reply.seq, reply.op)
                continue
            if status != Status.OK:
                text = reply.payload[1:].decode("utf-8", "replace")
                name = _status_name(status)
                raise InstrumentError(self.name, f"{op.name} refused ({name}): {text}")
            return reply.payload[1:]


def _status_name(code: int) -> str:
    try:
        return Status(code).name
    except ValueError:
        return f"status {code}"


def _index(value, name: str) -> int:
    if int(value) != value or not 0 <= int(value) <= 255:
        raise ValueError(f"{name} must be an integer index in 0..255, got {value!r}")
    return int(value)


def _indices(*arrays: np.ndarray) -> list[np.ndarray]:
    """Cell index arrays checked to be integers in 0..255 (shapes kept: they broadcast)."""
    for name, a in zip(("macro", "row", "col"), arrays, strict=True):
        # Integer arrays (what the protocols pass) need no rounding check: it costs
        # more than the rest of a 2048-cell batch's packing.
        whole = a.dtype.kind in "ui" or bool(np.all(a == np.round(a)))
        if a.size and (not whole or a.min() < 0 or a.max() > 255):
            raise ValueError(f"{name} indices must be integers in 0..255")
    return list(arrays)


def _finite(name: str, value, ndim: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr
