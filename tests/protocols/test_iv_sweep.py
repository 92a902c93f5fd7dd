"""iv-sweep: bipolar loops over the loopback SMU and board, extracted voltages, abort, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.bench import Bench
from instruments.errors import LimitError
from instruments.limits import Limits
from protocols.characterization.iv_sweep import RESET_WINDOW, SET_WINDOW, IVSweep, sweep_voltages, switching_voltages
from protocols.engine.params import ParameterError
from tests.protocols.characterization_helpers import assert_consistent_abort, run, run_and_abort


@pytest.fixture
def bench():
    with Bench.from_config(seed=0) as b:
        yield b


def test_dual_sweeps_show_the_bipolar_loop_and_switching_voltages_in_the_documented_windows(bench, tmp_path):
    """Abrupt SET at compliance on the positive branch, gradual RESET on the negative one, each cycle."""
    proto = IVSweep.from_values({"cells": ["0:0:0-2", "1:5:7"], "cycles": 4})
    f = run(bench, proto, tmp_path / "iv.h5")
    v, i = f.read("voltage"), f.read("current")
    assert v.shape == i.shape == (16, proto.voltages().size)
    assert f.read("cell").tolist()[-1] == [1, 5, 7] and f.read("cycle").tolist()[:4] == [0, 1, 2, 3]
    v_set, v_reset = f.read("v_set"), f.read("v_reset")
    in_windows = ((v_set >= SET_WINDOW[0]) & (v_set <= SET_WINDOW[1])
                  & (v_reset >= RESET_WINDOW[0]) & (v_reset <= RESET_WINDOW[1]))
    assert in_windows.mean() >= 0.95
    assert np.std(v_set) > 0.01, "SET voltage varies cycle to cycle"
    # the loop: at +0.5 V the return branch (LRS) carries far more current than the rising one (HRS)
    at = np.flatnonzero(np.isclose(v[0], 0.5))
    rising, falling = i[:, at[0]], i[:, at[1]]
    assert np.all(falling > 5 * rising)
    assert np.abs(i).max() <= 100e-6 * 1.01, f"held at the compliance ({np.abs(i).max():g} A)"
    assert bench.world.routed is None and bench.world.outputs_safe()


def test_extraction_finds_set_and_reset_on_a_synthetic_loop():
    """A cell at 2 uS that jumps to compliance at 1.0 V and decays from -0.8 V gives (1.0, -0.8)."""
    v = sweep_voltages(1.5, -1.5, 0.1)
    g = np.full(v.size, 2e-6)
    top = int(np.argmax(v))
    k_set = int(np.flatnonzero(np.isclose(v, 1.0))[0])
    g[k_set:] = 100e-6
    i = np.minimum(g * v, 100e-6)
    neg = np.flatnonzero((v < -0.75) & (np.arange(v.size) > top))
    i[neg] = v[neg] * 2e-6
    assert switching_voltages(v, i, 100e-6) == pytest.approx((1.0, -0.8))


def test_abort_leaves_a_consistent_file_and_safe_outputs(bench, tmp_path):
    """Aborted between two cycles with the SMU configured: outputs off, status aborted."""
    proto = IVSweep.from_values({"cells": ["0:0:0-3"], "cycles": 3})
    _, f = run_and_abort(bench, proto, tmp_path / "ab.h5", after_events=2)
    assert_consistent_abort(bench, f)
    assert f.read("voltage").shape[0] == 2


def test_parameters_are_validated():
    """v_max, v_min, step, compliance, cycles, cells: limits and the SMU envelope by name."""
    with pytest.raises(ParameterError, match="v_min"):
        IVSweep.from_assignments(["v_min=0.5"])
    with pytest.raises(ParameterError, match="cycles"):
        IVSweep.from_assignments(["cycles=0"])
    with pytest.raises(LimitError):
        IVSweep.from_values({"v_max": 2.5}).check_limits(Limits(smu_voltage=2.0))
    with pytest.raises(LimitError):
        IVSweep.from_values({"compliance": 5e-3}).check_limits(Limits(compliance=1e-3))
    with pytest.raises(ValueError, match="2500"):
        IVSweep.from_values({"step": 0.001, "v_max": 3.0, "v_min": -3.0}).voltages()
    assert IVSweep.from_values({"cells": ["0:0:0", "0:1:1"]}).estimate_duration() > 0
