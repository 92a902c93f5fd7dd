"""write-noise: repeated programming of the same targets, abort, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.bench import Bench
from instruments.errors import LimitError
from instruments.limits import Limits
from protocols.characterization.write_noise import WriteNoise
from protocols.engine.params import ParameterError
from tests.protocols.characterization_helpers import assert_consistent_abort, run, run_and_abort


@pytest.fixture
def bench():
    with Bench.from_config(seed=0) as b:
        yield b


def test_each_cycle_erases_then_lands_within_tolerance_with_a_spread(bench, tmp_path):
    """Every cycle starts from an erased cell and ends near target; cycles differ (write noise)."""
    proto = WriteNoise.from_values({"cells": ["0:0-3:0-7"], "repeats": 5})
    f = run(bench, proto, tmp_path / "wn.h5")
    target, readback, erased = f.read("target"), f.read("readback"), f.read("erased")
    stuck = f.read("stuck").astype(bool).any(axis=0)
    assert readback.shape == (5, 32)
    assert np.all(erased[:, ~stuck] < 0.5 * target[~stuck]), "the erase RESETs lower every cell"
    err = (readback - target)[:, ~stuck]
    assert np.mean(np.abs(err) <= 0.5e-6) >= 0.97
    assert np.all(err.std(axis=0) > 0), "repeated programming of one cell lands on different values"
    assert f.read("pulses_per_cell").shape == (5, 32)


def test_abort_leaves_a_consistent_file_and_safe_outputs(bench, tmp_path):
    """Aborted in the second cycle: status aborted, outputs off, datasets readable."""
    _, f = run_and_abort(bench, WriteNoise.from_values({"repeats": 4}), tmp_path / "ab.h5", after_events=8)
    assert_consistent_abort(bench, f)


def test_parameters_are_validated():
    """Target and erase limits by name; the erase amplitude is checked against the envelope."""
    with pytest.raises(ParameterError, match="targets"):
        WriteNoise.from_assignments(["targets=1e-3"])
    with pytest.raises(LimitError):
        WriteNoise.from_values({"erase_amplitude": 2.4}).check_limits(Limits(reset_voltage=2.0))
