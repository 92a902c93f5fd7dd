"""SimWorld: the shared simulated bench state, its contract, determinism and persistence."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from instruments.sim.device import DeviceParams, Polarity
from instruments.sim.world import SimWorld
from instruments.sim.world_state import FaultConfig

SET, RESET = Polarity.SET, Polarity.RESET


def _session(world: SimWorld, seed: int = 0) -> list[np.ndarray]:
    """A representative mix of operations; returns everything it observed."""
    rng = np.random.default_rng(seed)
    out = []
    m, r, c = np.unravel_index(rng.choice(world.rows * world.cols * 2, 300, replace=False),
                               (2, world.rows, world.cols))
    world.pulse(m, r, c, rng.choice([SET, RESET], 300), rng.uniform(0.8, 1.6, 300), 100e-9, 2.0)
    out.append(world.read(m, r, c))
    world.clock.sleep(123.0)
    out.append(world.read_macro(1, window=1e-3))
    world.route(0, 3, 4)
    out.append(world.smu_sweep(np.linspace(0, 1.4, 30), 100e-6))
    out.append(np.array([world.smu_measure(-1.2, 100e-6)]))
    out.append(world.conductance())
    out.append(np.array([world.clock.now()]))
    return out


def _snapshot(world: SimWorld) -> dict:
    state = {f"cell.{k}": v.copy() for k, v in world.cells.state_dict().items()}
    state["clock"] = world.clock.now()
    state["rng"] = repr(world.rng.bit_generator.state)
    state["outputs"] = repr(world.outputs)
    return state


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k] for k in a)


# -- determinism and persistence -------------------------------------------------------------
def test_same_seed_gives_identical_results_and_another_seed_differs():
    a, b, c = SimWorld(seed=21), SimWorld(seed=21), SimWorld(seed=22)
    ra, rb, rc = _session(a), _session(b), _session(c)
    assert all(np.array_equal(x, y) for x, y in zip(ra, rb, strict=True))
    assert not np.array_equal(ra[-2], rc[-2])


def test_save_then_load_continues_bit_identically(tmp_path):
    never_stopped = SimWorld(seed=5, formed=False)
    restarted = SimWorld(seed=5, formed=False)
    _session(never_stopped, seed=1)
    _session(restarted, seed=1)
    restarted.route(1, 2, 3)
    never_stopped.route(1, 2, 3)
    restarted.faults["macro_controller"].corrupt_rate = 1e-3
    restarted.outputs.smu_on = True
    path = restarted.save(tmp_path / "world.npz")
    loaded = SimWorld.load(path)
    assert loaded.routed == (1, 2, 3) and loaded.outputs.smu_on
    assert loaded.faults["macro_controller"].corrupt_rate == 0.0  # injected link faults are not bench state
    assert loaded.params == restarted.params
    for x, y in zip(_session(never_stopped, seed=2), _session(loaded, seed=2), strict=True):
        assert np.array_equal(x, y)


def test_save_is_atomic_pickle_free_and_replaces_an_old_state(tmp_path):
    world = SimWorld(seed=1, n_macros=1)
    target = tmp_path / "state.npz"
    world.save(target)
    world.clock.sleep(10.0)
    world.save(target)  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]  # no temp file left
    with np.load(target, allow_pickle=False) as data:
        assert "cell.g" in data.files
    assert SimWorld.load(target).clock.now() == 10.0


def test_loop_state_round_trips_through_save(tmp_path):
    world = SimWorld(seed=1, n_macros=1)
    before = world.loop.state_dict()
    loaded = SimWorld.load(world.save(tmp_path / "w.npz"))
    after = loaded.loop.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert np.array_equal(np.asarray(before[key]), np.asarray(after[key]))


def test_load_refuses_a_file_that_is_not_a_world_state(tmp_path):
    bogus = tmp_path / "bogus.npz"
    np.savez(bogus, x=np.arange(3))
    with pytest.raises(ValueError, match="not a rrambench world state"):
        SimWorld.load(bogus)


# -- clock, batches, threads ----------------------------------------------------------------------
def test_a_batch_advances_the_clock_once(world):
    t0 = world.clock.now()
    world.pulse(0, [0, 1, 2], 0, SET, 1.0, [100e-9, 300e-9, 200e-9], 1.5)
    assert world.clock.now() - t0 == pytest.approx(300e-9)  # the longest pulse, in parallel
    t1 = world.clock.now()
    world.read_macro(0, window=5e-6)
    assert world.clock.now() - t1 == pytest.approx(5e-6)


def test_index_arrays_broadcast(world):
    g = world.read(2, np.arange(4)[:, None], np.arange(5)[None, :])
    assert g.shape == (4, 5)
    assert isinstance(world.read(0, 0, 0), float)
    assert world.conductance(3).shape == (32, 32) and world.conductance().shape == (8, 32, 32)


def test_repeated_cell_in_one_batch_gets_each_pulse(world):
    r = 7
    world.set_conductance(0, 0, r, 10e-6, unstick=True)
    world.pulse(0, 0, [r, r, r], SET, 1.2, 100e-9, 2.0)
    thrice = world.conductance(0)[0, r]
    twin = SimWorld(seed=0)
    twin.set_conductance(0, 0, r, 10e-6, unstick=True)
    twin.pulse(0, 0, r, SET, 1.2, 100e-9, 2.0)
    assert thrice > twin.conductance(0)[0, r]


def test_concurrent_callers_are_serialised_by_the_world_lock(world):
    assert isinstance(world.lock, type(threading.RLock()))
    errors = []

    def hammer(k: int) -> None:
        try:
            for _ in range(50):
                world.pulse(k, np.arange(32), 0, SET, 1.0, 100e-9, 1.2)
                world.read_macro(k)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert world.clock.now() == pytest.approx(4 * 50 * (100e-9 + 1e-6))


# -- SMU routing, outputs, faults, trigger ----------------------------------------------------------
def test_unrouted_smu_sees_an_open_circuit(world):
    assert world.routed is None
    currents = world.smu_sweep(np.linspace(-1, 1, 50), 100e-6)
    assert np.all(np.abs(currents) < 1e-11) and np.std(currents) > 0


def test_routed_smu_measures_the_cell_current(world):
    world.route(0, 5, 6)
    assert world.routed == (0, 5, 6) and world.outputs.routed == (0, 5, 6)
    g = world.conductance(0)[5, 6]
    assert world.smu_measure(0.1, 100e-6) == pytest.approx(0.1 * g, rel=0.05)
    world.unroute()
    assert world.routed is None


def test_safe_state_turns_every_output_off(world):
    world.outputs.smu_on, world.outputs.smu_level = True, 0.5
    world.outputs.dac_max, world.outputs.integrators_running = 0.3, True
    assert not world.outputs_safe()
    world.safe_state()
    world.safe_state()  # idempotent
    assert world.outputs_safe()


def test_faults_exist_per_link_and_refuse_nonsense(world):
    assert set(world.faults) == {"smu", "scope", "macro_controller"}
    assert all(f == FaultConfig() for f in world.faults.values())
    with pytest.raises(ValueError, match="corrupt_rate"):
        FaultConfig(corrupt_rate=1.5)
    with pytest.raises(ValueError, match="disconnect_after"):
        FaultConfig(disconnect_after=-1)


def test_trigger_listeners_receive_the_traces(world):
    seen = []
    world.add_trigger_listener(lambda traces, dt, t0: seen.append((traces.shape, dt, t0)))
    world.fire_trigger(np.zeros((2, 3, 100)), 1e-6, 4.0)
    assert seen == [((2, 3, 100), 1e-6, 4.0)]


# -- bad input ------------------------------------------------------------------------------------
BAD_CALLS = [
    ("width", lambda w: w.pulse(0, 0, 0, SET, 1.0, -1e-7, 1.5)),
    ("amplitude", lambda w: w.pulse(0, 0, [0, 1], SET, [1.0, math.nan], 1e-7, 1.5)),
    ("amplitude", lambda w: w.pulse(0, 0, 0, RESET, -1.0, 1e-7, 1.5)),
    ("gate", lambda w: w.pulse(0, 0, 0, SET, 1.0, 1e-7, math.inf)),
    ("polarity", lambda w: w.pulse(0, 0, 0, 0, 1.0, 1e-7, 1.5)),
    ("row", lambda w: w.pulse(0, [0, 32], 0, SET, 1.0, 1e-7, 1.5)),
    ("col", lambda w: w.read(0, 0, -1)),
    ("macro", lambda w: w.read_macro(8)),
    ("row", lambda w: w.read(0, 1.5, 0)),
    ("bias", lambda w: w.read(0, 0, 0, bias=0.0)),
    ("window", lambda w: w.read(0, 0, 0, window=math.nan)),
    ("compliance", lambda w: w.smu_sweep([0.1, 0.2], -1e-4)),
    ("voltages", lambda w: w.smu_sweep([0.1, math.nan], 1e-4)),
    ("macro", lambda w: w.route(9, 0, 0)),
    ("macro", lambda w: w.conductance(macro=-1)),
]


@pytest.mark.parametrize(("name", "call"), BAD_CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD_CALLS)])
def test_bad_input_raises_naming_the_argument_and_changes_nothing(name, call):
    world = SimWorld(seed=3, n_macros=8)
    world.route(0, 1, 1)
    before = _snapshot(world)
    with pytest.raises(ValueError, match=name):
        call(world)
    assert _same(before, _snapshot(world))


def test_bad_world_construction_is_refused():
    with pytest.raises(ValueError, match="seed"):
        SimWorld(seed=-1)
    with pytest.raises(ValueError, match="rows"):
        SimWorld(rows=0)
    with pytest.raises(ValueError, match="g_min"):
        SimWorld(params=DeviceParams(g_min=200e-6))


def test_set_conductance_is_an_exact_oracle_write(world):
    g = np.linspace(2e-6, 140e-6, 32)
    world.set_conductance(1, 4, np.arange(32), g, unstick=True)
    assert np.array_equal(world.conductance(1)[4], g)  # no time has passed: exact
    world.clock.sleep(1e3)
    drift = world.conductance(1)[4] - g
    assert 0 < np.std(drift) < 0.05 * np.mean(g)  # relaxation starts from the written value
    with pytest.raises(ValueError, match="g must be"):
        world.set_conductance(0, 0, 0, 1.0)
    with pytest.raises(ValueError, match="twice"):
        world.set_conductance(0, 0, [1, 1], 5e-6)
