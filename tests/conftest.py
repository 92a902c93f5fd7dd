"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

from instruments.sim.world import SimWorld


@pytest.fixture
def world() -> SimWorld:
    """A fresh simulated world: 8 formed macros of 32x32 cells, seed 0, default device."""
    return SimWorld(seed=0)
