"""program-model on the simulated bench, through the real pyvisa/pyserial loopback stack."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import open_run
from instruments.bench import Bench
from protocols.diffusion.program_model import ProgramModel
from protocols.engine.protocol import ParameterError
from protocols.engine.registry import registry
from protocols.engine.runner import RunEngine, RunState


@pytest.fixture
def bench():
    with Bench.from_config(seed=3) as b:
        yield b


def test_programs_the_ring_network_and_records_target_vs_programmed_weights(bench, tmp_path):
    """Every pair lands near its target weight; targets, read-back, placement and every
    pulse are in the run file; one board round trip per write-verify iteration."""
    trips_before = bench.macro_controller.round_trips
    engine = RunEngine(ProgramModel.from_values({"model": "ring"}), bench, tmp_path / "pm.h5", seed=1)
    assert engine.run() == RunState.COMPLETED, engine.error
    run = open_run(tmp_path / "pm.h5")
    target_w, programmed_w = run.read("target_weight"), run.read("programmed_weight")[-1]
    target_g, programmed_g = run.read("target_conductance"), run.read("programmed_conductance")[-1]
    assert target_w.shape == programmed_w.shape == (target_g.size // 2,)
    assert run.datasets["/entry/data/programmed_conductance"].units == "S"
    assert np.all((target_g >= 2e-6) & (target_g <= 65e-6))
    assert np.percentile(np.abs(programmed_g - target_g), 95) < 1e-6, "cells near target (actives track refs)"
    full_scale = np.abs(target_w).max()
    assert np.percentile(np.abs(programmed_w - target_w), 95) < 0.02 * full_scale
    pulses = run.read("/entry/pulses/macro")
    assert pulses.size > target_g.size, "at least one pulse per cell on average"
    assert set(np.unique(pulses)) <= set(np.unique(run.read("cell_macro")[-1]))
    layout = run.read("layer_region")[-1]
    assert layout[:, 3:].tolist() == [[2, 14, 1], [14, 14, 1], [14, 2, 1]]
    trips = int(run.read("round_trips")[-1])
    assert trips < pulses.size / 10, "pulses go out in batches, not one frame per cell"
    overhead = bench.macro_controller.round_trips - trips_before - trips
    assert 0 <= overhead <= 9, "besides write-verify only identification, loop constants, snapshot and safe state"


def test_the_registry_lists_program_model_and_refuses_an_inverted_window():
    """Discovered by the registry; g_min above g_max is refused naming the parameters."""
    assert registry()["program-model"] is ProgramModel
    with pytest.raises(ParameterError, match="g_min"):
        ProgramModel.from_values({"g_min": 70e-6, "g_max": 65e-6})


def test_an_unknown_model_is_refused_before_any_instrument_is_touched():
    with pytest.raises(ValueError, match="model must be one of"):
        ProgramModel.from_values({"model": "no-such-model"}).mapped  # noqa: B018
