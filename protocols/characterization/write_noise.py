"""write-noise: program the same targets repeatedly and record the distribution reached."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from protocols.characterization.programming import (
    CellsWithTargets,
    WriteVerifyParams,
    averaged_read,
    estimate,
    program,
    versus_target,
)
from protocols.characterization.write_verify_algorithm import RESET, WriteVerifyConfig
from protocols.engine.datasets import PulseHistory, Spec, Stream
from protocols.engine.protocol import Step, param

ERASE_GATE = WriteVerifyConfig.reset_gate  # V, word line fully on for the erase RESETs


class WriteNoise(CellsWithTargets):
    """Erase and re-program the same targets ``repeats`` times; record each read-back (write noise)."""

    name = "write-noise"
    signal = "readback"

    @dataclass
    class Params(WriteVerifyParams):
        cells: list[str] = param(["0:0-7:0-7"], help="cells: 'M' or 'M:R0-R1:C0-C1', several allowed")
        targets: list[float] = param([10e-6, 30e-6, 60e-6], unit="S", limits=(0.5e-6, 150e-6),
                                     help="targets, assigned to the cells in turn")
        repeats: int = param(8, limits=(1, 10_000), help="erase-and-program cycles")
        erase_amplitude: float = param(1.6, unit="V", limits=(0.5, 3.0), envelope="reset_pulse",
                                       help="RESET pulse that erases the cells before each cycle")
        erase_pulses: int = param(3, limits=(0, 100), help="erase pulses per cycle (0: program from where it is)")
        readback_reads: int = param(16, limits=(1, 256), help="reads averaged in each read-back")

    def datasets(self) -> Sequence[Spec]:
        n, cells = self.cell_specs()
        return [
            *cells,
            Stream("readback", units="S", shape=(n,), dtype="f4", long_name="averaged read-back of each cycle"),
            Stream("erased", units="S", shape=(n,), dtype="f4", long_name="read after the erase pulses"),
            Stream("readback_std", units="S", shape=(n,),
                   long_name="standard deviation of each cell's read-backs over the cycles (after the last)"),
            PulseHistory(),
            versus_target("readback_std"),
        ]

    def outcome(self) -> dict:
        """Median over cells of the read-back spread over the cycles (write noise) and of the
        offset of the mean read-back from the target; fraction of converged cell-cycles."""
        readback = self.recorded("readback")
        return {"cycles": (len(readback), ""),
                "median_sigma": (float(np.nanmedian(self.recorded("readback_std")[-1])), "S"),
                "median_offset": (float(np.nanmedian(np.abs(np.nanmean(readback, axis=0) - self.target))), "S"),
                "converged_fraction": (float(np.mean(self.recorded("converged"))), "")}

    def plan(self) -> Iterator[Step]:
        for k in range(self.p.repeats):
            yield Step(f"cycle {k + 1}", partial(self.cycle, k), estimate=estimate(self.p))

    def cycle(self, k: int) -> None:
        """Erase (strong RESETs), program, read back."""
        board, n = self.bench.macro_controller, self.macro.size
        g = np.full(n, np.nan)
        for _ in range(self.p.erase_pulses):
            self.check()
            t = self.bench.clock.now()
            g = board.pulse_batch(self.macro, self.row, self.col, RESET, self.p.erase_amplitude, self.p.width,
                                  ERASE_GATE)
            self.record_pulses(macro=self.macro, row=self.row, col=self.col, polarity=RESET,
                               amplitude=self.p.erase_amplitude, width=self.p.width, gate=ERASE_GATE, read=g, time=t)
        self.record("erased", g)
        program(self, self.p, self.macro, self.row, self.col, self.target)
        self.record("readback", averaged_read(board, self.macro, self.row, self.col, self.p.readback_reads,
                                              window=self.p.read_window))
        if k == self.p.repeats - 1:  # every cycle's read-back, earlier sessions' too (resume)
            readback = self.recorded("readback")
            self.record("readback_std", readback.std(axis=0, ddof=1) if len(readback) > 1
                        else np.full(n, np.nan))
