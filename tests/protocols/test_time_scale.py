"""time-scale: boards built with each RC, the DAC-rate bound, the bar, the run file, bad parameters."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from analysis import open_run
from instruments.macro_controller_wire import LoopInfo
from instruments.sim.macro_controller import MacroControllerEmulator
from protocols.cli.main import main
from protocols.diffusion.time_scale import (
    STEP_OVER_RC,
    RcPoint,
    TimeScale,
    bar,
    board_world,
    dac_updates,
    fastest_passing,
    run_rc_point,
)
from protocols.engine.runner import RunEngine, RunState

TINY = {"rc": [1e-3, 1e-5], "samples": 24, "n_steps": 100, "scheduler": "serial", "loop_model": "ideal"}


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("bad, message", [
    ("rc=1e-3,0", "rc=0 s is outside its limits"),
    ("rc=1e-3,1e-3", "rc lists a value twice"),
    ("rc=1e-3,fast", "expected a number"),
    ("rc=10", "outside its limits"),
    ("model=letters", "model"),
])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_a_bad_parameter_is_refused_in_one_line_with_exit_2(capsys, tmp_path, bad, message, dry):
    code, out, err = run_cli(capsys, "run", "time-scale", "--set", bad, "--set", "scheduler=serial",
                             "--out", tmp_path, *(["--dry-run"] if dry else []))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.glob("*.h5")), "nothing half-written"


def test_the_board_is_built_with_its_rc_and_reports_it_at_loop_info():
    """The board owns its RC: the world's circuit, and what the emulated controller reports."""
    for rc in (1e-3, 1e-6):
        world = board_world(rc, seed=0, loop_model="ideal")
        info = LoopInfo.unpack(MacroControllerEmulator(world).ops.loop_info(b""))
        assert info.rc == pytest.approx(rc) and info.dt_step == pytest.approx(STEP_OVER_RC * rc)
        assert world.loop.params.model == "ideal"


def test_dac_updates_follow_the_fine_step_until_the_dac_rate_bounds_them():
    assert dac_updates(1.5e-3, 1500) == 1500      # RC 1 ms: one DAC value per 1 us step
    assert dac_updates(1.5e-4, 1500) == 150       # RC 100 us: the 1 MHz DAC holds each for 1 us
    assert dac_updates(1.5e-5, 1500) == 15
    assert dac_updates(1.5e-7, 1500) == 1         # shorter than one update: a single held value


def test_the_fastest_rc_is_the_smallest_with_every_slower_rc_also_meeting_the_bar():
    soft = np.array([0.04, 0.04])
    assert bar(soft) == pytest.approx([0.08, 0.08])
    rc = np.array([1e-5, 1e-3, 1e-7, 1e-4, 1e-6])  # completion order, not sorted
    kl = np.array([[0.05, 0.06], [0.03, 0.03], [0.05, 0.01], [0.04, 0.04], [0.5, 0.9]])
    assert fastest_passing(rc, kl, soft) == 1e-5, "1e-7 passes by luck below a failing 1e-6: not counted"
    kl[1] = [0.03, 0.2]
    assert np.isnan(fastest_passing(rc, kl, soft)), "the slowest board fails: none qualifies"


@pytest.mark.parametrize("loop_model", ["ideal", "circuit"])
def test_a_point_samples_the_ring_on_a_board_of_its_rc(loop_model):
    result = run_rc_point(RcPoint("ring", 1e-4, 16, 100, 0.0, 3, loop_model))
    assert result["duration"] == pytest.approx(100 * STEP_OVER_RC * 1e-4)
    assert result["dac_updates"] == 10  # 10 us at 1 MHz
    ring = result["ring"]
    assert ring["kl"].shape == (2,) and np.all(ring["kl"] >= 0) and 0 <= ring["saturated"] <= 1
    assert "digits" not in result


def test_two_rc_points_record_every_dataset_with_units_and_the_outcome(tmp_path):
    path = tmp_path / "ts.h5"
    engine = RunEngine(TimeScale.from_values(TINY), None, path, seed=4)
    assert engine.run() == RunState.COMPLETED, engine.error
    run = open_run(path)
    assert sorted(run.read("rc").tolist()) == [1e-5, 1e-3]
    assert run.read("time_per_sample").tolist() == pytest.approx([r * STEP_OVER_RC * 100 for r in run.read("rc")])
    assert run.read("kl").shape == (2, 2) and run.read("software_kl").shape == (1, 2)
    for name in ("radius", "saturated", "kl_mean", "dac_updates"):
        assert run.read(name).shape == (2,)
    with h5py.File(path, "r") as h5:
        data = h5["/entry/data"]
        assert all("units" in data[k].attrs for k in data), "every dataset carries its unit"
        assert data["rc"].attrs["units"] == "s" and data["time_per_sample"].attrs["units"] == "s"
    assert set(run.outcome) >= {"fastest_rc_meeting_bar", "time_per_sample_at_fastest", "ring_bar_kl", "kl_floor",
                                "kl_pooled_worst_point", "kl_pooled_floor", "hist2d_worst_point", "hist2d_floor"}
    assert run.outcome["hist2d_floor"]["value"] == pytest.approx(run.read("hist2d_floor")[-1][0])
    assert run.outcome["hist2d_worst_point"]["value"] == pytest.approx(np.max(run.read("hist2d_distance")))
    assert run.read("kl_pooled").shape == (2,) and run.read("kl_floor").shape == (1, 4)
    assert run.outcome["kl_floor"]["value"] == pytest.approx(run.read("kl_floor")[-1][2]) and run.outcome[
        "kl_floor"]["units"] == ""
    assert run.outcome["fastest_rc_meeting_bar"]["units"] == "s"


@pytest.mark.slow
def test_the_conditional_task_is_sampled_per_class_with_model_digits(tmp_path):
    path = tmp_path / "ts-digits.h5"
    engine = RunEngine(TimeScale.from_values({**TINY, "rc": [1e-3], "model": "digits"}), None, path, seed=4)
    assert engine.run() == RunState.COMPLETED, engine.error
    run = open_run(path)
    assert run.read("kl_digits").shape == (1, 2) and run.read("software_kl_digits").shape == (1, 2)
    assert "fastest_rc_meeting_bar_digits" in run.outcome
