"""Shared pytest fixtures."""

from __future__ import annotations

import signal

import pytest

from instruments.sim.world import SimWorld

# Ctrl-C as at a terminal. A job a non-interactive shell starts in the background (CI) inherits
# SIGINT ignored, and Python then keeps it ignored, in pytest and in every command a test starts:
# the Ctrl-C tests would test nothing. With Python's handler here, the commands start with the
# default disposition (exec resets a handled signal), as they do from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def world() -> SimWorld:
    """A fresh simulated world: 8 formed macros of 32x32 cells, seed 0, default device."""
    return SimWorld(seed=0)
