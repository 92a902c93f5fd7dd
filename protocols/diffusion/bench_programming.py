"""Programming a mapped score network on a bench, and what the run file records of it.

Shared by the ``program-model`` and ``sample`` protocols: the datasets declared up
front (:func:`programming_specs`) and the step that write-verifies the network over
``bench.board`` and records target vs programmed conductances and weights, the
placement and the per-pulse history (:func:`program_and_record`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from protocols.datasets import Constant, PulseHistory, Spec, Stream
from protocols.diffusion.analog import Programming, program_network
from protocols.diffusion.mapping import MappedNetwork
from protocols.write_verify_algorithm import WriteVerifyConfig

log = logging.getLogger(__name__)


def programming_specs(mapped: MappedNetwork) -> list[Spec]:
    """Datasets of one programming: targets (constants), read-back, placement, pulses."""
    n_cells = mapped.cells()[3].size
    n_pairs = n_cells // 2
    n_layers = len(mapped.layers)
    return [
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
        PulseHistory(),
    ]


def program_and_record(proto: Any, mapped: MappedNetwork, config: WriteVerifyConfig, reads: int) -> Programming:
    """Write-verify ``mapped`` over ``proto.bench.board``, read it back, record everything.

    proto: the running protocol (its bench, clock, check and record helpers);
    config: write-verify settings; reads: reads averaged per cell for the read-back (>= 1).
    """
    bench = proto.bench
    info = bench.board.info()
    outcome = program_network(bench.board, mapped, config, shape=(info.n_macros, info.rows, info.cols),
                              now=bench.clock.now, sleep=bench.clock.sleep, check=proto.check)
    proto.record_pulses(**outcome.pulse_columns())
    placed = outcome.mapped
    macro, row, col, _ = placed.cells()
    g = bench.board.read_batch(np.repeat(macro, reads), np.repeat(row, reads), np.repeat(col, reads),
                               config.read_bias, config.read_window)
    g = np.asarray(g, dtype=float).reshape(-1, reads).mean(axis=1)
    proto.record("programmed_conductance", g)
    proto.record("programmed_weight", placed.pair_weights(g))
    proto.record("cell_macro", macro)
    proto.record("cell_row", row)
    proto.record("cell_col", col)
    proto.record("layer_region", np.array([[lay.macro, lay.row0, lay.col0, lay.n_in, lay.n_out, lay.bias_rows]
                                           for lay in placed.layers]))
    proto.record("layer_r_feedback", np.array([lay.r_feedback for lay in placed.layers]))
    proto.record("stuck_cells", len(outcome.stuck))
    proto.record("round_trips", outcome.round_trips + 1)
    outcome.final[:] = g
    return outcome
