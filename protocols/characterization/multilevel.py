"""multilevel: program many conductance levels, K cells each, and read them back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from analysis.device_metrics import adjacent_overlap, level_separability
from protocols.characterization import programming as pg
from protocols.characterization.cells import select_cells
from protocols.characterization.programming import ProgrammingProtocol, WriteVerifyParams
from protocols.engine.bench_shape import BenchShape
from protocols.engine.datasets import Constant, PulseHistory, Spec, Stream
from protocols.engine.protocol import Step, param

__all__ = ["Multilevel", "assign_levels", "adjacent_overlap", "level_targets"]


def level_targets(levels: int, g_low: float, g_high: float) -> np.ndarray:
    """``levels`` conductances (S) evenly spaced from ``g_low`` to ``g_high`` (S, g_low < g_high)."""
    if not 0 < g_low < g_high:
        raise ValueError(f"g_low ({g_low:g} S) must be positive and below g_high ({g_high:g} S)")
    return np.linspace(g_low, g_high, levels)


def assign_levels(n_cells: int, levels: int, per_level: int, seed: int) -> np.ndarray:
    """Level index of each of the first ``levels * per_level`` cells, shuffled (no spatial bias)."""
    need = levels * per_level
    if need > n_cells:
        raise ValueError(f"levels x per_level = {need} cells, but the region holds only {n_cells}")
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(levels), per_level))


class LevelsOnCells(ProgrammingProtocol):
    """Base of protocols that spread conductance levels over the cells of one region
    (``Params`` with region, levels, per_level, assign_seed, g_low, g_high)."""

    def validate(self, shape: BenchShape) -> None:
        super().validate(shape)
        self.select_level_cells(shape.geometry)

    def select_level_cells(self, geometry: tuple[int, int, int] | None = None) -> int:
        """Choose the cells and each one's level; returns the number of cells used. ``geometry``:
        (n_macros, rows, cols), the open bench's board's when None."""
        m, r, c = select_cells([self.p.region], *(geometry or self.board_geometry()))
        self.level = assign_levels(m.size, self.p.levels, self.p.per_level, self.p.assign_seed)
        n = self.level.size
        self.macro, self.row, self.col = m[:n], r[:n], c[:n]
        self.levels_g = level_targets(self.p.levels, self.p.g_low, self.p.g_high)
        pg.check_targets("g_low/g_high", self.levels_g)
        return n

    def level_constants(self) -> list[Spec]:
        """Levels (S), each cell's level index, the cell list and each cell's target (S)."""
        return [
            Constant("level_target", units="S", data=self.levels_g, long_name="conductance of each level"),
            Constant("level", units="", data=self.level, long_name="level index of each cell"),
            *pg.cell_constants(self.macro, self.row, self.col, self.levels_g[self.level]),
        ]


class Multilevel(LevelsOnCells):
    """Program evenly spaced conductance levels (default 64, 2 to 65 µS), K cells each; read back."""

    name = "multilevel"
    signal = "readback"

    @dataclass
    class Params(WriteVerifyParams):
        region: str = param("0", help="cells used: 'M' or 'M:R0-R1:C0-C1'")
        levels: int = param(64, limits=(2, 256), help="number of conductance levels")
        per_level: int = param(16, limits=(1, 1024), help="cells programmed to each level (K)")
        g_low: float = param(2e-6, unit="S", limits=(0.5e-6, 150e-6), help="lowest level")
        g_high: float = param(65e-6, unit="S", limits=(0.5e-6, 150e-6), help="highest level")
        assign_seed: int = param(0, limits=(0, 2**31 - 1), help="seed of the cell-to-level shuffle")
        readback_reads: int = param(16, limits=(1, 256), help="reads averaged in the final read-back")

    def datasets(self) -> Sequence[Spec]:
        n = self.select_level_cells()
        return [
            *self.level_constants(),
            *pg.result_streams(n),
            Stream("readback", units="S", shape=(n,), dtype="f4", long_name="averaged read-back after programming"),
            PulseHistory(),
            pg.versus_target("readback"),
        ]

    def outcome(self) -> dict:
        """Separable levels (:func:`analysis.device_metrics.separability_rule`: at most 1 % of two
        adjacent levels' cells beyond the midpoint of their medians, cells that failed to program
        left out and counted), the smallest gap in sigmas and the misplaced fraction of the
        read-back; the programming pass's numbers."""
        stats = level_separability(self.recorded("readback")[-1], self.level, self.levels_g,
                                   failed=pg.failed_cells(self))
        return {"levels": (stats.levels, ""), "separable_levels": (stats.separable, ""),
                "failed_cells": (stats.failed_cells, ""),
                "min_gap_over_sigma": (stats.min_gap_over_sigma, ""), "overlap": (stats.overlap, ""),
                **pg.programming_outcome(self, self.levels_g[self.level])}

    def plan(self) -> Iterator[Step]:
        yield Step("program the levels", self.program, estimate=pg.estimate(self.p))
        yield Step("read back", self.read_back, estimate=0.01)

    def program(self) -> None:
        pg.program(self, self.p, self.macro, self.row, self.col, self.levels_g[self.level])

    def read_back(self) -> None:
        """Averaged read of every cell right after programming."""
        g = pg.averaged_read(self.bench.macro_controller, self.macro, self.row, self.col, self.p.readback_reads,
                          window=self.p.read_window)
        self.record("readback", g)
