"""Programming a mapped score network on a bench, and what the run file records of it.

Shared by the ``program-model`` and ``sample`` protocols: the datasets declared up
front (:func:`programming_specs`) and the step that write-verifies the network over
``bench.macro_controller`` and records target vs programmed conductances and weights, the
placement and the per-pulse history (:func:`program_and_record`); the touch-up that
refreshes a programmed network during a long sampling run (:func:`refresh_and_record`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np

from protocols.characterization.programming import averaged_read
from protocols.characterization.write_verify_algorithm import WriteVerifyConfig, write_verify
from protocols.diffusion.analog import REFERENCE_READS, Programming, program_network
from protocols.diffusion.mapping import MappedNetwork
from protocols.engine.datasets import Constant, Plot, PulseHistory, Spec, Stream

log = logging.getLogger(__name__)


def programming_specs(mapped: MappedNetwork, prefix: str = "", pulses: bool = True) -> list[Spec]:
    """Datasets of one programming: targets (constants), read-back, placement, pulses.

    prefix: before every name (``decoder_``: the conditional task's decoder, programmed in
    the same run as the score network); pulses: declare the run's pulse table too."""
    n_cells = mapped.cells()[3].size
    n_pairs = n_cells // 2
    n_layers = len(mapped.layers)
    specs = [
        Constant("target_conductance", units="S", data=mapped.cells()[3],
                 long_name="target conductance of every cell (layer by layer, G+ block then G- block)"),
        Constant("target_weight", units="", data=mapped.pair_weights(),
                 long_name="target weight of every pair, data units (bias rows carry b / n_bias)"),
        Constant("voltage_scales", units="V", data=np.array([mapped.x_scale, mapped.h_scale, mapped.y_scale]),
                 long_name="V per data unit of integrators x, hidden pre-activations h, output y"),
        Constant("v_bias", units="V", data=np.array(mapped.v_bias), long_name="bias-row voltage"),
        Stream("programmed_conductance", units="S", shape=(n_cells,),
               long_name="averaged read-back of every cell after programming"),
        Stream("programmed_weight", units="", shape=(n_pairs,),
               long_name="weight of every pair implied by the read-back, data units"),
        Stream("cell_macro", units="", shape=(n_cells,), dtype="i2", long_name="macro of every cell"),
        Stream("cell_row", units="", shape=(n_cells,), dtype="i2", long_name="row of every cell"),
        Stream("cell_col", units="", shape=(n_cells,), dtype="i2", long_name="column of every cell"),
        Stream("layer_region", units="", shape=(n_layers, 6), dtype="i2",
               long_name="per layer: macro, row0, col0, n_in, n_out, bias_rows"),
        Stream("layer_r_feedback", units="ohm", shape=(n_layers,), long_name="TIA feedback resistance per layer"),
        Stream("stuck_cells", units="", dtype="i4", long_name="cells found stuck and avoided"),
        Stream("round_trips", units="", dtype="i4", long_name="board round trips of the write-verify passes"),
    ]
    return [replace(spec, name=prefix + spec.name) for spec in specs] + ([PulseHistory()] if pulses else [])


def weights_plot() -> Plot:
    """The default plot of a programming: each pair's weight from the read-back against its target."""
    return Plot("programmed_weight", (".", "target_weight"), interpretation="spectrum",
                title="programmed weight against target weight")


def network_outcome(proto: Any, mapped: MappedNetwork) -> dict[str, tuple[Any, str]]:
    """Pairs, RMS error of the programmed weights (data units) and of the pairs' conductance
    differences (S), stuck cells avoided and board round trips of the last programming."""
    weights = proto.recorded("programmed_weight")[-1]
    return {"pairs": (int(weights.size), ""),
            "weight_rms_error": (float(np.sqrt(np.nanmean((weights - mapped.pair_weights()) ** 2))), ""),
            "pair_rms_error": (pair_error(mapped, proto.recorded("programmed_conductance")[-1]), "S"),
            "stuck_cells": (int(proto.recorded("stuck_cells")[-1]), ""),
            "round_trips": (int(proto.recorded("round_trips")[-1]), "")}


def program_and_record(proto: Any, mapped: MappedNetwork, config: WriteVerifyConfig, reads: int,
                       prefix: str = "") -> Programming:
    """Write-verify ``mapped`` over ``proto.bench.macro_controller``, read it back, record everything.

    proto: the running protocol (its bench, clock, check and record helpers);
    config: write-verify settings; reads: reads averaged per cell for the read-back (>= 1);
    prefix: of the dataset names (:func:`programming_specs`).
    """
    bench = proto.bench
    info = bench.macro_controller.info()
    outcome = program_network(bench.macro_controller, mapped, config, shape=(info.n_macros, info.rows, info.cols),
                              now=bench.clock.now, sleep=bench.clock.sleep, check=proto.check)
    proto.record_pulses(**outcome.pulse_columns())
    placed = outcome.mapped
    macro, row, col, _ = placed.cells()
    g = averaged_read(bench.macro_controller, macro, row, col, reads, config.read_bias, config.read_window)
    rows = {"programmed_conductance": g, "programmed_weight": placed.pair_weights(g), "cell_macro": macro,
            "cell_row": row, "cell_col": col,
            "layer_region": np.array([[lay.macro, lay.row0, lay.col0, lay.n_in, lay.n_out, lay.bias_rows]
                                      for lay in placed.layers]),
            "layer_r_feedback": np.array([lay.r_feedback for lay in placed.layers]),
            "stuck_cells": len(outcome.stuck), "round_trips": outcome.round_trips + 1}
    for name, value in rows.items():
        proto.record(prefix + name, value)
    outcome.final[:] = g
    return outcome


