"""read-array on the simulated bench through the real pyvisa/pyserial loopback stack."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from analysis import open_run
from instruments.bench import Bench
from instruments.errors import LimitError
from instruments.limits import Limits
from protocols.characterization.read_array import ReadArray
from protocols.engine.params import ParameterError
from protocols.engine.runner import RunEngine, RunState


@pytest.fixture
def bench():
    with Bench.from_config(seed=0) as b:
        yield b


def test_reads_every_cell_of_the_chosen_macros_into_conductance_maps(bench, tmp_path):
    proto = ReadArray.from_values({"macros": [2, 5], "repeats": 2})
    engine = RunEngine(proto, bench, tmp_path / "ra.h5", seed=1)
    assert engine.run() == RunState.COMPLETED
    run = open_run(tmp_path / "ra.h5")
    g = run.read("conductance")
    assert g.shape == (4, 32, 32)
    assert run.datasets["/entry/data/conductance"].units == "S"
    assert run.read("macro").tolist() == [2, 2, 5, 5]
    in_window = np.mean((g > 0.5e-6) & (g < 200e-6))
    assert in_window >= 0.95, "formed cells read inside the device's conductance window"
    truth = bench.world.conductance(2)
    err = np.abs(g[0] - truth)
    assert np.median(err) < 0.1 * np.median(truth), "reads follow the true conductance"
    assert run.simulated and run.instruments["macro_controller"]


def test_abort_leaves_status_aborted_and_the_world_outputs_safe(bench, tmp_path):
    bench.smu.set_voltage(0.2)
    bench.smu.output_on()
    with bench.world.lock:  # the SMU drives the array, as a sweep left running would
        bench.world.outputs.smu_on, bench.world.outputs.smu_level = True, 0.2
    assert not bench.world.outputs_safe()
    proto = ReadArray.from_values({"macros": [0, 1, 2, 3], "repeats": 400})
    engine = RunEngine(proto, bench, tmp_path / "ab.h5", seed=1)
    started = threading.Event()
    engine.subscribe(lambda ev: started.set() if ev.fraction > 0 else None)
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    assert started.wait(30)
    engine.abort()
    thread.join(30)
    assert engine.state == RunState.ABORTED
    assert bench.world.outputs_safe(), "the engine put the bench in its safe state"
    run = open_run(tmp_path / "ab.h5")
    assert run.status == "aborted" and run.steps_completed < 4


def test_parameters_are_validated_against_limits_and_the_safety_envelope():
    with pytest.raises(ParameterError, match="bias"):
        ReadArray.from_assignments(["bias=0.8"])
    with pytest.raises(ParameterError, match="repeats"):
        ReadArray.from_assignments(["repeats=two"])
    proto = ReadArray.from_assignments(["bias=0.3", "macros=0,1"])
    assert proto.p.macros == [0, 1]
    with pytest.raises(LimitError, match="read"):
        proto.check_limits(Limits(read_voltage=0.2))
    assert proto.estimate_duration() > 0


def test_a_macro_the_board_lacks_is_refused_before_the_file_exists(bench, tmp_path):
    engine = RunEngine(ReadArray.from_values({"macros": [8]}), bench, tmp_path / "x.h5", seed=1)
    with pytest.raises(ValueError, match="8 macros"):
        engine.run()
    assert not (tmp_path / "x.h5").exists()
    assert engine.state == RunState.FAILED
