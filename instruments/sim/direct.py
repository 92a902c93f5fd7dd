"""The board's batch interface called straight on the world, in process.

Write-verify and the other array algorithms talk to anything with
``pulse_batch``/``read_batch`` (the controller driver on a real or simulated bench).
This adapter gives the same interface over a :class:`SimWorld` without a link, for
benchmarks that compare the loopback path against the bare physics and for fast unit
tests of one algorithm. Benches never use it.
"""

from __future__ import annotations

import numpy as np

from instruments.sim.world import SimWorld


class DirectArrayAccess:
    """``pulse_batch``/``read_batch`` of the controller driver, applied to ``world``."""

    def __init__(self, world: SimWorld, *, read_bias: float = 0.1, read_window: float = 1e-6) -> None:
        self.world = world
        self.read_bias = read_bias  # V, verify read after each pulse batch
        self.read_window = read_window  # s
        self.round_trips = 0  # calls, the in-process analogue of board round trips

    def pulse_batch(self, macro, row, col, polarity, amplitude, width, gate) -> np.ndarray:
        """Pulse every cell once, then return its verify read (S), like the board does."""
        self.round_trips += 1
        self.world.pulse(macro, row, col, polarity, amplitude, width, gate)
        return np.asarray(self.world.read(macro, row, col, self.read_bias, self.read_window))

    def read_batch(self, macro, row, col, bias: float = 0.1, window: float = 1e-6) -> np.ndarray:
        """Read every cell (S)."""
        self.round_trips += 1
        return np.asarray(self.world.read(macro, row, col, bias, window))
