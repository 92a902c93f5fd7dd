"""form: electroform pristine cells, stopping each cell on a target read current."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from protocols.characterization.cells import select_cells
from protocols.characterization.write_verify_algorithm import SET
from protocols.engine.bench_shape import BenchShape
from protocols.engine.datasets import Constant, Plot, PulseHistory, Spec, Stream
from protocols.engine.protocol import ParameterError, Protocol, Step, param

POINT_TIME = 20e-3  # s, one SMU point at 1 NPLC (50 Hz), for the estimate


class Form(Protocol):
    """Electroform cells by a pulse train (board, array-parallel) or a DC ramp (SMU) under compliance.

    Each rung raises the voltage by ``v_step``; a cell stops as soon as its read current
    at ``read_bias`` reaches ``target_current``. Cells still below it at ``v_stop`` are
    reported as failed.
    """

    name = "form"
    signal = "read_current"

    @dataclass
    class Params:
        cells: list[str] = param(["0"], help="cells to form: 'M' or 'M:R0-R1:C0-C1', several allowed")
        mode: str = param("pulses", choices=("pulses", "ramp"),
                          help="pulses: board pulse train, all cells at once; ramp: SMU DC ramp, cell by cell")
        v_start: float = param(1.2, unit="V", limits=(0.1, 3.0), help="first rung")
        v_stop: float = param(2.0, unit="V", limits=(0.1, 3.0), help="last rung (checked against the envelope)")
        v_step: float = param(0.05, unit="V", limits=(0.005, 0.5), help="rung increment")
        width: float = param(1e-6, unit="s", limits=(10e-9, 10e-3), envelope="pulse_width",
                             help="pulse width (pulses mode)")
        gate: float = param(1.2, unit="V", limits=(0.0, 3.3), envelope="gate",
                            help="word-line voltage: the 1T1R current compliance (pulses mode)")
        compliance: float = param(100e-6, unit="A", limits=(1e-9, 0.1), envelope="smu_compliance",
                                  help="SMU current limit (ramp mode)")
        read_bias: float = param(0.1, unit="V", limits=(0.01, 0.5), envelope="read_bias", help="verify read voltage")
        target_current: float = param(1e-6, unit="A", limits=(1e-9, 1e-3),
                                      help="read current at read_bias that counts as formed")

    def check_limits(self, limits) -> None:
        super().check_limits(limits)
        if self.p.mode == "pulses":
            limits.set_pulse(self.p.v_stop)
        else:
            limits.smu_level(self.p.v_stop)

    def validate(self, shape: BenchShape) -> None:
        """Cells on the board, none named twice; v_start <= v_stop."""
        select_cells(self.p.cells, *shape.geometry)
        self.rungs()

    def rungs(self) -> np.ndarray:
        """Voltages (V) of the ladder, v_start to v_stop inclusive."""
        if not self.p.v_start <= self.p.v_stop:
            raise ParameterError(f"v_start ({self.p.v_start:g} V) must not exceed v_stop ({self.p.v_stop:g} V)")
        count = int(np.floor((self.p.v_stop - self.p.v_start) / self.p.v_step + 1e-9)) + 1
        return self.p.v_start + self.p.v_step * np.arange(count)

    def datasets(self) -> Sequence[Spec]:
        info = self.bench.macro_controller.info()
        self.macro, self.row, self.col = select_cells(self.p.cells, info.n_macros, info.rows, info.cols)
        n = self.macro.size
        return [
            Constant("cell_macro", units="", data=self.macro),
            Constant("cell_row", units="", data=self.row),
            Constant("cell_col", units="", data=self.col),
            Stream("read_current", units="A", shape=(n,), long_name="read current at read_bias after forming"),
            Stream("form_voltage", units="V", shape=(n,), long_name="rung that formed the cell (NaN: failed)"),
            Stream("formed", units="", shape=(n,), dtype="i1", long_name="1: reached the target read current"),
            Stream("failed_cells", units="", shape=(3,), dtype="i2", long_name="(macro, row, col) not formed"),
            PulseHistory(),
            Constant("rung_voltage", units="V", data=self.rungs(), long_name="voltage of each rung of the ladder"),
            Stream("formed_fraction", units="", shape=(self.rungs().size,),
                   long_name="fraction of the cells formed at or below each rung"),
            Plot("formed_fraction", (".", "rung_voltage"), interpretation="spectrum",
                 title="forming yield against rung voltage"),
        ]

    def outcome(self) -> dict:
        """Cells, formed fraction, median forming voltage of the formed cells, failed cells."""
        v_form = self.recorded("form_voltage")[-1]
        formed = np.isfinite(v_form)
        return {"cells": (int(v_form.size), ""), "formed_fraction": (float(formed.mean()), ""),
                "median_form_voltage": (float(np.median(v_form[formed])) if formed.any() else float("nan"), "V"),
                "failed_cells": (int((~formed).sum()), "")}

    def plan(self) -> Iterator[Step]:
        rungs = self.rungs().size
        per = 1e-3 if self.p.mode == "pulses" else 2 * POINT_TIME * len(self.p.cells)
        yield Step(f"form ({self.p.mode})", self.form, estimate=rungs * per)

    def form(self) -> None:
        """Climb the ladder; record each cell's forming voltage, read current and the failures."""
        v_form, current = self._pulse_train() if self.p.mode == "pulses" else self._ramp()
        formed = np.isfinite(v_form)
        self.record("read_current", current)
        self.record("form_voltage", v_form)
        self.record("formed", formed)
        with np.errstate(invalid="ignore"):  # NaN (failed) is formed at no rung
            self.record("formed_fraction", np.mean(v_form[:, None] <= self.rungs()[None, :] + 1e-9, axis=0))
        failed = np.flatnonzero(~formed)
        self.record_rows("failed_cells", np.stack([self.macro[failed], self.row[failed], self.col[failed]], axis=1))

    def _pulse_train(self) -> tuple[np.ndarray, np.ndarray]:
        """All open cells pulsed at once per rung; the board returns their reads in the same reply."""
        board, bias, n = self.bench.macro_controller, self.p.read_bias, self.macro.size
        current = np.asarray(board.read_batch(self.macro, self.row, self.col, bias), dtype=float) * bias
        v_form = np.full(n, np.nan)
        rungs = self.rungs()
        for k, volts in enumerate(rungs):
            open_ = np.flatnonzero(~np.isfinite(v_form) & (current < self.p.target_current))
            if open_.size == 0:
                break
            self.check()
            m, r, c = self.macro[open_], self.row[open_], self.col[open_]
            t = self.bench.clock.now()
            g = np.asarray(board.pulse_batch(m, r, c, SET, volts, self.p.width, self.p.gate, bias=bias), dtype=float)
            self.record_pulses(macro=m, row=r, col=c, polarity=SET, amplitude=volts, width=self.p.width,
                               gate=self.p.gate, read=g, time=t)
            current[open_] = g * bias
            v_form[open_[current[open_] >= self.p.target_current]] = volts
            self.progress((k + 1) / rungs.size)
        already = ~np.isfinite(v_form) & (current >= self.p.target_current)
        v_form[already] = 0.0  # conducting before the first rung: formed already
        return v_form, current

    def _ramp(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell by cell: route to the SMU, source each rung then the read bias, stop on the target."""
        smu, board, bias, n = self.bench.smu, self.bench.macro_controller, self.p.read_bias, self.macro.size
        v_form, current = np.full(n, np.nan), np.zeros(n)
        smu.configure_voltage_source(self.p.compliance)
        for j, cell in enumerate(zip(self.macro.tolist(), self.row.tolist(), self.col.tolist(), strict=True)):
            board.route(*cell)
            for volts in self.rungs():
                self.check()
                _, amps = smu.sweep_list(np.array([volts, bias]), delay=1e-3)
                current[j] = amps[1]
                if current[j] >= self.p.target_current:
                    v_form[j] = volts
                    break
            self.progress((j + 1) / n)
        board.unroute()
        return v_form, current
