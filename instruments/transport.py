"""Transport over a pyvisa resource: one lock, our exceptions, an I/O trace.

:class:`VisaTransport` wraps any object with pyvisa's message-based resource
interface (``write``, ``query``, ``query_ascii_values``, ``query_binary_values``,
``timeout`` in ms, ``close``). Drivers talk only to it, so a transcript test can put
a recording resource underneath and see exactly what a driver sends.

- A ``threading.Lock`` per transport makes every write+read atomic, so a GUI
  thread and a protocol thread never interleave a query.
- pyvisa timeouts become :class:`InstrumentTimeout`; a broken connection becomes
  :class:`LinkError`; the instrument's error queue becomes :class:`InstrumentError`.
- Traffic is logged at DEBUG on ``rrambench.io.<name>``.
- Binary blocks are parsed by pyvisa's ``query_binary_values``, never by hand.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyvisa
from pyvisa import constants
from pyvisa_py.sessions import UnknownAttribute

from instruments.errors import ConfigError, InstrumentError, InstrumentTimeout, LinkError

MAX_QUEUED_ERRORS = 64  # :SYST:ERR? reads before the queue is declared stuck
_TIMEOUT_CODES = {constants.StatusCode.error_timeout}

#: A driver's snapshot: setting name -> (value, unit); values are str, float, int, bool or
#: None (never set / unknown), units SI ("" dimensionless). The run file stores each one.
Settings = dict[str, tuple[Any, str]]


def flag(reply: str) -> bool:
    """A SCPI boolean reply (``1``/``0``, ``ON``/``OFF``) as a bool."""
    return reply.strip().upper() in ("1", "ON")


def integer(reply: str) -> int:
    """A SCPI integer reply (NR1, or NR3 such as ``1.0E+01`` from some firmware) as an int."""
    return int(float(reply))


#: How a reply is read, by the kind a settings table names.
REPLY_KINDS: dict[str, Callable[[str], Any]] = {"text": str, "number": float, "integer": integer, "flag": flag}


def query_settings(io: VisaTransport, table: str, **fields: str) -> Settings:
    """Ask the instrument each query of ``table``, one at a time; the parsed replies with their units.

    ``table``: one setting a line, ``name  query  kind  [unit]`` (kind: text, number,
    integer or flag; no unit: dimensionless); ``{field}`` placeholders are filled from
    ``fields`` first (a channel number, the active function's words and units).
    """
    settings: Settings = {}
    for line in table.strip().splitlines():
        name, command, kind, *unit = line.format(**fields).split()
        settings[name] = (REPLY_KINDS[kind](io.query(command)), unit[0] if unit else "")
    return settings


def visa_manager(library: str = "@py") -> Any:
    """A pyvisa ``ResourceManager`` on ``library`` ("@py": pyvisa-py; "@ivi": the installed
    NI-VISA or Keysight IO Libraries; or the path of a VISA shared library).

    A library that is not installed raises :class:`ConfigError` (one line naming it).
    """
    try:
        return pyvisa.ResourceManager(library)
    except (OSError, ValueError, pyvisa.errors.Error) as exc:
        hint = ("install pyvisa-py (pip install pyvisa-py)" if library.startswith("@py") else
                "install NI-VISA or Keysight IO Libraries Suite, or set [resources].visa_library = \"@py\" "
                "(pyvisa-py)")
        reason = " ".join(str(exc).split()).rstrip(":") or type(exc).__name__
        if library.startswith("@ivi") and reason.startswith("Could not open VISA library"):
            reason = "no NI-VISA or Keysight VISA library is installed"
        raise ConfigError(f"VISA library {library!r} cannot be loaded ({reason}); {hint}") from None


class VisaTransport:
    """Message-based SCPI link to one instrument.

    Parameters
    ----------
    resource:
        An open pyvisa resource, or any object with its interface.
    name:
        Instrument name used in errors and in the logger ``rrambench.io.<name>``.
    manager:
        The pyvisa ``ResourceManager`` that opened ``resource`` (closed with it), if any.
    """

    def __init__(self, resource: Any, *, name: str, manager: Any = None) -> None:
        self.resource = resource
        self.name = name
        self._manager = manager
        self._lock = threading.Lock()
        self._log = logging.getLogger(f"rrambench.io.{name}")

    @classmethod
    def open(cls, resource: str, *, name: str, timeout: float = 5.0, backend: str = "@py") -> VisaTransport:
        """Open a VISA resource string.

        ``timeout`` in s (> 0). SOCKET resources get ``"\\n"`` read and write
        terminations (without them every read over a raw socket times out).
        A resource that cannot be opened raises :class:`LinkError`.
        """
        _check_timeout(timeout)
        manager = visa_manager(backend)
        try:
            handle = manager.open_resource(resource, open_timeout=round(timeout * 1000))
        except Exception as exc:  # pyvisa-py raises bare Exception("could not connect: ...")
            manager.close()
            raise LinkError(f"{name}: cannot open {resource}: {exc}") from exc
        handle.timeout = timeout * 1000.0
        if resource.upper().endswith("::SOCKET"):
            handle.read_termination = "\n"
            handle.write_termination = "\n"
            _disable_nagle(handle, name)
        logging.getLogger(f"rrambench.io.{name}").info("opened %s", resource)
        return cls(handle, name=name, manager=manager)

    # -- timeout ----------------------------------------------------------------------
    @property
    def timeout(self) -> float:
        """Reply timeout in s."""
        return float(self.resource.timeout) / 1000.0

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        _check_timeout(seconds)
        self.resource.timeout = seconds * 1000.0

    # -- I/O ----------------------------------------------------------------------------
    def write(self, command: str) -> None:
        """Send one program message (no reply expected)."""
        with self._lock, self._guard(command):
            self._log.debug("> %s", command)
            self.resource.write(command)

    def query(self, command: str, *, timeout: float | None = None) -> str:
        """Send a query and return its reply line (termination stripped).

        ``timeout`` in s overrides the transport's timeout for this reply only
        (for operations that take long, e.g. ``*OPC?`` after a sweep).
        """
        with self._lock, self._guard(command), self._timeout(timeout):
            self._log.debug("> %s", command)
            reply = self.resource.query(command)
            self._log.debug("< %s", reply)
        return reply.strip()

    def query_ascii(self, command: str, *, timeout: float | None = None) -> np.ndarray:
        """Send a query whose reply is comma-separated numbers; a float array."""
        with self._lock, self._guard(command), self._timeout(timeout):
            self._log.debug("> %s", command)
            values = self.resource.query_ascii_values(command, converter="f", container=np.array)
            self._log.debug("< %d values", values.size)
        return np.asarray(values, dtype=float)

    def query_binary(
        self, command: str, datatype: str = "B", is_big_endian: bool = False, *, timeout: float | None = None
    ) -> np.ndarray:
        """Send a query answered by an IEEE 488.2 definite-length block.

        ``datatype`` is a ``struct`` code (``"B"`` unsigned byte, ``"H"`` unsigned
        16-bit, ...); pyvisa parses the block.
        """
        with self._lock, self._guard(command), self._timeout(timeout):
            self._log.debug("> %s", command)
            values = self.resource.query_binary_values(
                command, datatype=datatype, is_big_endian=is_big_endian, container=np.array
            )
            self._log.debug("< block of %d values", len(values))
        return np.asarray(values)

    def check_errors(self) -> None:
        """Drain ``:SYSTem:ERRor?`` until code 0; raise :class:`InstrumentError` with the texts."""
        errors = []
        for _ in range(MAX_QUEUED_ERRORS):
            reply = self.query(":SYST:ERR?")
            code_text = reply.split(",", 1)[0].strip()
            try:
                code = int(code_text)
            except ValueError:
                raise InstrumentError(self.name, f"unreadable error-queue reply {reply!r}") from None
            if code == 0:
                break
            errors.append(reply)
        else:
            errors.append(f"error queue still not empty after {MAX_QUEUED_ERRORS} reads")
        if errors:
            self._log.warning("instrument errors: %s", "; ".join(errors))
            raise InstrumentError(self.name, "; ".join(errors))

    def close(self) -> None:
        """Close the resource (and the resource manager that opened it)."""
        with self._lock:
            try:
                self.resource.close()
            except (pyvisa.errors.Error, OSError) as exc:
                self._log.warning("closing: %s", exc)
            if self._manager is not None:
                self._manager.close()
                self._manager = None

    def __enter__(self) -> VisaTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VisaTransport({self.name!r})"

    # -- internals ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self, command: str) -> Iterator[None]:
        """Map pyvisa and socket failures onto our exceptions."""
        try:
            yield
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code in _TIMEOUT_CODES:
                raise InstrumentTimeout(
                    f"{self.name}: no reply to {command[:60]!r} within {self.timeout:g} s"
                ) from exc
            raise LinkError(f"{self.name}: link failed on {command[:60]!r}: {exc.description}") from exc
        except (pyvisa.errors.InvalidSession, OSError) as exc:
            raise LinkError(f"{self.name}: link failed on {command[:60]!r}: {exc}") from exc
        except ValueError as exc:  # a reply pyvisa could not parse: garbled on the wire
            raise LinkError(f"{self.name}: malformed reply to {command[:60]!r}: {exc}") from exc

    @contextlib.contextmanager
    def _timeout(self, seconds: float | None) -> Iterator[None]:
        if seconds is None:
            yield
            return
        _check_timeout(seconds)
        previous = self.resource.timeout
        self.resource.timeout = seconds * 1000.0
        try:
            yield
        finally:
            self.resource.timeout = previous


def _disable_nagle(handle: Any, name: str) -> bool:
    """Set ``TCP_NODELAY`` on a raw-socket session; True when it is set.

    A driver often writes a setting (no reply) and then queries: with Nagle's
    algorithm on, the query waits in the client until the instrument acknowledges
    the setting, and the instrument delays that ACK (~40 ms on Linux), so every such
    query cost ~40 ms. VISA's ``VI_ATTR_TCPIP_NODELAY`` is tried first; pyvisa-py
    0.8 registers that attribute with a setter that refuses it, so its session's
    socket is set directly.
    """
    try:
        handle.set_visa_attribute(constants.ResourceAttribute.tcpip_nodelay, constants.VI_TRUE)
        return True
    except (pyvisa.errors.Error, UnknownAttribute) as exc:
        logging.getLogger(f"rrambench.io.{name}").debug("VI_ATTR_TCPIP_NODELAY refused: %s", exc)
    sessions = getattr(getattr(handle, "visalib", None), "sessions", {})
    sock = getattr(sessions.get(getattr(handle, "session", None)), "interface", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True
    logging.getLogger(f"rrambench.io.{name}").warning(
        "cannot set TCP_NODELAY: each query after a write may wait ~40 ms for a delayed ACK")
    return False


def _check_timeout(seconds: float) -> None:
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {seconds!r}")
