"""Shared fixtures of the simulator tests."""

from __future__ import annotations

import os

import pytest

from instruments.sim.spice import ngspice_available


@pytest.fixture(scope="module")
def ngspice() -> None:
    """Skip without the ngspice binary, unless in CI (env CI set), where a missing ngspice fails."""
    if not ngspice_available():
        if os.environ.get("CI"):
            pytest.fail("ngspice is missing in CI (Debian: apt-get install ngspice)")
        pytest.skip("ngspice not installed (Debian: apt-get install ngspice)")
