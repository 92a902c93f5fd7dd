"""read-noise: repeated reads at several integration windows and time scales."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from protocols.characterization.programming import (
    CellsWithTargets,
    WriteVerifyParams,
    estimate,
    program,
)
from protocols.engine.datasets import PulseHistory, Spec, Stream
from protocols.engine.protocol import Step, param


class ReadNoise(CellsWithTargets):
    """Program cells, then read them ``repeats`` times per integration window and read interval."""

    name = "read-noise"
    signal = "conductance"

    @dataclass
    class Params(WriteVerifyParams):
        cells: list[str] = param(["0:0-3:0-7"], help="cells: 'M' or 'M:R0-R1:C0-C1', several allowed")
        targets: list[float] = param([2e-6, 10e-6, 30e-6, 65e-6], unit="S", limits=(0.5e-6, 150e-6),
                                     help="targets programmed first, assigned to the cells in turn")
        program_first: bool = param(True, help="write-verify the targets before reading (false: read as is)")
        windows: list[float] = param([1e-7, 1e-6, 1e-5, 1e-3], unit="s", limits=(1e-8, 1e-2),
                                     help="integration windows")
        intervals: list[float] = param([0.0, 1.0], unit="s", limits=(0.0, 1e5),
                                       help="time between repeated reads (time scales; 0: back to back)")
        repeats: int = param(50, limits=(2, 100_000), help="reads per window and interval")
        bias: float = param(0.1, unit="V", limits=(0.01, 0.5), envelope="read_bias", help="read voltage")

    def datasets(self) -> Sequence[Spec]:
        n, cells = self.cell_specs()
        return [
            *cells,
            Stream("conductance", units="S", shape=(n,), dtype="f4", axes=("time", "."),
                   long_name="one read of every cell"),
            Stream("window", units="s", long_name="integration window of the read"),
            Stream("interval", units="s", long_name="time between this series' reads"),
            Stream("time", units="s", long_name="bench clock at the read"),
            PulseHistory(),
        ]

    def plan(self) -> Iterator[Step]:
        if self.p.program_first:
            yield Step("program the cells", self.program, estimate=estimate(self.p))
        for window in self.p.windows:
            for interval in self.p.intervals:
                yield Step(f"reads over {window:.3g} s every {interval:.3g} s", partial(self.reads, window, interval),
                           estimate=self.p.repeats * (interval + window))

    def program(self) -> None:
        program(self, self.p, self.macro, self.row, self.col, self.target)

    def outcome(self) -> dict:
        """Median over cells of the relative read noise sigma/G at the shortest and the longest
        integration window (every interval's reads of that window together)."""
        g, window = self.recorded("conductance"), self.recorded("window")
        out: dict = {}
        for label, w in (("short", window.min()), ("long", window.max())):
            reads = g[window == w]
            with np.errstate(invalid="ignore", divide="ignore"):
                relative = np.nanmedian(np.nanstd(reads, axis=0) / np.abs(np.nanmean(reads, axis=0)))
            out[f"window_{label}"] = (float(w), "s")
            out[f"relative_noise_{label}"] = (float(relative), "")
        return out

    def reads(self, window: float, interval: float) -> None:
        """``repeats`` reads of every cell, ``interval`` s apart (bench clock)."""
        n_rows = self.p.repeats
        g = np.empty((n_rows, self.macro.size))
        t = np.empty(n_rows)
        for k in range(n_rows):
            self.check()
            if interval > 0 and k:
                self.bench.clock.sleep(interval)
            t[k] = self.bench.clock.now()
            g[k] = self.bench.macro_controller.read_batch(self.macro, self.row, self.col, self.p.bias, window)
            self.progress((k + 1) / n_rows)
        self.record_rows("conductance", g)
        self.record_rows("window", np.full(n_rows, window))
        self.record_rows("interval", np.full(n_rows, interval))
        self.record_rows("time", t)
