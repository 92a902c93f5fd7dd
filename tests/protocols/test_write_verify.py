"""write-verify: acceptance on a full macro over the loopback bench, abort, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.bench import Bench
from instruments.errors import LimitError
from instruments.limits import Limits
from instruments.sim.direct import DirectArrayAccess
from instruments.sim.world import SimWorld
from protocols.characterization.programming import WriteVerifyParams, wv_config
from protocols.characterization.write_verify import WriteVerify
from protocols.characterization.write_verify_algorithm import WriteVerifyConfig, write_verify
from protocols.engine.params import ParameterError, specs
from tests.protocols.characterization_helpers import assert_consistent_abort, run, run_and_abort


@pytest.fixture
def bench():
    with Bench.from_config(seed=0) as b:
        yield b


def test_full_macro_to_random_targets_meets_the_acceptance(bench, tmp_path):
    """>= 98% of non-stuck cells within +-0.5 uS, median <= 15 pulses, stuck listed, trips = iterations.

    98 %, not 99 %, since issue 14: a verify read carries the cell's 1/f noise, whose slow part
    (built up since the cell's last pulse) repeated reads do not average away, so a cell
    accepted within the 0.4 uS tolerance can sit a little farther from it (1 cell in 1023)."""
    f = run(bench, WriteVerify.from_values({"regions": ["0"], "target_seed": 3}), tmp_path / "wv.h5")
    truth = bench.world.conductance(0).ravel()
    target = f.read("target")
    stuck = f.read("stuck")[0].astype(bool)
    assert target.min() >= 2e-6 and target.max() <= 65e-6
    ok = ~stuck
    assert np.mean(np.abs(truth - target)[ok] <= 0.5e-6) >= 0.98
    assert np.mean(np.abs(f.read("programmed")[0] - target)[ok] <= 0.5e-6) >= 0.98, "read-back map agrees"
    assert np.median(f.read("pulses_per_cell")[0][ok]) <= 15
    true_stuck = bench.world.cells.stuck.reshape(8, 32, 32)[0].ravel()
    assert np.array_equal(stuck[true_stuck], np.ones(true_stuck.sum(), bool)) or \
        np.all(np.abs(truth - target)[true_stuck & ~stuck] <= 0.5e-6), "every stuck cell off target is detected"
    listed = f.read("stuck_cells")
    assert listed.shape == (stuck.sum(), 3) and np.all(listed[:, 0] == 0)
    assert f.read("round_trips")[0] == f.read("iterations")[0], "one board round trip per iteration"
    pulses = f.read("/entry/pulses/read")
    assert pulses.size == f.read("pulses_per_cell")[0].sum(), "every pulse is in the pulse table"
    for column in ("macro", "row", "col", "polarity", "amplitude", "width", "gate", "time"):
        assert f.read(f"/entry/pulses/{column}").size == pulses.size


def test_stuck_cells_are_detected_and_not_retried_forever():
    """A cell stuck at its floor asked for 50 uS is declared stuck well inside the pulse budget."""
    world = SimWorld(seed=5, n_macros=1)
    world.cells.stuck[:] = False
    world.cells.stuck[[3, 40]] = True
    access = DirectArrayAccess(world)
    cells = np.arange(64)
    result = write_verify(access, np.zeros(64), cells // 32, cells % 32, np.full(64, 50e-6),
                          WriteVerifyConfig(max_pulses=60), now=world.clock.now)
    assert result.stuck[[3, 40]].all() and result.stuck.sum() == 2
    assert result.pulses[[3, 40]].max() < 30
    assert result.converged.sum() == 62
    assert result.iterations == access.round_trips


class _OneFrameOfPulsesOnly(DirectArrayAccess):
    """In-process access whose pulse batches have no room for confirmation reads."""

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self.pulse_cells_per_frame = 0


def test_confirmation_reads_ride_in_the_next_pulse_batch_and_save_round_trips():
    """Averaged confirmation reads go out as read-only entries of the next pulse batch: fewer
    round trips than with a trip of their own, each cell confirmed, none pulsed by it."""
    target = np.random.default_rng(1).uniform(2e-6, 65e-6, 256)
    cells = np.arange(256)
    results, trips = [], []
    for make in (DirectArrayAccess, _OneFrameOfPulsesOnly):
        world = SimWorld(seed=3, n_macros=1)
        access = make(world)
        result = write_verify(access, np.zeros(256), cells // 32, cells % 32, target, now=world.clock.now)
        truth = world.conductance(0).ravel()[:256]
        ok = ~result.stuck
        assert np.mean(np.abs(truth - target)[ok] <= 0.5e-6) >= 0.97
        assert result.iterations == access.round_trips
        assert result.pulse_log.arrays()["polarity"].size == result.pulses.sum(), "read-only entries are no pulses"
        assert np.all(result.pulse_log.arrays()["polarity"] != 0)
        results.append(result)
        trips.append(access.round_trips)
    along, alone = results
    assert along.confirm_along > 0 and alone.confirm_along == 0
    assert alone.confirm_batches > along.confirm_batches
    assert trips[0] < 0.8 * trips[1], f"{trips[0]} round trips with the reads along, {trips[1]} without"


def test_a_read_only_entry_of_a_pulse_batch_is_read_not_pulsed():
    """Polarity 0 with amplitude 0: the cell is read after the pulses and left as it was;
    polarity 0 with any amplitude is refused."""
    world = SimWorld(seed=4, n_macros=1)
    world.set_conductance(0, 0, [0, 1], 20e-6)
    access = DirectArrayAccess(world)
    g = access.pulse_batch(0, 0, [0, 1, 1], [1, 0, 0], [1.4, 0.0, 0.0], 1e-7, [1.8, 0.0, 0.0])
    truth = world.conductance(0)[0, :2]
    assert truth[0] > 22e-6 and abs(truth[1] - 20e-6) < 0.3e-6, "only the SET cell moved"
    assert g.shape == (3,) and np.all(np.abs(g[1:] - truth[1]) < 1e-6), "the read-only cell is read twice"
    with pytest.raises(ValueError, match="amplitude 0"):
        access.pulse_batch(0, 0, [0, 1], [1, 0], [1.4, 0.5], 1e-7, 1.8)


@pytest.mark.parametrize("variant, within", [
    ({"final_reset": True}, 0.99),
    ({"settle": 1e-3}, 0.95),  # cells confirmed early relax while the others are programmed
    ({"incremental_gate": True}, 0.90),  # slower with the defaults: median ~22 pulses
])
def test_variants_place_cells_and_count_their_extra_exchanges_as_iterations(variant, within):
    """Final RESET, verify-wait-verify and incremental gate place cells; trips still equal iterations."""
    world = SimWorld(seed=2, n_macros=1)
    access = DirectArrayAccess(world)
    cells = np.arange(256)
    target = np.random.default_rng(0).uniform(2e-6, 65e-6, 256)
    cfg = WriteVerifyConfig(**variant)
    result = write_verify(access, np.zeros(256), cells // 32, cells % 32, target, cfg,
                          now=world.clock.now, sleep=world.clock.sleep)
    ok = ~result.stuck
    truth = world.conductance(0).ravel()[:256]
    assert np.mean(np.abs(truth - target)[ok] <= 0.5e-6) >= within
    assert result.iterations == access.round_trips
    assert result.confirm_batches + result.confirm_along > 0
    if cfg.final_reset:
        assert np.any(result.pulse_log.arrays()["amplitude"] == np.float32(cfg.final_reset_amplitude))


def test_abort_mid_programming_leaves_a_consistent_file_and_safe_outputs(bench, tmp_path):
    """Aborted between two iterations: status aborted, readable file, outputs off."""
    proto = WriteVerify.from_values({"regions": ["1:0-15:0-15"]})
    _, f = run_and_abort(bench, proto, tmp_path / "ab.h5", after_events=3)
    assert_consistent_abort(bench, f)


def test_parameters_are_validated():
    """Limits, choices and the safety envelope are enforced, naming the parameter."""
    with pytest.raises(ParameterError, match="tolerance"):
        WriteVerify.from_assignments(["tolerance=0"])
    with pytest.raises(ParameterError, match="targets"):
        WriteVerify.from_assignments(["targets=zeros"])
    proto = WriteVerify.from_assignments(["set_stop=1.9", "regions=0:0-3:0-3,1"])
    assert proto.p.regions == ["0:0-3:0-3", "1"]
    with pytest.raises(LimitError):
        proto.check_limits(Limits(set_voltage=1.5))
    assert proto.estimate_duration() > 0


def test_protocol_parameters_are_the_exposed_settings_of_the_algorithm_configuration():
    """WriteVerifyParams is made from WriteVerifyConfig: same names, order, defaults and declarations;
    the settings left unexposed keep the algorithm's defaults in a protocol's configuration."""
    exposed = [s for s in specs(WriteVerifyConfig) if s.name in WriteVerifyParams.__dataclass_fields__]
    assert specs(WriteVerifyParams) == exposed
    assert [s.name for s in exposed] == ["tolerance", "max_pulses", "reads", "settle", "final_reset",
                                         "incremental_gate", "adaptive", "step", "set_stop", "reset_stop",
                                         "width", "gate", "read_window"]
    assert [s.name for s in specs(WriteVerify.Params)][:len(exposed)] == [s.name for s in exposed]
    p = WriteVerify.from_values({"tolerance": 0.3e-6, "gate": 2.0, "reads": 2}).p
    assert wv_config(p) == WriteVerifyConfig(tolerance=0.3e-6, gate=2.0, reads=2)


def test_dry_run_checks_the_fixed_settings_against_the_envelope():
    """Settings a protocol cannot change (RESET gate, verify-read bias) are checked too."""
    proto = WriteVerify.from_values({})
    proto.check_limits(Limits())
    with pytest.raises(LimitError, match="gate voltage"):
        proto.check_limits(Limits(gate_voltage=2.9))  # the 3.0 V RESET gate
    with pytest.raises(LimitError, match="read/DAC voltage"):
        proto.check_limits(Limits(read_voltage=0.05))  # the 0.1 V verify read


def test_bad_regions_and_targets_are_refused_before_the_file_exists(bench, tmp_path):
    """A malformed region or an inverted target range fails the run before anything is written."""
    from protocols.engine.runner import RunEngine
    for values, match in (({"regions": ["0:0-40:0-3"]}, "row"), ({"g_low": 70e-6}, "g_low")):
        engine = RunEngine(WriteVerify.from_values(values), bench, tmp_path / "x.h5", seed=1)
        with pytest.raises(ValueError, match=match):
            engine.run()
        assert not (tmp_path / "x.h5").exists()
