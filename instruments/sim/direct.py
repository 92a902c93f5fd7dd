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
        self.pulse_cells_per_frame: int | None = None  # no frame: read-only entries ride in any pulse batch

    def pulse_batch(self, macro, row, col, polarity, amplitude, width, gate, *, bias: float | None = None,
                    window: float | None = None) -> np.ndarray:
        """Pulse every cell once, then return its verify read (S), like the board does: a cell
        of polarity 0 (amplitude 0) is read, not pulsed. ``bias`` V, ``window`` s: the verify
        read (default: this adapter's)."""
        self.round_trips += 1
        if (np.asarray(polarity) != 0).all():
            self.world.pulse(macro, row, col, polarity, amplitude, width, gate)
        else:  # read-only cells among the pulses: the board pulses the others only
            cells = np.broadcast_arrays(*(np.asarray(a) for a in (macro, row, col, polarity, amplitude, width, gate)))
            macro, row, col, pol, amp = cells[:5]
            pulsed = pol != 0
            if (amp[~pulsed] != 0).any():
                raise ValueError("a cell of polarity 0 (read only) must have amplitude 0")
            if pulsed.any():
                self.world.pulse(*(a[pulsed] for a in cells))
        return np.asarray(self.world.read(macro, row, col, self.read_bias if bias is None else bias,
                                          self.read_window if window is None else window))

    def read_batch(self, macro, row, col, bias: float = 0.1, window: float = 1e-6) -> np.ndarray:
        """Read every cell (S)."""
        self.round_trips += 1
        return np.asarray(self.world.read(macro, row, col, bias, window))
