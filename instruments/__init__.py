"""Transports, instrument drivers, bench composition and the safety envelope.

The simulated bench lives in :mod:`instruments.sim`.
"""

__version__ = "0.1.0"
