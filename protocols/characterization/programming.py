"""What every programming protocol shares: write-verify parameters and one helper.

``write-verify``, ``multilevel``, ``pattern``, ``retention`` and ``write-noise``
declare their ``Params`` as subclasses of :data:`WriteVerifyParams` (made from the
exposed fields of :class:`~protocols.characterization.write_verify_algorithm.WriteVerifyConfig`),
so the algorithm's settings carry the same names, units and limits everywhere, and call
:func:`program` from a step: it runs :func:`~protocols.characterization.write_verify_algorithm.write_verify`
on the board, records every pulse in the run file's pulse table and returns the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from protocols.characterization.cells import select_cells
from protocols.characterization.write_verify_algorithm import WriteVerifyConfig, WriteVerifyResult, write_verify
from protocols.characterization.write_verify_algorithm import (
    averaged_read as averaged_read,  # re-exported for the protocols
)
from protocols.engine.datasets import Constant, Plot, Spec, Stream
from protocols.engine.params import ParameterError, params_of, specs
from protocols.engine.protocol import Protocol

if TYPE_CHECKING:
    from instruments.limits import Limits
    from protocols.engine.bench_shape import BenchShape

PULSE_TIME = 1e-3  # s, bench-time estimate of one pulse batch round trip (dry-run ETA)
G_WINDOW = (0.5e-6, 150e-6)  # S, targets the device window allows


#: Write-verify settings shared by the programming protocols (see docs/write-verify.md):
#: the exposed fields of :class:`WriteVerifyConfig`, declared there once.
WriteVerifyParams = params_of(WriteVerifyConfig, "WriteVerifyParams", module=__name__)


def wv_config(p: WriteVerifyParams) -> WriteVerifyConfig:
    """The algorithm's configuration from a protocol's parameters (other settings: defaults);
    ParameterError when they contradict each other or a fixed setting (set_stop below set_start)."""
    try:
        return WriteVerifyConfig(**{s.name: getattr(p, s.name) for s in specs(WriteVerifyParams)})
    except ValueError as exc:
        raise ParameterError(f"write-verify settings: {exc}") from None


def check_wv_limits(p: WriteVerifyParams, limits: Limits) -> None:
    """Refuse settings that would drive the array beyond the envelope (before any I/O).

    Every setting of the configuration declared with an envelope check is checked (the
    parameter, else the fixed default), ``gate_stop`` only when the gate climbs
    (``incremental_gate``). Their consistency is ``validate``'s (:func:`wv_config`).
    """
    exposed = {s.name for s in specs(WriteVerifyParams)}
    for spec in specs(WriteVerifyConfig):
        if spec.envelope is not None and (p.incremental_gate or spec.name != "gate_stop"):
            getattr(limits, spec.envelope)(getattr(p, spec.name) if spec.name in exposed else spec.default)


def check_targets(name: str, g: np.ndarray) -> None:
    """Refuse target conductances (S) outside the device window, naming the parameter."""
    g = np.asarray(g, dtype=float)
    lo, hi = G_WINDOW
    if not np.all(np.isfinite(g)) or g.min() < lo or g.max() > hi:
        raise ValueError(f"{name}: target conductances must lie within {lo * 1e6:g}..{hi * 1e6:g} µS, "
                         f"got {g.min() * 1e6:.3g}..{g.max() * 1e6:.3g} µS")


def result_streams(n: int, prefix: str = "") -> list[Spec]:
    """Per-cell outcome streams of one programming pass over ``n`` cells (one row per pass)."""
    return [
        Stream(f"{prefix}programmed", units="S", shape=(n,), dtype="f4", long_name="averaged read-back"),
        Stream(f"{prefix}pulses_per_cell", units="", shape=(n,), dtype="i2", long_name="pulses applied"),
        Stream(f"{prefix}converged", units="", shape=(n,), dtype="i1", long_name="1: within tolerance"),
        Stream(f"{prefix}stuck", units="", shape=(n,), dtype="i1", long_name="1: declared stuck"),
        Stream(f"{prefix}iterations", units="", dtype="i4", long_name="write-verify iterations (batched exchanges)"),
        Stream(f"{prefix}round_trips", units="", dtype="i4", long_name="board round trips counted by the driver"),
        # One row per pulse batch, written while the step runs: live convergence for viewers.
        Stream(f"{prefix}rms_error", units="S", dtype="f8",
               long_name="RMS |G - target| over non-stuck cells after each pulse batch"),
    ]


def program(proto: Protocol, p: WriteVerifyParams, macro: np.ndarray, row: np.ndarray, col: np.ndarray,
            target: np.ndarray, *, prefix: str = "") -> WriteVerifyResult:
    """Write-verify ``target`` (S) into the cells from a step; records pulses and outcomes.

    The result's ``final`` is the last averaged read of each cell (its read-back map);
    every pulse goes to the run's pulse table with its cell, polarity, amplitude (V),
    width (s), gate (V), verify read (S) and bench time (s).
    """
    bench = proto.bench
    n = np.asarray(target).size

    recorded = 0  # entries of error_per_iteration already in the run file

    def progress(iteration: int, partial: WriteVerifyResult) -> None:
        nonlocal recorded
        done = partial.converged | partial.stuck | (partial.pulses >= p.max_pulses)
        proto.progress(float(done.mean()) if n else 1.0)
        for error in partial.error_per_iteration[recorded:]:
            proto.record(f"{prefix}rms_error", error)
        recorded = len(partial.error_per_iteration)

    trips = bench.macro_controller.round_trips
    result = write_verify(bench.macro_controller, macro, row, col, target, wv_config(p), now=bench.clock.now,
                          sleep=bench.clock.sleep, check=proto.check, on_iteration=progress)
    trips = bench.macro_controller.round_trips - trips
    pulses = result.pulse_log.arrays()
    if pulses["cell"].size:
        cell = pulses["cell"]
        proto.record_pulses(macro=macro[cell], row=row[cell], col=col[cell], polarity=pulses["polarity"],
                            amplitude=pulses["amplitude"], width=pulses["width"], gate=pulses["gate"],
                            read=pulses["read"], time=pulses["time"])
    proto.record(f"{prefix}programmed", result.final)
    proto.record(f"{prefix}pulses_per_cell", result.pulses)
    proto.record(f"{prefix}converged", result.converged)
    proto.record(f"{prefix}stuck", result.stuck)
    proto.record(f"{prefix}iterations", result.iterations)
    proto.record(f"{prefix}round_trips", trips)
    return result


def estimate(p: WriteVerifyParams) -> float:
    """Bench time (s) of one programming pass: about 2 round trips per pulse of the budget's median."""
    return 2 * min(p.max_pulses, 15) * PULSE_TIME + max(p.settle, 0.0) * 10


