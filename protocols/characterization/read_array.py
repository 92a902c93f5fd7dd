"""read-array: read every cell of chosen macros into conductance maps."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from protocols.engine.bench_shape import BenchShape
from protocols.engine.datasets import Constant, Spec, Stream
from protocols.engine.protocol import ParameterError, Protocol, Step, param

MACRO_READ_TIME = 0.02  # s, typical duration of one whole-macro read (board round trip)


class ReadArray(Protocol):
    """Read every cell of chosen macros into conductance maps (S)."""

    name = "read-array"
    signal = "conductance"

    @dataclass
    class Params:
        macros: list[int] = param([0], limits=(0, 255), help="macros to read, one step each")
        bias: float = param(0.1, unit="V", limits=(0.01, 0.5), envelope="read_bias", help="read voltage")
        window: float = param(1e-6, unit="s", limits=(1e-8, 1e-2), help="integration window per read")
        repeats: int = param(1, limits=(1, 100_000), help="reads of each macro (read-noise statistics)")
        wait: float = param(0.0, unit="s", limits=(0.0, 1e7), help="bench time waited before each macro")

    def validate(self, shape: BenchShape) -> None:
        too_big = [m for m in self.p.macros if m >= shape.n_macros]
        if too_big:
            raise ParameterError(f"macros={too_big} do not exist: the board has {shape.n_macros} macros")

    def datasets(self) -> Sequence[Spec]:
        info = self.bench.macro_controller.info()
        return [
            Stream("conductance", units="S", shape=(info.rows, info.cols), dtype="f4",
                   axes=("time", "row", "col"), long_name="read conductance"),
            Stream("time", units="s", long_name="bench clock at the read"),
            Stream("macro", units="", dtype="i2", long_name="macro read"),
            Constant("row", units="", data=np.arange(info.rows), long_name="row (word line)"),
            Constant("col", units="", data=np.arange(info.cols), long_name="column (bit line)"),
        ]

    def outcome(self) -> dict:
        """Maps read; median, 5th and 95th percentile of every conductance read."""
        g = self.recorded("conductance")
        p5, median, p95 = np.nanpercentile(g, [5, 50, 95])
        return {"maps": (len(g), ""), "median_conductance": (float(median), "S"),
                "conductance_p5": (float(p5), "S"), "conductance_p95": (float(p95), "S")}

    def plan(self) -> Iterator[Step]:
        estimate = self.p.wait + self.p.repeats * MACRO_READ_TIME
        for macro in self.p.macros:
            yield Step(f"read macro {macro}", partial(self.read_macro, macro), estimate=estimate)

    def read_macro(self, macro: int) -> None:
        """Wait, then read the whole macro ``repeats`` times."""
        self.bench.clock.sleep(self.p.wait)
        for k in range(self.p.repeats):
            self.check()
            g = self.bench.macro_controller.read_macro(macro, bias=self.p.bias, window=self.p.window)
            self.record("conductance", g)
            self.record("time", self.bench.clock.now())
            self.record("macro", macro)
            self.progress((k + 1) / self.p.repeats)
