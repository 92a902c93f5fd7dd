"""multilevel: 64 separable levels over the loopback bench, abort, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.bench import Bench
from instruments.errors import LimitError
from instruments.limits import Limits
from protocols.characterization.multilevel import Multilevel, adjacent_overlap
from protocols.engine.params import ParameterError
from protocols.engine.runner import RunEngine
from tests.protocols.characterization_helpers import assert_consistent_abort, run, run_and_abort


@pytest.fixture
def bench():
    with Bench.from_config(seed=0) as b:
        yield b


def test_sixty_four_levels_are_separable_right_after_programming(bench, tmp_path):
    """64 levels (2..65 uS), 8 cells each: adjacent pairs overlap <= 1 % on average and by at most
    one cell of a pair's 16 (6.25 %).

    One cell, not none, since issue 14: the read-back (16 reads back to back) carries each cell's
    1/f noise built up since its programming (0.1-0.2 uS at 65 uS), which averaging back-to-back
    reads does not remove, against a half spacing of 0.5 uS."""
    f = run(bench, Multilevel.from_values({"per_level": 8}), tmp_path / "ml.h5")
    level, g = f.read("level"), f.read("readback")[0]
    assert f.read("level_target").shape == (64,) and level.size == 512
    stuck = f.read("stuck")[0].astype(bool)
    overlap = adjacent_overlap(g[~stuck], level[~stuck], centers=f.read("level_target"))
    assert overlap.size == 63 and overlap.max() <= 1 / 16 and overlap.mean() <= 0.01
    assert adjacent_overlap(g[~stuck], level[~stuck]).mean() <= 0.01, "also around the measured medians"
    truth = bench.world.conductance(0).ravel()[(f.read("cell_row") * 32 + f.read("cell_col"))]
    # 98 %, not 99 %, since 2026-12-03: seeds 0-2 give 0.984-0.992 with confirmations in batches
    # of their own and with them riding in the pulse batches alike (the slow 1/f part again)
    assert np.mean(np.abs(truth - f.read("target"))[~stuck] <= 0.5e-6) >= 0.98


def test_overlap_counts_cells_on_the_wrong_side_of_the_midpoint():
    """Two levels at 1 and 2 with one cell of each crossing the midpoint: 2 of 8 misplaced."""
    g = np.array([1.0, 1.0, 1.0, 1.6, 2.0, 2.0, 2.0, 1.4])
    assert adjacent_overlap(g, np.array([0, 0, 0, 0, 1, 1, 1, 1])).tolist() == [0.25]


def test_abort_leaves_a_consistent_file_and_safe_outputs(bench, tmp_path):
    """Aborted while programming: status aborted, outputs off, datasets readable."""
    proto = Multilevel.from_values({"levels": 16, "per_level": 8})
    _, f = run_and_abort(bench, proto, tmp_path / "ab.h5", after_events=2)
    assert_consistent_abort(bench, f)


def test_parameters_are_validated(bench, tmp_path):
    """Limits and envelope refused by name; too many cells for the region fails before the file."""
    with pytest.raises(ParameterError, match="levels"):
        Multilevel.from_assignments(["levels=1"])
    with pytest.raises(LimitError):
        Multilevel.from_assignments(["gate=3.3"]).check_limits(Limits(gate_voltage=2.0))
    engine = RunEngine(Multilevel.from_values({"region": "0:0-3:0-3"}), bench, tmp_path / "x.h5", seed=1)
    with pytest.raises(ValueError, match="region holds only 16"):
        engine.run()
    assert not (tmp_path / "x.h5").exists()