class ProgrammingProtocol(Protocol):
    """A protocol that places conductances with write-verify (``Params`` extend
    :data:`WriteVerifyParams`): dry-run checks the algorithm's pulses against the envelope."""

    def check_limits(self, limits: Limits) -> None:
        super().check_limits(limits)
        check_wv_limits(self.p, limits)

    def validate(self, shape: BenchShape) -> None:
        """The write-verify settings agree with each other and with the fixed ones."""
        super().validate(shape)
        wv_config(self.p)

    def board_geometry(self) -> tuple[int, int, int]:
        """(n_macros, rows, cols) the open bench's board reports."""
        info = self.bench.macro_controller.info()
        return info.n_macros, info.rows, info.cols

    def select_cells_with_targets(self, selections: list[str], targets: list[float],
                                  geometry: tuple[int, int, int] | None = None) -> int:
        """Choose the cells of ``selections`` (see :mod:`protocols.characterization.cells`) and give them
        ``targets`` (S, repeated to cover the cells); returns the number of cells. ``geometry``:
        (n_macros, rows, cols), the open bench's board's when None."""
        self.macro, self.row, self.col = select_cells(selections, *(geometry or self.board_geometry()))
        self.target = np.resize(np.asarray(targets, dtype=float), self.macro.size)
        check_targets("targets", self.target)
        return self.macro.size


class CellsWithTargets(ProgrammingProtocol):
    """A programming protocol whose ``Params`` name ``cells`` (selections) and ``targets``
    (S, given to the cells in turn): ``read-noise`` and ``write-noise``."""

    def validate(self, shape: BenchShape) -> None:
        super().validate(shape)
        self.select_cells_with_targets(self.p.cells, self.p.targets, shape.geometry)

    def cell_specs(self) -> tuple[int, list[Spec]]:
        """Choose the cells on the open bench: their number and what every such run records of them."""
        n = self.select_cells_with_targets(self.p.cells, self.p.targets)
        return n, [*cell_constants(self.macro, self.row, self.col, self.target), *result_streams(n)]


def cell_constants(macro: np.ndarray, row: np.ndarray, col: np.ndarray,
                   target: np.ndarray | None = None) -> list[Spec]:
    """The cell list of a run (and each cell's target conductance in S) as constants."""
    specs: list[Spec] = []
    if target is not None:
        specs.append(Constant("target", units="S", data=target, long_name="target conductance of each cell"))
    return specs + [
        Constant("cell_macro", units="", data=macro, long_name="macro of each cell"),
        Constant("cell_row", units="", data=row, long_name="row of each cell"),
        Constant("cell_col", units="", data=col, long_name="column of each cell"),
    ]


def versus_target(signal: str) -> Plot:
    """The default plot of a programming run: ``signal`` (one row of per-cell S) against each
    cell's ``target`` conductance (the constant of :func:`cell_constants`)."""
    return Plot(signal, (".", "target"), interpretation="spectrum", title=f"{signal} against target conductance")


def programming_outcome(proto: Protocol, target: np.ndarray, prefix: str = "") -> dict[str, tuple[Any, str]]:
    """Key metrics of the last programming pass the run recorded: cells, converged fraction,
    stuck cells, median pulses per cell and RMS error (S) of the read-back against ``target`` (S)."""
    error = proto.recorded(f"{prefix}programmed")[-1] - np.asarray(target, dtype=float)
    finite = error[np.isfinite(error)]
    return {
        "cells": (int(error.size), ""),
        "converged_fraction": (float(np.mean(proto.recorded(f"{prefix}converged")[-1])), ""),
        "stuck_cells": (int(np.sum(proto.recorded(f"{prefix}stuck")[-1])), ""),
        "median_pulses": (float(np.median(proto.recorded(f"{prefix}pulses_per_cell")[-1])), ""),
        "rms_error": (float(np.sqrt(np.mean(finite**2))) if finite.size else float("nan"), "S"),
    }


def failed_cells(proto: Protocol, prefix: str = "") -> np.ndarray:
    """Cells that failed to program in the last recorded pass (stuck or not converged), (n,) bool."""
    stuck = np.asarray(proto.recorded(f"{prefix}stuck")[-1], bool)
    return stuck | ~np.asarray(proto.recorded(f"{prefix}converged")[-1], bool)
