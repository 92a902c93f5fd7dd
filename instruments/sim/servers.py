"""Threaded loopback TCP servers that put the emulators on a socket.

Each simulated instrument listens on its own port, like hardware on a LAN: the
SCPI instruments as raw-socket devices (``TCPIP0::127.0.0.1::P::SOCKET``, newline
delimited), the controller board as a serial-over-TCP endpoint
(``socket://127.0.0.1:P``, frames delimited by 0x00). The server splits the byte
stream on the delimiter, hands each message to the emulator and writes its reply.

Faults are injected here, on the wire, because that is where they happen on a real
bench: corrupted or dropped bytes, late or missing replies, a link that goes down.
They are read from a live :class:`FaultConfig`-like object for every message, so a
test can switch them on and off while a client is connected.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

log = logging.getLogger("rrambench.sim.server")

Handler = Callable[[bytes], "bytes | None"]

#: Largest message accepted without a delimiter; beyond it the buffer is discarded
#: so a hostile or broken client cannot grow the server's memory.
MAX_MESSAGE = 4 * 1024 * 1024


class Faults(Protocol):
    """What the server reads from a fault configuration (see ``world.FaultConfig``)."""

    corrupt_rate: float  # probability per byte that a bit flips (both directions)
    drop_rate: float  # probability per byte that it is lost (both directions)
    reply_delay: float  # s, wall-clock delay before each reply
    missing_reply_rate: float  # probability that a reply is not sent at all
    disconnect_after: int  # messages after which the link goes down (0 = never)


def is_loopback(host: str) -> bool:
    """True when ``host`` resolves only to loopback addresses."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


class LoopbackServer:
    """One instrument on a TCP socket.

    Parameters
    ----------
    handler:
        ``handler(message) -> reply | None`` (the emulator's ``handle``).
    delimiter:
        Message terminator on the wire, ``b"\\n"`` (SCPI) or ``b"\\x00"`` (board frames).
    name:
        Link name used in logs and in resource strings' documentation.
    faults:
        Live fault configuration, or None for a perfect link.
    host, port:
        Bind address; port 0 picks a free port. Only loopback addresses are accepted
        unless ``allow_remote`` is set: a simulator must not appear on a lab network
        by accident.
    seed:
        Seed of the fault-injection random stream.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        delimiter: bytes = b"\n",
        name: str = "instrument",
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_remote: bool = False,
        seed: int = 0,
    ) -> None:
        if len(delimiter) != 1:
            raise ValueError(f"delimiter must be one byte, got {delimiter!r}")
        if not allow_remote and not is_loopback(host):
            raise ValueError(
                f"host {host!r} is not a loopback address; pass allow_remote=True "
                "(--allow-remote) to expose a simulated instrument on a network"
            )
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self.handler = handler
        self.delimiter = delimiter
        self.name = name
        self.faults = faults
        self.host = host
        self._requested_port = int(port)
        self._rng = np.random.default_rng(seed)
        self._handler_lock = threading.Lock()
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self.messages = 0  # messages received over the server's lifetime

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> LoopbackServer:
        if self._listener is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self._requested_port))
        listener.listen(8)
        self._listener = listener
        thread = threading.Thread(target=self._accept_loop, name=f"sim-{self.name}-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        log.info("%s listening on %s:%d", self.name, self.host, self.port)
        return self

    def stop(self) -> None:
        """Close the listener and every connection; join the threads."""
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected: nothing to shut down
            self._listener.close()
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            _close(conn)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)
        self._threads.clear()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError(f"server {self.name} is not started")
        return self._listener.getsockname()[1]

    @property
    def resource(self) -> str:
        """VISA resource string of a raw-socket instrument on this server."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    @property
    def url(self) -> str:
        """pyserial URL of a serial-over-TCP device on this server."""
        return f"socket://{self.host}:{self.port}"

    # -- serving ------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, peer = self._listener.accept()
            except OSError:
                return  # listener closed by stop()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._conn_lock:
                self._connections.add(conn)
            thread = threading.Thread(
                target=self._serve, args=(conn,), name=f"sim-{self.name}-conn", daemon=True
            )
            thread.start()
            # Forget finished connection threads so a long soak does not accumulate them.
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            log.debug("%s: connection from %s", self.name, peer)

    def _serve(self, conn: socket.socket) -> None:
        buffer = bytearray()
        handled = 0
        try:
            while not self._stopping.is_set():
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += self._garble(chunk)
                while True:
                    end = buffer.find(self.delimiter)
                    if end < 0:
                        break
                    message = bytes(buffer[:end])
                    del buffer[: end + 1]
                    handled += 1
                    if not self._answer(conn, message, handled):
                        return
                if len(buffer) > MAX_MESSAGE:
                    log.warning("%s: %d bytes without a delimiter discarded", self.name, len(buffer))
                    buffer.clear()
        finally:
            with self._conn_lock:
                self._connections.discard(conn)
            _close(conn)

    def _answer(self, conn: socket.socket, message: bytes, handled: int) -> bool:
        """Handle one message; False when the link must go down."""
        faults = self.faults
        if faults is not None and faults.disconnect_after and handled > faults.disconnect_after:
            log.info("%s: injected disconnect after %d messages", self.name, faults.disconnect_after)
            return False
        with self._handler_lock:
            self.messages += 1
            try:
                reply = self.handler(message)
            except Exception:  # an emulator bug must not take the server down; it is logged
                log.exception("%s: emulator failed on %r", self.name, message[:80])
                reply = None
        if reply is None:
            return True
        if faults is not None:
            if faults.missing_reply_rate and self._rng.random() < faults.missing_reply_rate:
                log.info("%s: injected missing reply", self.name)
                return True
            if faults.reply_delay:
                time.sleep(faults.reply_delay)
        try:
            conn.sendall(self._garble(reply) + self.delimiter)
        except OSError:
            return False
        return True

    def _garble(self, data: bytes) -> bytes:
        """Apply byte corruption and drops of the live fault configuration."""
        faults = self.faults
        if faults is None or not (faults.corrupt_rate or faults.drop_rate) or not data:
            return data
        arr = np.frombuffer(data, dtype=np.uint8).copy()
        if faults.corrupt_rate:
            hit = self._rng.random(arr.size) < faults.corrupt_rate
            if hit.any():
                bits = self._rng.integers(0, 8, int(hit.sum()))
                arr[hit] ^= (1 << bits).astype(np.uint8)
        if faults.drop_rate:
            arr = arr[self._rng.random(arr.size) >= faults.drop_rate]
        return arr.tobytes()


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # peer already gone
    conn.close()
