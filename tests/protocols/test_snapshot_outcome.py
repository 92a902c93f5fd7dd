"""What a run file says about the bench and the result: each instrument's settings, read
from it at the start of a run and again at each --resume (``/entry/instrument/<name>``),
and the protocol's outcome (``/entry/outcome``), printed by ``rrambench run`` and shown
by ``rrambench info``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pytest

from analysis import open_run
from instruments.bench import Bench
from instruments.infiniivision import InfiniiVision3000X
from instruments.keithley2450 import Keithley2450
from instruments.limits import Limits
from instruments.macro_controller import LayerRegion
from instruments.sim.infiniivision import InfiniiVisionEmulator
from instruments.sim.inprocess import InProcessResource
from instruments.sim.keithley2450 import Keithley2450Emulator
from instruments.sim.world import SimWorld
from instruments.transport import VisaTransport
from protocols.cli.main import main
from protocols.engine.datasets import Constant, Plot, Stream, check_specs
from protocols.engine.protocol import Protocol, Step, param
from protocols.engine.runner import Aborted, RunEngine, RunState


def values(settings: dict) -> dict:
    return {name: value for name, (value, _) in settings.items()}


def test_each_driver_reports_what_its_instrument_is_set_to_with_units():
    with Bench.from_config(seed=1) as bench:
        bench.smu.configure_voltage_source(2e-4, nplc=0.5)
        bench.smu.set_voltage(0.2)
        bench.scope.set_timebase(1e-3, 2e-4)
        bench.scope.configure_channel(2, scale=0.05, offset=0.1)
        bench.scope.set_edge_trigger("EXT", 0.5, "NEG")
        bench.scope.set_segmented(10)
        bench.macro_controller.route(0, 1, 2)
        bench.macro_controller.load_mapping([LayerRegion(0, 0, 0, 2, 3)], 0.1)
        bench.seed_board.set_bias(0.1)
        snap = bench.instrument_settings()
        bench.smu.check_errors()  # the snapshot queued no error: every query is one the instrument knows
        bench.scope.check_errors()

    assert list(snap) == ["smu", "scope", "macro_controller", "seed_board"]
    smu = values(snap["smu"])
    assert (smu["source_function"], smu["measure_function"], smu["source_level"], smu["source_limit"],
            smu["nplc"], smu["line_frequency"]) == ("VOLT", "CURR", 0.2, 2e-4, 0.5, 60.0)
    assert (snap["smu"]["source_level"][1], snap["smu"]["source_limit"][1], snap["smu"]["measure_range"][1],
            snap["smu"]["line_frequency"][1]) == ("V", "A", "A", "Hz")
    scope = values(snap["scope"])
    assert (scope["timebase_scale"], scope["timebase_position"], scope["channel2_scale"],
            scope["channel2_offset"]) == (1e-3, 2e-4, 0.05, 0.1)
    assert (scope["trigger_source"], scope["trigger_level"], scope["trigger_slope"], scope["acquire_mode"],
            scope["acquire_segments"]) == ("EXT", 0.5, "NEG", "SEGM", 10)
    assert snap["scope"]["timebase_scale"][1] == "s" and snap["scope"]["sample_rate"][1] == "Hz"
    board = values(snap["macro_controller"])
    assert (board["routed"], board["mapping_loaded"], board["mapping_v_bias"], board["loop_rc"]) == \
        ("0:1:2", True, pytest.approx(0.1), 1e-3)
    assert json.loads(board["mapping"])[0] | {"r_feedback": 0} == {
        "macro": 0, "row0": 0, "col0": 0, "n_in": 2, "n_out": 3, "bias_rows": 0, "activation": "relu",
        "r_feedback": 0}
    seed = values(snap["seed_board"])
    assert (seed["v_bias"], seed["task"], seed["baud"]) == (0.1, None, 9600), "what the driver set, None unknown"


@pytest.mark.parametrize("make", [
    lambda world: Keithley2450(VisaTransport(InProcessResource(Keithley2450Emulator(world).handle), name="smu"),
                               Limits()),
    lambda world: InfiniiVision3000X(VisaTransport(InProcessResource(InfiniiVisionEmulator(world, seed=1).handle),
                                                   name="scope"), Limits()),
])
def test_a_snapshot_only_asks(make):
    """Reading the settings changes none: every message the drivers send is a query."""
    driver = make(SimWorld(seed=0))
    resource = driver._io.resource
    driver.snapshot()
    assert resource.sent and all(message.endswith("?") for message in resource.sent)


class TwoSessions(Protocol):
    """Records one value per step; aborts in ``stop_in`` (then a resume finishes it)."""

    name = "two-sessions"

    @dataclass
    class Params:
        steps: int = param(3, limits=(1, 10), help="steps")
        stop_in: int = param(-1, limits=(-1, 10), help="step that aborts")

    def datasets(self):
        return [Stream("x", units="V"), Constant("k", units="s", data=[0.0]),
                Plot("x", ("x",), title="x against itself")]

    def plan(self) -> Iterator[Step]:
        for i in range(self.p.steps):
            yield Step(f"step {i}", partial(self.work, i))

    def work(self, i: int) -> None:
        self.record("x", float(i))
        if i == self.p.stop_in:
            raise Aborted("stopped by the test")

    def outcome(self) -> dict:
        return {"values": (len(self.recorded("x")), ""), "sum": (float(self.recorded("x").sum()), "V"),
                "nothing": (float("nan"), "V")}


def test_settings_are_read_at_the_start_and_again_at_each_resume_and_the_outcome_once_complete(tmp_path):
    path = tmp_path / "two.h5"
    with Bench.from_config(seed=1) as bench:
        assert RunEngine(TwoSessions(TwoSessions.Params(stop_in=1)), bench, path, seed=1).run() == RunState.ABORTED
        first = open_run(path)
        assert first.outcome == {} and list(first.snapshot["smu"]) == ["start"]
        bench.smu.configure_voltage_source(1e-4, nplc=2.0)  # changed between the sessions
        engine = RunEngine(TwoSessions(), bench, path, seed=1, resume=True)
        assert engine.run() == RunState.COMPLETED
    run = open_run(path)
    smu = run.snapshot["smu"]
    assert list(smu) == ["start", "resume_1"] and len(run.resumes) == 1
    assert (smu["start"]["settings"]["nplc"]["value"], smu["resume_1"]["settings"]["nplc"]["value"]) == (1.0, 2.0)
    assert smu["resume_1"]["time"] > smu["start"]["time"] == run.started
    assert run.outcome == {"values": {"value": 3, "units": ""}, "sum": {"value": 3.0, "units": "V"},
                           "nothing": {"value": None, "units": "V"}}, "every session's rows, NaN as null"
    assert engine.outcome["values"] == (3, "")
    assert run.attrs("/entry/plot")["signal"] == "x" and run.attrs("/entry")["default"] == "plot"
    assert "/entry/outcome" not in run.datasets, "the outcome is about the run, not its data"


class FailingOutcome(TwoSessions):
    name = "failing-outcome"

    def outcome(self) -> dict:
        raise ZeroDivisionError("a summary that cannot be computed")


def test_an_outcome_that_cannot_be_computed_leaves_the_run_completed(tmp_path, caplog):
    engine = RunEngine(FailingOutcome(), None, tmp_path / "f.h5", seed=1)
    assert engine.run() == RunState.COMPLETED and engine.outcome == {}
    assert open_run(tmp_path / "f.h5").outcome == {} and "outcome" in caplog.text


@pytest.mark.parametrize("plot, message", [
    (Plot("y", ("x",)), "undeclared"),
    (Plot("m", ("x",)), "2 dimensions"),
    (Plot("x", ("x", "m")), "scatter"),
])
def test_a_plot_names_declared_datasets_one_axis_per_dimension(plot, message):
    specs = [Stream("x", units="V"), Stream("m", units="S", shape=(4,)), plot]
    with pytest.raises(ValueError, match=message):
        check_specs(specs)


def test_run_prints_the_outcome_after_the_path_and_info_shows_it_with_the_settings(capsys, tmp_path):
    assert main(["run", "read-array", "--out", str(tmp_path), "--seed", "2"]) == 0
    out, err = capsys.readouterr()
    (path,) = out.strip().splitlines()  # stdout: the path alone
    assert err.index("read-array outcome:") >= 0 and "median_conductance" in err and " µS" in err

    assert main(["info", path]) == 0
    text = capsys.readouterr().out
    outcome, settings = text.index("  outcome\n"), text.index("  instrument settings\n")
    assert outcome < settings < text.index("  datasets\n")
    assert re.search(r"\n    maps +1\n", text) and "line_frequency=60 Hz" in text and "\n    scope  (read " in text

    assert main(["info", path, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outcome"]["maps"] == {"value": 1, "units": ""}
    assert doc["snapshot"]["macro_controller"]["start"]["settings"]["loop_rc"] == {"value": 1e-3, "units": "s"}
