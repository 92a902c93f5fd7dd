"""Serial transport of the macro controller board (pyserial).

``SerialLink.open("socket://127.0.0.1:P")`` reaches the simulated board over a
loopback socket, ``SerialLink.open("/dev/ttyUSB0")`` the real one. The link moves
0x00-delimited messages; what they contain is :mod:`instruments.macro_controller_wire`'s business.

- One lock per link: the driver holds it across a request and its reply.
- Complete messages only: bytes are buffered until a delimiter arrives, so a frame
  split across reads is reassembled and garbage before a delimiter is handed up
  as one (damaged) message, which resynchronises the stream.
- Our exceptions: :class:`InstrumentTimeout` when no complete message arrives in
  time, :class:`LinkError` when the port fails or the peer disconnects.
- I/O trace on the logger ``rrambench.io.<name>`` at DEBUG level.

pyserial's ``read_until`` reads one byte per call, which costs milliseconds on a
32 KiB frame; the link instead waits for the first byte with the port's timeout and
then drains what has arrived in one non-blocking read.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import serial

from instruments.errors import InstrumentTimeout, LinkError

DELIMITER = b"\x00"
#: Bytes without a delimiter after which the receive buffer is discarded (resync).
MAX_BUFFER = 4 * 1024 * 1024
_DRAIN = 1 << 16  # bytes asked for per non-blocking read
_TRACE_BYTES = 48  # bytes of each message shown in the trace log


class SerialLink:
    """A pyserial port carrying 0x00-delimited messages.

    Parameters
    ----------
    port:
        An open pyserial port (``serial.Serial`` or what ``serial_for_url`` returns).
    name:
        Instrument name, used in errors and the trace logger ``rrambench.io.<name>``.
    timeout:
        Default time to wait for a complete message, s (> 0).
    """

    def __init__(self, port: serial.SerialBase, *, name: str = "macro_controller", timeout: float = 2.0) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 s, got {timeout}")
        self._port = port
        self.name = name
        self.timeout = float(timeout)
        self.lock = threading.RLock()
        self.log = logging.getLogger(f"rrambench.io.{name}")
        self._buffer = bytearray()
        self.bytes_written = 0  # bytes sent over the link's lifetime
        self.bytes_read = 0  # bytes received over the link's lifetime
        sock = _socket_of(port)
        if sock is not None:
            # Each request is one write followed by a wait for the reply: Nagle's algorithm
            # would hold the tail of a frame until the peer acknowledges the previous one.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @classmethod
    def open(
        cls, url: str, *, name: str = "macro_controller", timeout: float = 2.0, baudrate: int = 921600
    ) -> SerialLink:
        """Open ``url`` (``socket://host:port``, ``/dev/ttyUSB0``, ``spy://...``).

        ``baudrate`` in bit/s matters for a UART only (ignored by sockets and USB CDC).
        """
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 s, got {timeout}")
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, write_timeout=timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"{name}: cannot open {url}: {exc}") from exc
        return cls(port, name=name, timeout=timeout)

    def __repr__(self) -> str:
        return f"SerialLink({self._port.name!r}, name={self.name!r})"

    # -- I/O ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send bytes (one or more complete messages, delimiters included)."""
        with self.lock:
            if self.log.isEnabledFor(logging.DEBUG):
                self.log.debug("-> %d B %s", len(data), bytes(data[:_TRACE_BYTES]).hex(" "))
            try:
                self._port.write(data)
                self.bytes_written += len(data)
            except serial.SerialTimeoutException as exc:
                raise InstrumentTimeout(f"{self.name}: write timed out after {self.timeout:g} s") from exc
            except (serial.SerialException, OSError) as exc:
                raise LinkError(f"{self.name}: write failed: {exc}") from exc

    def read_message(self, timeout: float | None = None) -> bytes:
        """Next complete message without its delimiter.

        ``timeout`` in s (default: the link's). Raises :class:`InstrumentTimeout` when
        no delimiter arrives in time (bytes received so far stay buffered) and
        :class:`LinkError` when the peer disconnects.
        """
        wait = self.timeout if timeout is None else timeout
        if not wait > 0:
            raise ValueError(f"timeout must be > 0 s, got {wait}")
        deadline = time.monotonic() + wait
        with self.lock:
            while True:
                end = self._buffer.find(DELIMITER)
                if end >= 0:
                    message = bytes(self._buffer[:end])
                    del self._buffer[: end + 1]
                    if self.log.isEnabledFor(logging.DEBUG):
                        self.log.debug("<- %d B %s", len(message), message[:_TRACE_BYTES].hex(" "))
                    return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise InstrumentTimeout(f"{self.name}: no complete reply within {wait:g} s")
                self._receive(left)

    def discard_input(self) -> int:
        """Drop buffered and pending input (stale replies); returns bytes dropped."""
        with self.lock:
            dropped = len(self._buffer)
            self._buffer.clear()
            while chunk := self._read(0, _DRAIN):
                dropped += len(chunk)
            if dropped:
                self.log.debug("discarded %d stale bytes", dropped)
            return dropped

    def close(self) -> None:
        """Close the port; safe to call twice."""
        with self.lock:
            try:
                _close_socket(self._port)
                self._port.close()
            except (serial.SerialException, OSError) as exc:
                self.log.warning("%s: close failed: %s", self.name, exc)

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------
    def _receive(self, wait: float) -> None:
        """Wait up to ``wait`` s for a byte, then drain what else has arrived."""
        first = self._read(wait, 1)
        if not first:
            return
        rest = self._read(0, _DRAIN)
        self._buffer += first
        self._buffer += rest
        self.bytes_read += len(first) + len(rest)
        if len(self._buffer) > MAX_BUFFER and DELIMITER not in self._buffer:
            self.log.warning("%s: %d bytes without a delimiter discarded", self.name, len(self._buffer))
            self._buffer.clear()

    def _read(self, wait: float, size: int) -> bytes:
        try:
            self._port.timeout = wait
            return self._port.read(size)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"{self.name}: link lost: {exc}") from exc


def _socket_of(port: serial.SerialBase) -> socket.socket | None:
    """The TCP socket under a pyserial ``socket://`` port, None for any other port."""
    sock = getattr(port, "_socket", None)
    return sock if isinstance(sock, socket.socket) else None


def _close_socket(port: serial.SerialBase) -> None:
    """Close a ``socket://`` port's socket and mark the port closed, without pyserial's pause.

    pyserial's socket close sleeps 0.3 s "in case of quick reconnects"; a bench has
    nothing to wait for (the loopback server handles any number of connections), and
    two board links made every bench close take 0.6 s. Other ports are left to
    ``port.close()``.
    """
    sock = _socket_of(port)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the peer already closed
    sock.close()
    port._socket = None  # what pyserial's close does, minus its sleep
    port.is_open = False
