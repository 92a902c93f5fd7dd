"""The programmed network's output field over the plane, measured through the closed loop (Fig. 3d).

The loop integrates ``RC dx/dtau = a x + b y(x) + c xi`` (``docs/circuit-model.md``). With
``a = 0``, ``c = 0`` and a constant time embedding, a short run of ``D`` seconds from ``x0``
moves the integrators by ``b y(x0) D / RC``: the network's output voltage at ``x0`` is
measured by the loop itself, through its DACs, crossbars, amplifiers, integrators and the
readout ADC, with the board's own ops (LOAD_MAPPING, SET_STREAMS, SET_INITIAL,
RUN_SAMPLES, FETCH_END). The run is made twice, with ``b = +1`` and ``b = -1``: over the
short path the state moves the estimate by half the field's change along the path, with
opposite signs, so their mean is the field at ``x0`` to second order.

Procedure: program the network (write-verify, as ``sample`` does), then for each
diffusion time ``t``, the field at a grid of points; beside it the software network's
score at the same points and ``t``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING

import numpy as np

from protocols.diffusion.analog import board_load
from protocols.diffusion.network_programming import programming_specs
from protocols.diffusion.program_model import PROGRAM_TIME, ProgrammedNetwork, ProgramModel
from protocols.engine.datasets import Constant, Spec, Stream
from protocols.engine.protocol import ParameterError, Protocol, Step, param

if TYPE_CHECKING:
    from protocols.engine.bench_shape import BenchShape

FIELD_TIME = 1.0  # s, typical bench time of one diffusion time's grid (estimate only)


class NetworkField(Protocol):
    """Measure the programmed network's output field over a grid at several times t through the loop (Fig. 3d).

    Beside each field, the software network's score at the same points and t."""

    name = "network-field"
    signal = "field_analog"

    @dataclass
    class Params(ProgramModel.Params):   # program-model's parameters (it programs the same way), then these
        times: list[float] = param([1.0, 0.5, 0.2, 0.05], limits=(1e-4, 1.0), help="diffusion times t of the fields")
        grid: int = param(15, limits=(3, 41), help="grid points per axis")
        extent: float = param(1.2, limits=(0.1, 5.0), help="half-width of the square grid, data units")
        window_steps: int = param(10, limits=(1, 1000),
                                  help="board steps (DAC update intervals) each measuring run integrates")
        condition: int = param(0, limits=(0, 255), help="class of a conditional model (ignored otherwise)")

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        self.network = ProgrammedNetwork(self)

    # -- the procedure ----------------------------------------------------------------------
    def plan(self) -> Iterator[Step]:
        yield Step("write-verify the network and read it back", self.network.program, estimate=PROGRAM_TIME)
        for k, t in enumerate(self.p.times):
            yield Step(f"field at t = {t:g}: {self.points.shape[0]} points, b = +1 and -1",
                       partial(self.measure, k), estimate=FIELD_TIME)

    def measure(self, k: int) -> None:
        """The field at diffusion time ``times[k]``: two short loop runs from every grid point."""
        placed = self.network.placed
        board = self.bench.macro_controller
        rc, dt_step = board.loop_rc, board.loop_dt_step
        t = float(self.p.times[k])
        steps = self.p.window_steps
        duration = steps * dt_step
        emb, cond = placed.hidden_volts(t, self.network.condition)
        x0 = placed.to_volts(self.points)
        board_load(board, placed)
        estimates = []
        for b in (1.0, -1.0):
            board.set_streams(dt_step, np.tile(emb, (steps, 1)), cond, np.zeros(steps), np.full(steps, b),
                              np.zeros(steps))
            board.set_initial(x0)
            board.run_samples(len(x0), duration, False, seed=int(self.rng.integers(2**32)))
            estimates.append((board.fetch_end_values() - x0) * rc / (b * duration))
            self.check()
        y = 0.5 * (estimates[0] + estimates[1])
        labels = None if self.network.condition is None else np.full(len(self.points), self.network.condition)
        self.record_rows("field_time", np.array([t]))
        self.record_rows("field_output", y[None])
        self.record_rows("field_analog", placed.score_from_output(y)[None])
        self.record_rows("field_software", self.network.model.net(self.points, t, labels)[None])

    # -- declared data ----------------------------------------------------------------------
    def validate(self, shape: BenchShape) -> None:
        """The model maps and fits the board; a conditional model's class exists; the grid
        stays within the DACs' range."""
        self.network.check(shape)
        try:
            self.network.mapped.to_volts(self.points)
        except ValueError as exc:
            raise ParameterError(f"extent={self.p.extent:g}: {exc}") from None

    def datasets(self) -> Sequence[Spec]:
        n = self.points.shape[0]
        return [
            *programming_specs(self.network.mapped),
            Constant("field_points", "", self.points, long_name="grid points (x1, x2), data units"),
            Stream("field_time", "", long_name="diffusion time t of each field"),
            Stream("field_output", "V", shape=(n, 2), long_name="output-layer voltages measured through the loop"),
            Stream("field_analog", "", shape=(n, 2), long_name="analog score field, 1 / data unit"),
            Stream("field_software", "", shape=(n, 2), long_name="software score field, 1 / data unit"),
        ]

    def outcome(self) -> dict:
        """RMS of analog minus software over every point and time, relative to the software RMS."""
        analog, software = self.recorded("field_analog"), self.recorded("field_software")
        if not len(analog):
            return {}
        rel = float(np.sqrt(np.mean((analog - software) ** 2)) / np.sqrt(np.mean(software**2)))
        return {"fields": (len(analog), ""), "field_error_relative_rms": (rel, "")}

    # -- helpers ----------------------------------------------------------------------------
    @cached_property
    def points(self) -> np.ndarray:
        """(grid^2, 2) data units, row-major over x2 then x1."""
        axis = np.linspace(-self.p.extent, self.p.extent, self.p.grid)
        x1, x2 = np.meshgrid(axis, axis)
        return np.column_stack([x1.ravel(), x2.ravel()])
