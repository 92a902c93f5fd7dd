"""An emulator behind pyvisa's resource interface, in process (unit tests only).

:class:`InProcessResource` lets a :class:`~instruments.transport.VisaTransport`
talk straight to a SCPI emulator's ``handle`` without a socket and records every
message sent, so transcript tests can assert the exact command strings a driver
produces. Replies are the emulator's own; binary and ASCII blocks are parsed by
pyvisa's own helpers. Benches always go through the loopback servers and pyvisa-py.
"""

from __future__ import annotations

from collections.abc import Callable

from pyvisa import constants, errors, util


class InProcessResource:
    """pyvisa-resource look-alike over ``handle(bytes) -> bytes | None``.

    ``sent`` lists every message written, in order (str, no termination).
    A query the emulator leaves unanswered raises pyvisa's timeout error, as the
    real stack does.
    """

    def __init__(self, handle: Callable[[bytes], bytes | None], timeout_ms: float = 2000.0) -> None:
        self._handle = handle
        self.sent: list[str] = []
        self.timeout = timeout_ms
        self.read_termination = "\n"
        self.write_termination = "\n"
        self._reply: bytes | None = None
        self.closed = False

    def write(self, message: str) -> int:
        if self.closed:
            raise errors.InvalidSession()
        self.sent.append(message)
        self._reply = self._handle(message.encode("ascii"))
        return len(message) + 1

    def read_raw(self) -> bytes:
        reply, self._reply = self._reply, None
        if reply is None:
            raise errors.VisaIOError(constants.StatusCode.error_timeout)
        return reply

    def read(self) -> str:
        return self.read_raw().decode("latin-1")

    def query(self, message: str) -> str:
        self.write(message)
        return self.read()

    def query_ascii_values(self, message: str, converter: str = "f", separator: str = ",",
                           container: Callable = list) -> object:
        return util.from_ascii_block(self.query(message), converter, separator, container)

    def query_binary_values(self, message: str, datatype: str = "f", is_big_endian: bool = False,
                            container: Callable = list) -> object:
        self.write(message)
        return util.from_ieee_block(self.read_raw(), datatype, is_big_endian, container)

    def close(self) -> None:
        self.closed = True

