"""retention: program levels, then read them back at log-spaced times."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from analysis.device_metrics import level_separability
from protocols.characterization.multilevel import LevelsOnCells
from protocols.characterization.programming import (
    WriteVerifyParams,
    averaged_read,
    estimate,
    failed_cells,
    program,
    result_streams,
)
from protocols.engine.bench_shape import BenchShape
from protocols.engine.datasets import PulseHistory, Spec, Stream
from protocols.engine.protocol import Step, param


class Retention(LevelsOnCells):
    """Program levels, then read them at log-spaced times up to t_max (bench clock)."""

    name = "retention"
    signal = "conductance"

    @dataclass
    class Params(WriteVerifyParams):
        gate: float = param(3.3, unit="V", limits=(0.0, 3.3), envelope="gate",
                            help="word-line voltage of SET pulses (3.3 V reaches the top levels)")
        region: str = param("0", help="cells used: 'M' or 'M:R0-R1:C0-C1'")
        levels: int = param(8, limits=(2, 256), help="conductance levels across the window")
        per_level: int = param(128, limits=(1, 1024), help="cells programmed to each level")
        g_low: float = param(3e-6, unit="S", limits=(0.5e-6, 150e-6), help="lowest level")
        g_high: float = param(115e-6, unit="S", limits=(0.5e-6, 150e-6), help="highest level")
        assign_seed: int = param(0, limits=(0, 2**31 - 1), help="seed of the cell-to-level shuffle")
        t_first: float = param(1.0, unit="s", limits=(1e-3, 1e8), help="first read, after programming")
        t_max: float = param(1e6, unit="s", limits=(1e-3, 1e8), help="last read, after programming")
        points: int = param(13, limits=(1, 200), help="read times, log-spaced from t_first to t_max")
        readback_reads: int = param(16, limits=(1, 256), help="reads averaged at each read time")

    def times(self) -> np.ndarray:
        """Read times after the end of programming (s)."""
        if not self.p.t_first <= self.p.t_max:
            raise ValueError(f"t_first ({self.p.t_first:g} s) must not exceed t_max ({self.p.t_max:g} s)")
        return np.geomspace(self.p.t_first, self.p.t_max, self.p.points)

    def validate(self, shape: BenchShape) -> None:
        super().validate(shape)
        self.times()

    def datasets(self) -> Sequence[Spec]:
        n = self.select_level_cells()
        return [
            *self.level_constants(),
            *result_streams(n),
            Stream("programmed_at", units="s", long_name="bench clock when programming ended"),
            Stream("conductance", units="S", shape=(n,), dtype="f4", axes=("time_after", "."),
                   long_name="averaged read at each time"),
            Stream("time_after", units="s", long_name="time since the end of programming"),
            PulseHistory(),
        ]

    def plan(self) -> Iterator[Step]:
        yield Step("program the levels", self.program, estimate=estimate(self.p))
        previous = 0.0
        for t in self.times():
            yield Step(f"read at {t:.3g} s", partial(self.read_at, float(t)), estimate=float(t) - previous)
            previous = float(t)

    def program(self) -> None:
        program(self, self.p, self.macro, self.row, self.col, self.levels_g[self.level])
        self.record("programmed_at", self.bench.clock.now())

    def outcome(self) -> dict:
        """Time of the last read after programming, median drift of G from the first read to
        the last, separable levels at both (:func:`analysis.device_metrics.separability_rule`;
        cells that failed to program left out)."""
        g, after = self.recorded("conductance"), self.recorded("time_after")
        failed = failed_cells(self)
        first, last = (level_separability(g[k], self.level, self.levels_g, failed=failed).separable
                       for k in (0, -1))
        return {"reads": (len(g), ""), "last_read_after": (float(after[-1]), "s"),
                "median_drift": (float(np.nanmedian(g[-1] - g[0])), "S"),
                "separable_levels_first": (first, ""), "separable_levels_last": (last, "")}

    def read_at(self, t: float) -> None:
        """Wait (bench clock) until ``t`` s after programming, then read every cell (averaged).

        The end of programming is read back from ``programmed_at``, so a resumed run
        keeps the schedule of the session that programmed.
        """
        t_prog = float(self.recorded("programmed_at")[-1])
        wait = t_prog + t - self.bench.clock.now()
        if wait > 0:
            self.bench.clock.sleep(wait)
        g = averaged_read(self.bench.macro_controller, self.macro, self.row, self.col, self.p.readback_reads,
                          window=self.p.read_window)
        self.record("conductance", g)
        self.record("time_after", self.bench.clock.now() - t_prog)
