"""iv-sweep: quasi-static dual I-V sweeps on chosen cells through the SMU.

The SET voltage and RESET onset of each cycle are those of
:func:`analysis.device_metrics.switching_voltages` (re-exported here), the one definition
the report marks in its I-V figure too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from analysis.device_metrics import switching_voltages
from protocols.characterization.cells import parse_selection, select_cells
from protocols.engine.bench_shape import BenchShape
from protocols.engine.datasets import Plot, Spec, Stream
from protocols.engine.protocol import ParameterError, Protocol, Step, param

# Windows the device model documents for the extracted voltages (docs/device-model.md,
# "Quasi-static I-V": SET 0.88-1.22 V and RESET onset -0.92 to -0.78 V, 1st-99th
# percentile; the acceptance windows of its test are these, widened).
SET_WINDOW = (0.5, 1.3)  # V
RESET_WINDOW = (-1.7, -0.7)  # V
POINT_TIME = 20e-3  # s, one SMU point at 1 NPLC (50 Hz), for the estimate


def sweep_voltages(v_max: float, v_min: float, step: float) -> np.ndarray:
    """One dual bipolar cycle: 0 -> v_max -> 0 -> v_min -> 0 V in steps of ``step`` V."""
    if not (v_max > 0 > v_min and step > 0):
        raise ValueError(f"need v_max > 0 > v_min and step > 0, got {v_max}, {v_min}, {step}")
    up = np.arange(0.0, v_max + step / 2, step)
    down = np.arange(0.0, v_min - step / 2, -step)
    return np.concatenate([up, up[-2::-1], down[1:], down[-2::-1]])


class IVSweep(Protocol):
    """Quasi-static dual I-V sweeps (0 -> v_max -> 0 -> v_min -> 0) on chosen cells, N cycles each."""

    name = "iv-sweep"
    signal = "current"

    @dataclass
    class Params:
        cells: list[str] = param(["0:0:0"], help="cells, each routed to the SMU in turn: 'M:R:C' or ranges")
        v_max: float = param(1.5, unit="V", limits=(0.05, 3.0), envelope="smu_level", help="positive sweep limit")
        v_min: float = param(-1.5, unit="V", limits=(-3.0, -0.05), envelope="smu_level",
                             help="negative sweep limit")
        step: float = param(0.02, unit="V", limits=(1e-3, 0.5), help="voltage step")
        compliance: float = param(100e-6, unit="A", limits=(1e-9, 0.1), envelope="smu_compliance",
                                  help="SMU current limit")
        cycles: int = param(5, limits=(1, 1000), help="dual sweeps per cell")
        delay: float = param(1e-3, unit="s", limits=(0.0, 10.0), help="settling delay before each point")

    def validate(self, shape: BenchShape) -> None:
        """Cells on the board, none named twice; a cycle fits the SMU's buffer."""
        select_cells(self.p.cells, *shape.geometry)
        self.voltages()

    def voltages(self) -> np.ndarray:
        volts = sweep_voltages(self.p.v_max, self.p.v_min, self.p.step)
        if volts.size > 2500:
            raise ParameterError(f"step={self.p.step:g} V gives {volts.size} points per cycle; the SMU holds 2500")
        return volts

    def datasets(self) -> Sequence[Spec]:
        info = self.bench.macro_controller.info()
        select_cells(self.p.cells, info.n_macros, info.rows, info.cols)  # refuses cells named twice
        self.groups = [parse_selection(s, info.n_macros, info.rows, info.cols) for s in self.p.cells]
        points = self.voltages().size
        return [
            Stream("voltage", units="V", shape=(points,), long_name="sourced voltage"),
            Stream("current", units="A", shape=(points,), long_name="measured current"),
            Stream("cell", units="", shape=(3,), dtype="i2", long_name="(macro, row, col) of the cycle"),
            Stream("cycle", units="", dtype="i4", long_name="cycle index on its cell"),
            Stream("v_set", units="V", long_name="extracted SET voltage (NaN: none)"),
            Stream("v_reset", units="V", long_name="extracted RESET onset voltage (NaN: none)"),
            # The cycles end to end, one point per row: the default plot draws current against voltage.
            Stream("iv_voltage", units="V", long_name="sourced voltage, every cycle's points in order"),
            Stream("iv_current", units="A", long_name="measured current, every cycle's points in order"),
            Plot("iv_current", ("iv_voltage",), title="current against voltage, every cycle"),
        ]

    def outcome(self) -> dict:
        """Cycles swept, fraction showing a SET and a RESET, median SET and RESET voltages."""
        v_set, v_reset = self.recorded("v_set"), self.recorded("v_reset")
        return {"cycles": (int(v_set.size), ""),
                "set_found_fraction": (float(np.mean(np.isfinite(v_set))), ""),
                "reset_found_fraction": (float(np.mean(np.isfinite(v_reset))), ""),
                "median_v_set": (_median(v_set), "V"), "median_v_reset": (_median(v_reset), "V")}

    def plan(self) -> Iterator[Step]:
        per_cycle = sweep_voltages(self.p.v_max, self.p.v_min, self.p.step).size * (POINT_TIME + self.p.delay)
        for k, text in enumerate(self.p.cells):
            yield Step(f"sweep cells {text}", partial(self.sweep_group, k), estimate=self.p.cycles * per_cycle)

    def sweep_group(self, k: int) -> None:
        """Route each cell of selection ``k`` to the SMU in turn and run ``cycles`` dual sweeps on it."""
        volts = self.voltages()
        macro, row, col = self.groups[k]
        self.bench.smu.configure_voltage_source(self.p.compliance)
        total = macro.size * self.p.cycles
        for j, cell in enumerate(zip(macro.tolist(), row.tolist(), col.tolist(), strict=True)):
            self.bench.macro_controller.route(*cell)
            for cycle in range(self.p.cycles):
                self.check()
                v, i = self.bench.smu.sweep_list(volts, delay=self.p.delay)
                v_set, v_reset = switching_voltages(v, i, self.p.compliance)
                self.record("voltage", v)
                self.record("current", i)
                self.record("cell", np.array(cell))
                self.record("cycle", cycle)
                self.record("v_set", v_set)
                self.record("v_reset", v_reset)
                self.record_rows("iv_voltage", v)
                self.record_rows("iv_current", i)
                self.progress((j * self.p.cycles + cycle + 1) / total)
        self.bench.macro_controller.unroute()


def _median(values: np.ndarray) -> float:
    """Median of the finite values, NaN when there are none."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")
