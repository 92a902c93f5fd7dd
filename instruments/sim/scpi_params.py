"""Parameters of SCPI commands: splitting, quoting, typed conversion with SCPI errors.

Used by :mod:`instruments.sim.scpi` and the emulators' handlers: a handler receives
``list[Arg]`` and converts each with :meth:`Arg.number`, :meth:`Arg.boolean`,
:meth:`Arg.choice` or :meth:`Arg.string`; a bad value raises :class:`ScpiError`
with the code a real instrument would queue (-104, -222, -224, -102, -108, -109).

IEEE 488.2 arbitrary block parameters are recognised where a parameter starts:
definite length ``#<d><length><bytes>`` and indefinite ``#0<bytes>`` (to the end of
the message); their bytes are opaque to the ``;`` and ``,`` separators and to quoting,
and reach the handler as an :class:`Arg` with ``block=True``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

ERROR_TEXT: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -300: "Device-specific error",
    -350: "Queue overflow",
    -410: "Query INTERRUPTED",
    -420: "Query UNTERMINATED",
}

_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


class ScpiError(Exception):
    """A SCPI error to queue: ``code`` from :data:`ERROR_TEXT`, ``detail`` for context."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    def entry(self) -> str:
        """Queue entry as ``:SYST:ERR?`` answers it: ``-113,"Undefined header; FOO"``."""
        text = ERROR_TEXT.get(self.code, "Error")
        if self.detail:
            text = f"{text}; {self.detail}"
        return f'{self.code},"{text.replace(chr(34), chr(39))[:120]}"'


# -- parameters ------------------------------------------------------------------------
@dataclass(frozen=True)
class Arg:
    """One parameter of a command, as sent (quotes removed, ``quoted`` remembered)."""

    text: str
    quoted: bool = False
    block: bool = False  # an IEEE 488.2 arbitrary block (``text`` holds its bytes, latin-1)

    def number(self, name: str, lo: float = -math.inf, hi: float = math.inf) -> float:
        """Decimal value in [lo, hi]; ``MIN``/``MAX`` give the bounds; else -104/-222."""
        word = self.text.upper()
        if not self.quoted and word in ("MIN", "MINIMUM") and math.isfinite(lo):
            return lo
        if not self.quoted and word in ("MAX", "MAXIMUM") and math.isfinite(hi):
            return hi
        if self.quoted or self.block or not _NUMBER.match(self.text):
            raise ScpiError(-104, f"{name} expects a number, got {self.text[:30]}")
        value = float(self.text)
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ScpiError(-222, f"{name} {self.text[:30]} outside [{lo:g}, {hi:g}]")
        return value

    def integer(self, name: str, lo: int, hi: int) -> int:
        """Integer value in [lo, hi] (a decimal form is rounded, as instruments do)."""
        return round(self.number(name, lo, hi))

    def boolean(self, name: str) -> bool:
        """``ON``/``OFF`` or a number (non-zero is true); else -224."""
        word = self.text.upper()
        if self.block:
            raise ScpiError(-104, f"{name} expects ON|OFF|1|0, got a block")
        if not self.quoted and word == "ON":
            return True
        if not self.quoted and word == "OFF":
            return False
        if not self.quoted and _NUMBER.match(self.text) and math.isfinite(float(self.text)):
            return round(float(self.text)) != 0
        raise ScpiError(-224, f"{name} expects ON|OFF|1|0, got {self.text[:30]}")

    def choice(self, name: str, options: Sequence[str]) -> str:
        """Match a mnemonic against long-form ``options`` (``POSitive``); returns the option."""
        word = "" if self.block else self.text.upper()
        for option in options:
            if word in (option.upper(), short_form(option)):
                return option
        raise ScpiError(-224, f"{name} expects one of {'|'.join(options)}, got {self.text[:30]}")

    def string(self) -> str:
        """The text, quoted or not."""
        return self.text


def short_form(long_name: str) -> str:
    """SCPI short form: the upper-case part of the long name (``CHANnel`` -> ``CHAN``)."""
    short = "".join(ch for ch in long_name if not ch.islower())
    return short or long_name.upper()


