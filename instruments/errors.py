"""Exceptions raised by the instrument layer.

Every failure a driver can meet maps onto one of these, so protocols and the run
engine decide what to do from the type alone (retry, abort, mark the run failed).
"""

from __future__ import annotations


class BenchError(Exception):
    """Base class of every error raised by the instrument layer."""


class LimitError(BenchError, ValueError):
    """A request lies outside the bench's safety envelope; nothing was sent."""


class InstrumentError(BenchError):
    """The instrument reported an error (its own text is kept in ``detail``)."""

    def __init__(self, instrument: str, detail: str) -> None:
        super().__init__(f"{instrument}: {detail}")
        self.instrument = instrument
        self.detail = detail


class InstrumentTimeout(BenchError, TimeoutError):
    """No (complete) reply arrived within the transport's timeout."""


class LinkError(BenchError, ConnectionError):
    """The link to an instrument is broken (disconnect, repeated corruption)."""


class ConfigError(BenchError, ValueError):
    """A bench configuration file is missing, unreadable or inconsistent."""
