"""SCPI parser, dispatcher and error queue shared by the SCPI emulators.

An emulator declares its command set as data: a mapping from a SCPI header pattern
to a handler. Patterns are written the way programming manuals print them::

    ":SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]"    set form
    ":SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]?"   query form
    ":CHANnel<n>:SCALe"                                  numeric suffix, default 1
    ":OUTPut[1][:STATe]"                                 suffix 1 allowed, not passed on

The parser follows the rules a real instrument follows (IEEE 488.2 / SCPI-99):
headers are case-insensitive, each node accepts its long form or its short form
(the upper-case part of the long name), the leading colon is optional, ``;``
separates commands in one line and a command without a leading colon continues
from the previous command's path, a trailing ``;`` is allowed, strings take single
or double quotes, numbers any decimal or exponent form, booleans ``ON|OFF|1|0``,
arbitrary blocks ``#<d><length><bytes>``. Errors go to a bounded queue read with
``:SYSTem:ERRor?``. A query whose header is unknown or whose parameters are wrong
answers nothing (IEEE 488.2: the error is queued, the controller times out).

The IEEE 488.2 status reporting of the base (``*ESR?``, ``*ESE``, ``*SRE``,
``*STB?``): the standard event status register collects OPC and the error classes,
the status byte carries ESB when an *enabled* ESR bit is set, MAV while replies of
the message are pending, MSS when an enabled status-byte bit is set, plus the bits
an emulator adds through :meth:`ScpiInstrument.status_bits`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from instruments.sim.scpi_params import (  # noqa: F401 - re-exported for the emulators
    ERROR_TEXT,
    Arg,
    ScpiError,
    block,
    expect,
    fmt,
    no_args,
    parse_args,
    short_form,
    split_outside_quotes,
)

log = logging.getLogger("rrambench.sim.scpi")

ERROR_QUEUE_LENGTH = 32  # entries; the last slot turns into -350 when it overflows
_HEADER_CACHE_SIZE = 4096  # resolved headers kept; bounded against random input

_TOKEN = re.compile(r"^(\*?[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z_])?)(\d*)$")  # digits inside a name: PK2Pk
_PATTERN_NODE = re.compile(r"(\[)?:?(\*?[A-Za-z](?:[A-Za-z0-9]*[A-Za-z])?)(<n>|\[1\])?\]?")


# -- headers -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Node:
    long: str  # upper case
    short: str  # upper case
    optional: bool
    numeric: bool
    one: bool = False  # takes the suffix 1 (``NODE[1]``) without passing it on


Handler = Callable[[list[Arg], tuple[int, ...]], "str | bytes | None"]


@dataclass(frozen=True)
class _Command:
    pattern: str
    nodes: tuple[_Node, ...]
    query: bool
    handler: Handler


def _compile(pattern: str, handler: Handler) -> _Command:
    query = pattern.endswith("?")
    body = pattern[:-1] if query else pattern
    nodes = tuple(
        _Node(name.upper(), short_form(name), bool(opt), num == "<n>", num == "[1]")
        for opt, name, num in _PATTERN_NODE.findall(body)
    )
    if not nodes:
        raise ValueError(f"empty SCPI pattern {pattern!r}")
    return _Command(pattern, nodes, query, handler)


def _match(nodes: tuple[_Node, ...], tokens: tuple[tuple[str, int | None], ...]) -> tuple | None:
    """Suffixes of the numeric nodes when ``tokens`` spell ``nodes``, else None."""

    def walk(i: int, j: int) -> tuple | None:
        if i == len(nodes):
            return () if j == len(tokens) else None
        node = nodes[i]
        if j < len(tokens):
            name, suffix = tokens[j]
            if name in (node.long, node.short) and (suffix is None or node.numeric or (node.one and suffix == 1)):
                rest = walk(i + 1, j + 1)
                if rest is not None:
                    return ((suffix or 1,) if node.numeric else ()) + rest
        if node.optional:
            rest = walk(i + 1, j)
            if rest is not None:
                return ((1,) if node.numeric else ()) + rest
        return None

    return walk(0, 0)


def _tokens(header: str) -> tuple[tuple[str, int | None], ...]:
    out = []
    for part in header.split(":"):
        m = _TOKEN.match(part)
        if not m:
            raise ScpiError(-102, f"bad header {header[:40]}")
        name, digits = m.groups()
        out.append((name.upper(), int(digits) if digits else None))
    return tuple(out)


# -- the instrument base ---------------------------------------------------------------------
class ScpiInstrument:
    """Message handling, error queue and IEEE 488.2 common commands of a SCPI emulator.

    Subclasses give ``idn`` and implement :meth:`commands` (pattern -> handler) and
    :meth:`reset`. The loopback server calls :meth:`handle` once per received line.
    """

    idn = "RRAMBENCH,SCPI EMULATOR,0,0"

    @staticmethod
    def _accept(name: str, options: list[str]) -> Handler:
        """Handler for a setting the emulation accepts in the listed values only, without effect."""

        def setter(args: list[Arg], suffixes: tuple[int, ...]) -> None:
            expect(args, 1)[0].choice(name, options)

        return setter

    def __init__(self) -> None:
        self.lock = threading.RLock()  # one message at a time, also against world callbacks
        self.received: deque[bytes] = deque(maxlen=10000)
        self.count = 0  # messages handled since creation
        self.internal_errors = 0  # handler bugs turned into -300 (tests keep this at 0)
        self._errors: deque[str] = deque()
        self._esr = 0  # standard event status register
        self._ese = 0  # its enable register (*ESE); 0 at power-on, *RST keeps it
        self._sre = 0  # service request enable register (*SRE)
        self._output_pending = False  # replies of the current message not sent yet (MAV)
        self._table = [
            _compile(p, h) for p, h in {**self._common_commands(), **self.commands()}.items()
        ]
        self._by_first: dict[str, list[_Command]] = {}
        for cmd in self._table:
            for key in self._first_names(cmd.nodes):
                self._by_first.setdefault(key, []).append(cmd)
        self._resolved: dict[tuple, tuple[_Command, tuple] | None] = {}

    # -- to override ------------------------------------------------------------------
    def commands(self) -> Mapping[str, Handler]:
        """Header pattern -> handler; a pattern ending in ``?`` is the query form."""
        return {}

    def reset(self) -> None:
        """``*RST``: instrument settings to their defaults."""

    def status_bits(self) -> int:
        """Instrument-specific status-byte bits (the base adds MAV, ESB and MSS).

        Default: bit 2 (4), error/event available, while the error queue holds entries.
        """
        return 4 if self._errors else 0

    def clear_status(self) -> None:
        """``*CLS`` beyond the error queue and the ESR: instrument event registers."""

    # -- entry point ------------------------------------------------------------------
    def handle(self, request: bytes) -> bytes | None:
        """Execute one program message; the joined query replies or None."""
        with self.lock:
            return self._handle(request)

    def _handle(self, request: bytes) -> bytes | None:
        self.received.append(bytes(request))
        self.count += 1
        replies = []
        try:
            text = request.decode("latin-1").rstrip("\r")
            commands = split_outside_quotes(text, ";")  # -102 on invalid characters
        except ScpiError as err:
            self.push_error(err)
            return None
        path: tuple = ()
        for index, unit in enumerate(commands):
            unit = unit.strip()
            if not unit:
                if 0 < index < len(commands) - 1 or (index == 0 and len(commands) > 1):
                    self.push_error(ScpiError(-102, "empty command between ';'"))
                continue  # an empty line or a trailing ';' is legal
            self._output_pending = bool(replies)
            try:
                reply, path = self._execute(unit, path, first=index == 0)
            except ScpiError as err:
                self.push_error(err)
                continue
            except Exception as exc:  # an emulator bug: logged and queued, never crashes the link
                log.exception("%s: handler failed on %r", type(self).__name__, unit[:80])
                self.internal_errors += 1
                self.push_error(ScpiError(-300, type(exc).__name__))
                continue
            if reply is not None:
                replies.append(reply if isinstance(reply, bytes) else reply.encode("latin-1"))
        return b";".join(replies) if replies else None

    def push_error(self, err: ScpiError) -> None:
        """Queue an error (and set its event bit); the last slot becomes -350 on overflow."""
        code = err.code
        self._esr |= 32 if -199 <= code <= -100 else 16 if -299 <= code <= -200 else 0
        self._esr |= 8 if -399 <= code <= -300 else 4 if -499 <= code <= -400 else 0
        if len(self._errors) >= ERROR_QUEUE_LENGTH:
            self._errors[-1] = ScpiError(-350).entry()
            return
        self._errors.append(err.entry())

    def clear_errors(self) -> None:
        """``*CLS``: error queue, standard event status register and event registers."""
        self._errors.clear()
        self._esr = 0
        self.clear_status()

    def status_byte(self) -> int:
        """``*STB?``: the status byte with MSS (bit 6) computed from ``*SRE``."""
        stb = self.status_bits() & ~(16 | 32 | 64)
        stb |= 16 if self._output_pending else 0
        stb |= 32 if self._esr & self._ese else 0
        return stb | (64 if stb & self._sre & ~64 else 0)

    @property
    def errors(self) -> list[str]:
        """Queued error entries, oldest first (not consumed)."""
        return list(self._errors)

    # -- internals ----------------------------------------------------------------------------
    @staticmethod
    def _first_names(nodes: tuple[_Node, ...]) -> set[str]:
        names = set()
        for node in nodes:
            names |= {node.long, node.short}
            if not node.optional:
                break
        return names

    def _execute(self, unit: str, path: tuple, *, first: bool) -> tuple[str | bytes | None, tuple]:
        parts = unit.split(None, 1)
        header, argtext = parts[0], parts[1] if len(parts) > 1 else ""
        query = header.endswith("?")
        if query:
            header = header[:-1]
        rooted = header.startswith(":")
        if rooted:
            header = header[1:]
        if header.startswith(":") or not header:
            raise ScpiError(-102, f"bad header {unit[:40]}")
        tokens = _tokens(header)
        common = tokens[0][0].startswith("*")
        if any(name.startswith("*") for name, _ in tokens[1:]) or (common and len(tokens) > 1):
            raise ScpiError(-102, f"bad header {unit[:40]}")
        if not (first or rooted or common):
            tokens = path + tokens
        resolved = self._resolve(tokens, query)
        if resolved is None:
            raise ScpiError(-113, ":".join(n + (str(s) if s else "") for n, s in tokens)[:60])
        cmd, suffixes = resolved
        args = parse_args(argtext)
        reply = cmd.handler(args, suffixes)
        return reply, (path if common else tokens[:-1])

    def _resolve(self, tokens: tuple, query: bool) -> tuple[_Command, tuple] | None:
        key = (tokens, query)
        if key in self._resolved:
            return self._resolved[key]
        found = None
        for cmd in self._by_first.get(tokens[0][0], ()):
            if cmd.query == query:
                suffixes = _match(cmd.nodes, tokens)
                if suffixes is not None:
                    found = (cmd, suffixes)
                    break
        if len(self._resolved) >= _HEADER_CACHE_SIZE:
            self._resolved.clear()
        self._resolved[key] = found
        return found

    # -- IEEE 488.2 common commands and the SYSTem error queue ------------------------------------
    def _common_commands(self) -> dict[str, Handler]:
        return {
            "*IDN?": lambda a, s: no_args(a, self.idn),
            "*RST": lambda a, s: no_args(a, self._rst()),
            "*CLS": lambda a, s: no_args(a, self.clear_errors()),
            "*OPC?": lambda a, s: no_args(a, "1"),
            "*OPC": lambda a, s: no_args(a, self._set_opc()),
            "*WAI": lambda a, s: no_args(a, None),  # every operation completes before the reply
            "*ESR?": lambda a, s: no_args(a, self._read_esr()),
            "*STB?": lambda a, s: no_args(a, str(self.status_byte())),
            "*ESE": lambda a, s: setattr(self, "_ese", expect(a, 1)[0].integer("ESE", 0, 255)),
            "*ESE?": lambda a, s: no_args(a, str(self._ese)),
            "*SRE": lambda a, s: setattr(self, "_sre", expect(a, 1)[0].integer("SRE", 0, 255) & ~64),
            "*SRE?": lambda a, s: no_args(a, str(self._sre)),
            "*TST?": lambda a, s: no_args(a, "0"),
            ":SYSTem:ERRor[:NEXT]?": lambda a, s: no_args(a, self._next_error()),
            ":SYSTem:ERRor:COUNt?": lambda a, s: no_args(a, str(len(self._errors))),
            ":SYSTem:ERRor:ALL?": lambda a, s: no_args(a, self._all_errors()),
            ":SYSTem:VERSion?": lambda a, s: no_args(a, "1999.0"),
            ":STATus:PRESet": lambda a, s: no_args(a, None),
        }

    def _rst(self) -> None:
        self.reset()

    def _set_opc(self) -> None:
        self._esr |= 1

    def _read_esr(self) -> str:
        value, self._esr = self._esr, 0
        return str(value)

    def _next_error(self) -> str:
        return self._errors.popleft() if self._errors else '0,"No error"'

    def _all_errors(self) -> str:
        entries = list(self._errors) or ['0,"No error"']
        self._errors.clear()
        return ",".join(entries)
