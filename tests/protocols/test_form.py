"""form: electroforming of an unformed world over the loopback bench, abort, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.bench import Bench
from instruments.errors import LimitError
from instruments.limits import Limits
from instruments.sim.world import SimWorld
from protocols.characterization.form import Form
from protocols.engine.params import ParameterError
from tests.protocols.characterization_helpers import assert_consistent_abort, run, run_and_abort


@pytest.fixture
def bench():
    with Bench.from_config(world=SimWorld(seed=0, formed=False)) as b:
        yield b


def _formed(bench, macro: int) -> np.ndarray:
    return bench.world.cells.formed.reshape(8, 32, 32)[macro]


def test_pulse_train_forms_cells_and_reports_those_that_fail(bench, tmp_path):
    """Pristine cells conduct after forming; each stops at its own rung; failures are listed."""
    assert np.mean(bench.world.conductance(0) < 0.1e-6) >= 0.99, "the world starts pristine (but stuck cells)"
    f = run(bench, Form.from_values({"cells": ["0:0-7:0-31"]}), tmp_path / "form.h5")
    formed = f.read("formed")[0].astype(bool)
    current, v_form = f.read("read_current")[0], f.read("form_voltage")[0]
    assert formed.mean() >= 0.97
    assert np.all(current[formed] >= 1e-6) and np.all(np.isnan(v_form[~formed]))
    assert np.all(_formed(bench, 0)[:8].ravel()[formed])
    assert np.std(v_form[formed]) > 0.02 and 1.5 < np.median(v_form[formed]) < 2.0, "per-cell stop near v_form"
    failed = f.read("failed_cells")
    assert failed.shape == ((~formed).sum(), 3)
    outside = ~bench.world.cells.stuck.reshape(8, 32, 32)[0, 8:]
    assert np.all(bench.world.conductance(0)[8:][outside] < 0.1e-6), "cells outside the selection stay pristine"
    pulses_per_cell = np.bincount(f.read("/entry/pulses/row") * 32 + f.read("/entry/pulses/col"), minlength=256)
    pulsed = formed & (v_form > 0)
    assert np.array_equal(pulses_per_cell[pulsed] - 1, np.round((v_form[pulsed] - 1.2) / 0.05).astype(int))


def test_smu_ramp_forms_cells_one_by_one_under_compliance(bench, tmp_path):
    """The DC ramp forms each routed cell into a compliance-limited state and stops there."""
    f = run(bench, Form.from_values({"cells": ["1:0:0-2"], "mode": "ramp", "v_start": 1.6}), tmp_path / "ramp.h5")
    formed = f.read("formed")[0].astype(bool)
    assert formed.all() and np.all(_formed(bench, 1)[0, :3])
    assert np.all(bench.world.conductance(1)[0, :3] < 150e-6)
    assert bench.world.routed is None and bench.world.outputs_safe()


def test_abort_leaves_a_consistent_file_and_safe_outputs(bench, tmp_path):
    """Aborted mid-ramp with the SMU routed: outputs safe, status aborted."""
    proto = Form.from_values({"cells": ["2:0:0-7"], "mode": "ramp", "v_start": 1.7})
    _, f = run_and_abort(bench, proto, tmp_path / "ab.h5", after_events=2)
    assert_consistent_abort(bench, f)


def test_parameters_are_validated():
    """Mode choices, limits by name, the envelope per mode, and the rung order."""
    with pytest.raises(ParameterError, match="mode"):
        Form.from_assignments(["mode=laser"])
    with pytest.raises(LimitError):
        Form.from_values({"v_stop": 2.4}).check_limits(Limits(set_voltage=2.0))
    Form.from_values({"v_stop": 2.4, "mode": "ramp"}).check_limits(Limits(set_voltage=2.0, smu_voltage=3.0))
    with pytest.raises(ValueError, match="v_start"):
        Form.from_values({"v_start": 2.0, "v_stop": 1.5}).rungs()
    assert Form.from_values({}).rungs().tolist() == pytest.approx(np.arange(1.2, 2.0001, 0.05).tolist())