# -- refresh: touch-up write-verify during a long sampling run ---------------------------

def refresh_specs(mapped: MappedNetwork, with_pulse_table: bool) -> list[Spec]:
    """Datasets of the refreshes (one row each); the pulse table too if nothing else declares it."""
    n_cells = mapped.cells()[3].size
    specs: list[Spec] = [
        Stream("refresh_time", units="s", long_name="bench time at the start of each refresh"),
        Stream("refresh_samples", units="", dtype="i4", long_name="samples taken before each refresh"),
        Stream("refresh_pulsed_cells", units="", dtype="i4",
               long_name="cells that needed pulses (outside tolerance at the refresh's read)"),
        Stream("refresh_rms_error", units="S", shape=(2,),
               long_name="RMS over pairs of (G+ - G-) - target difference: before, after the touch-up"),
        Stream("refresh_conductance", units="S", shape=(n_cells,),
               long_name="averaged read of every cell after each refresh"),
    ]
    return specs + ([PulseHistory()] if with_pulse_table else [])


def pair_error(mapped: MappedNetwork, g: np.ndarray) -> float:
    """RMS over pairs of (G+ - G-) - (T+ - T-), S, for conductances ``g`` (S, cells() order)."""
    target = mapped.cells()[3]
    blocks = mapped.split(np.asarray(g, dtype=float) - target)
    diff = np.concatenate([(pos - neg).ravel() for pos, neg in blocks])
    return float(np.sqrt(np.mean(diff**2)))


def refresh_and_record(proto: Any, mapped: MappedNetwork, config: WriteVerifyConfig, reads: int,
                       samples_done: int) -> tuple[int, float, float]:
    """Touch up a programmed network against the targets it was programmed to; record it.

    One averaged read (``reads`` per cell, >= 1) of every mapped cell; then, as the
    original programming did, the reference cells first (target: their own, ``g_min``
    or both cells of a zero weight), re-measured (``REFERENCE_READS``), then the active
    cells against their measured partner plus the pair's target difference. Only cells
    outside ``config.tolerance`` are write-verified (so only they are pulsed and restart
    their relaxation); an averaged read of every cell follows if any was pulsed.
    samples_done: samples taken so far (recorded). Returns (cells pulsed, RMS pair error
    before, after), S.
    """
    board, clock = proto.bench.macro_controller, proto.bench.clock
    macro, row, col, target = mapped.cells()
    partner, active = mapped.partners()
    gap = np.abs(target - target[partner])
    t0 = clock.now()
    proto.check()
    g = averaged_read(board, macro, row, col, reads, config.read_bias, config.read_window)
    before = pair_error(mapped, g)
    reference_off = ~active & (np.abs(g - target) > config.tolerance)
    pulsed = _touch_up(proto, mapped, config, reference_off, target)
    if reference_off.any():   # the partners of active cells are measured as the original programming did
        ref = np.flatnonzero(~active)
        g[ref] = averaged_read(board, macro[ref], row[ref], col[ref], REFERENCE_READS, config.read_bias,
                               config.read_window)
    goal = np.where(active, g[partner] + gap, target)
    active_off = active & (np.abs(g - goal) > config.tolerance)
    pulsed += _touch_up(proto, mapped, config, active_off, goal)
    if pulsed:
        proto.check()
        g = averaged_read(board, macro, row, col, reads, config.read_bias, config.read_window)
    after = pair_error(mapped, g)
    proto.record("refresh_time", t0)
    proto.record("refresh_samples", samples_done)
    proto.record("refresh_pulsed_cells", pulsed)
    proto.record("refresh_rms_error", np.array([before, after]))
    proto.record("refresh_conductance", g)
    log.info("refresh after %d samples: %d of %d cells pulsed, pair RMS error %.3g -> %.3g µS", samples_done,
             pulsed, g.size, before * 1e6, after * 1e6)
    return pulsed, before, after


def _touch_up(proto: Any, mapped: MappedNetwork, config: WriteVerifyConfig, sel: np.ndarray,
              goal: np.ndarray) -> int:
    """Write-verify the selected cells to ``goal`` (S); their pulses go to the pulse table."""
    if not sel.any():
        return 0
    bench = proto.bench
    macro, row, col, _ = (a[sel] for a in mapped.cells())
    result = write_verify(bench.macro_controller, macro, row, col, goal[sel], config, now=bench.clock.now,
                          sleep=bench.clock.sleep, check=proto.check)
    pulses = result.pulse_log.arrays()
    if pulses["cell"].size:
        cell = pulses["cell"]
        proto.record_pulses(macro=macro[cell], row=row[cell], col=col[cell],
                            **{k: pulses[k] for k in ("polarity", "amplitude", "width", "gate", "read", "time")})
    if result.failed.any() or result.stuck.any():
        log.warning("refresh: %d cells out of pulse budget, %d stuck", int(result.failed.sum()),
                    int(result.stuck.sum()))
    return int((result.pulses > 0).sum())