def _valid_char(ch: str) -> bool:
    return ch == "\t" or 32 <= ord(ch) <= 126


def _block_end(text: str, i: int) -> int:
    """Index after the arbitrary block starting at ``text[i] == '#'`` (``#0``: the end)."""
    digits = text[i + 1] if i + 1 < len(text) else ""
    if digits == "0":
        return len(text)
    n = int(digits)
    count = text[i + 2:i + 2 + n]
    if len(count) != n or not count.isdigit():
        raise ScpiError(-102, "bad block header")
    end = i + 2 + n + int(count)
    if end > len(text):
        raise ScpiError(-102, "block shorter than its header says")
    return end


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` except inside '...' or "..." (doubled quotes escape) and
    inside arbitrary blocks (``#<d><n><bytes>``, ``#0<bytes>``) that start a parameter.

    Characters outside blocks must be printable ASCII or tab (else -102).
    """
    parts, current, quote = [], [], ""
    i = 0
    while i < len(text):
        ch = text[i]
        if not _valid_char(ch):
            raise ScpiError(-102, "invalid character")
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""  # a doubled quote re-opens on the next character
        elif ch == "#" and text[i + 1:i + 2].isdigit() and (not current or current[-1] in " \t,"):
            end = _block_end(text, i)
            current.append(text[i:end])
            i = end
            continue
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if quote:
        raise ScpiError(-102, "unterminated string")
    parts.append("".join(current))
    return parts


def parse_args(text: str) -> list[Arg]:
    """Parameters of one command: comma separated, quoted strings unwrapped."""
    if not text.strip():
        return []
    args = []
    for raw in split_outside_quotes(text, ","):
        item = raw.lstrip(" \t")
        if item[:1] == "#" and item[1:2].isdigit():
            args.append(_block_arg(item))
            continue
        item = item.rstrip(" \t")
        if not item:
            raise ScpiError(-102, "empty parameter")
        if item[0] in "'\"":
            quote = item[0]
            if len(item) < 2 or item[-1] != quote:
                raise ScpiError(-102, f"text after string {item[:30]}")
            inner = item[1:-1]
            if quote in inner.replace(quote * 2, ""):
                raise ScpiError(-102, "bad quoting")
            args.append(Arg(inner.replace(quote * 2, quote), quoted=True))
        elif any(ch.isspace() for ch in item) or any(ch in "'\"" for ch in item):
            raise ScpiError(-102, f"malformed parameter {item[:30]}")
        else:
            args.append(Arg(item))
    return args


def _block_arg(item: str) -> Arg:
    """The bytes of an arbitrary-block parameter; nothing but blanks may follow it."""
    end = _block_end(item, 0)
    if item[end:].strip(" \t\r\n"):
        raise ScpiError(-102, "text after a block")
    head = 2 + (0 if item[1] == "0" else int(item[1]))
    return Arg(item[head:end], block=True)


def block(payload: bytes) -> bytes:
    """``payload`` as an IEEE 488.2 definite-length block: ``#8<length><bytes>``."""
    if len(payload) > 99_999_999:
        raise ValueError("block longer than 99999999 bytes")
    return b"#8%08d" % len(payload) + payload


def no_args(args: list[Arg], result):
    """Return ``result`` after checking that the command got no parameters (-108)."""
    if args:
        raise ScpiError(-108, "command takes no parameters")
    return result


def expect(args: list[Arg], least: int, most: int | None = None) -> list[Arg]:
    """Check the parameter count: -109 when too few, -108 when too many."""
    most = least if most is None else most
    if len(args) < least:
        raise ScpiError(-109, f"expected {least} parameter(s), got {len(args)}")
    if len(args) > most:
        raise ScpiError(-108, f"expected at most {most} parameter(s), got {len(args)}")
    return args


def fmt(value: float) -> str:
    """A number the way the emulators answer it (full float precision)."""
    return f"{value:.9E}"
