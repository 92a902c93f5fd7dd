"""read-noise: sigma per window and time scale over the loopback bench, abort, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.bench import Bench
from instruments.sim.device import read_noise_sigma
from protocols.characterization.read_noise import ReadNoise
from protocols.engine.params import ParameterError
from tests.protocols.characterization_helpers import assert_consistent_abort, run, run_and_abort


@pytest.fixture
def bench():
    with Bench.from_config(seed=0) as b:
        yield b


def test_read_noise_grows_with_window_and_matches_the_device_model(bench, tmp_path):
    """Back-to-back reads: per-cell std within 25 % of read_noise_sigma; longer windows are noisier;
    reads spread 1 s apart also see relaxation, so their spread is larger still."""
    proto = ReadNoise.from_values({"windows": [1e-7, 1e-3], "intervals": [0.0, 1.0], "repeats": 60,
                                   "targets": [10e-6, 60e-6]})
    f = run(bench, proto, tmp_path / "rn.h5")
    g, window, interval = f.read("conductance"), f.read("window"), f.read("interval")
    stuck = f.read("stuck")[0].astype(bool)
    params = bench.world.params
    std = {}
    for w in (1e-7, 1e-3):
        for dt in (0.0, 1.0):
            rows = (window == w) & (interval == dt)
            assert rows.sum() == 60
            std[w, dt] = g[rows][:, ~stuck].std(axis=0, ddof=1)
        expected = read_noise_sigma(g[(window == w) & (interval == 0.0)][:, ~stuck].mean(axis=0), w, params)
        assert np.median(std[w, 0.0] / expected) == pytest.approx(1.0, abs=0.25)
    assert np.median(std[1e-3, 0.0] / std[1e-7, 0.0]) > 2
    assert np.median(std[1e-7, 1.0] / std[1e-7, 0.0]) > 1.0


def test_abort_leaves_a_consistent_file_and_safe_outputs(bench, tmp_path):
    """Aborted among the reads: status aborted, outputs off, datasets readable."""
    proto = ReadNoise.from_values({"repeats": 200, "program_first": False})
    _, f = run_and_abort(bench, proto, tmp_path / "ab.h5", after_events=250)
    assert_consistent_abort(bench, f)


def test_parameters_are_validated():
    """Window, interval and bias limits are enforced by name; the estimate counts the waits."""
    with pytest.raises(ParameterError, match="windows"):
        ReadNoise.from_assignments(["windows=1e-7,1"])
    with pytest.raises(ParameterError, match="bias"):
        ReadNoise.from_assignments(["bias=0.9"])
    proto = ReadNoise.from_assignments(["intervals=10", "repeats=5", "windows=1e-6", "program_first=false"])
    assert proto.estimate_duration() == pytest.approx(5 * (10 + 1e-6))
