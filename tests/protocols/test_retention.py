"""retention: 8 levels separable at 1e6 s, 64-level spread grows with log time, abort, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.bench import Bench
from instruments.errors import LimitError
from instruments.limits import Limits
from protocols.characterization.multilevel import adjacent_overlap
from protocols.characterization.retention import Retention
from protocols.engine.params import ParameterError
from tests.protocols.characterization_helpers import assert_consistent_abort, run, run_and_abort


@pytest.fixture
def bench():
    with Bench.from_config(seed=0) as b:
        yield b


def test_eight_levels_stay_separable_at_a_million_seconds(bench, tmp_path):
    """8 levels 3..115 uS, 64 cells each: adjacent overlap <= 5 % at 1e6 s (virtual time)."""
    proto = Retention.from_values({"per_level": 64, "points": 4})
    f = run(bench, proto, tmp_path / "ret.h5")
    t = f.read("time_after")
    assert t[0] == pytest.approx(1.0, rel=1e-3) and t[-1] == pytest.approx(1e6, rel=1e-6)
    stuck = f.read("stuck")[0].astype(bool)
    level, g_end = f.read("level")[~stuck], f.read("conductance")[-1][~stuck]
    assert adjacent_overlap(g_end, level).max() <= 0.05
    assert bench.clock.now() >= 1e6


def test_error_spread_of_sixty_four_levels_grows_with_log_time(bench, tmp_path):
    """64 levels 2..65 uS: robust spread of (G - target) grows from 1 s to 1e3 s to 1e6 s."""
    proto = Retention.from_values({"levels": 64, "per_level": 8, "g_low": 2e-6, "g_high": 65e-6,
                                   "gate": 1.8, "points": 3, "t_first": 1.0, "t_max": 1e6})
    f = run(bench, proto, tmp_path / "ret64.h5")
    stuck = f.read("stuck")[0].astype(bool)
    err = (f.read("conductance") - f.read("target"))[:, ~stuck]
    spread = 0.5 * (np.percentile(err, 84, axis=1) - np.percentile(err, 16, axis=1))
    assert f.read("time_after").round().tolist() == [1.0, 1e3, 1e6]
    assert spread[0] < spread[1] < spread[2]
    assert 0.15e-6 < spread[0] < 0.8e-6 and 0.8e-6 < spread[2] < 3e-6, "magnitudes of docs/device-model.md"


def test_abort_during_the_waits_leaves_a_consistent_file_and_safe_outputs(bench, tmp_path):
    """Aborted after programming, between read times: aborted status, reads so far kept."""
    proto = Retention.from_values({"levels": 4, "per_level": 4, "points": 6})
    # by the step's name, not by a count of progress reports: programming reports one per
    # write-verify iteration, and their number is the algorithm's
    _, f = run_and_abort(bench, proto, tmp_path / "ab.h5", at_step="read at 251 s")
    assert_consistent_abort(bench, f)
    assert f.steps_completed >= 3, "programming and the first reads are kept"


def test_parameters_are_validated():
    """Limits by name; an inverted time range is refused; the estimate spans the waits."""
    with pytest.raises(ParameterError, match="t_max"):
        Retention.from_assignments(["t_max=1e9"])
    with pytest.raises(ValueError, match="t_first"):
        Retention.from_assignments(["t_first=100", "t_max=10"]).estimate_duration()
    with pytest.raises(LimitError):
        Retention.from_values({}).check_limits(Limits(gate_voltage=3.0))
    assert Retention.from_values({}).estimate_duration() >= 1e6
