"""write-verify: program a target conductance matrix into chosen macro regions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from protocols.characterization import programming as pg
from protocols.characterization.cells import select_cells
from protocols.characterization.files import load_npy
from protocols.characterization.programming import ProgrammingProtocol, WriteVerifyParams
from protocols.engine.bench_shape import BenchShape
from protocols.engine.datasets import PulseHistory, Spec, Stream
from protocols.engine.protocol import ParameterError, Step, param


class WriteVerify(ProgrammingProtocol):
    """Program target conductances into macro regions, array-parallel (one round trip per iteration)."""

    name = "write-verify"
    signal = "programmed"

    @dataclass
    class Params(WriteVerifyParams):
        regions: list[str] = param(["0"], help="cells to program: 'M' or 'M:R0-R1:C0-C1', several allowed")
        targets: str = param("random", choices=("random", "file"), help="random targets or a .npy file")
        g_low: float = param(2e-6, unit="S", limits=(0.5e-6, 150e-6), help="lowest random target")
        g_high: float = param(65e-6, unit="S", limits=(0.5e-6, 150e-6), help="highest random target")
        target_seed: int = param(0, limits=(0, 2**31 - 1), help="seed of the random targets")
        target_file: str = param("", help=".npy of targets in S, one per selected cell (row-major) or a map")

    def validate(self, shape: BenchShape) -> None:
        """Regions on the board and not overlapping; targets (random or the file) one per cell."""
        super().validate(shape)
        macro, _, _ = select_cells(self.p.regions, *shape.geometry)
        self.targets(macro.size)

    def datasets(self) -> Sequence[Spec]:
        info = self.bench.macro_controller.info()
        self.macro, self.row, self.col = select_cells(self.p.regions, info.n_macros, info.rows, info.cols)
        self.target = self.targets(self.macro.size)
        n = self.macro.size
        return [
            *pg.cell_constants(self.macro, self.row, self.col, self.target),
            *pg.result_streams(n),
            Stream("stuck_cells", units="", shape=(3,), dtype="i2", long_name="(macro, row, col) of stuck cells"),
            PulseHistory(),
            pg.versus_target("programmed"),
        ]

    def outcome(self) -> dict:
        """Converged fraction, stuck cells, median pulses per cell, RMS error against the targets."""
        return pg.programming_outcome(self, self.target)

    def targets(self, n: int) -> np.ndarray:
        """Target conductances (S) of the ``n`` selected cells, checked against the device window."""
        if self.p.targets == "random":
            if not self.p.g_low < self.p.g_high:
                raise ParameterError(f"g_low ({self.p.g_low:g} S) must be below g_high ({self.p.g_high:g} S)")
            target = np.random.default_rng(self.p.target_seed).uniform(self.p.g_low, self.p.g_high, n)
        else:
            if not self.p.target_file:
                raise ParameterError("targets=file needs target_file (a .npy of conductances in S)")
            target = load_npy("target_file", self.p.target_file).ravel()
            if target.size != n:
                raise ParameterError(f"target_file holds {target.size} values for {n} selected cells")
        pg.check_targets("targets", target)
        return target

    def plan(self) -> Iterator[Step]:
        yield Step("program the regions", self.program, estimate=pg.estimate(self.p))

    def program(self) -> None:
        """Write-verify every selected cell at once; list the stuck cells."""
        result = pg.program(self, self.p, self.macro, self.row, self.col, self.target)
        stuck = np.flatnonzero(result.stuck)
        self.record_rows("stuck_cells", np.stack([self.macro[stuck], self.row[stuck], self.col[stuck]], axis=1))
