"""Closed-loop operations of the controller over the serial loopback.

Mapping, DAC streams, initial conditions, a run that fires the scope trigger, and
the integrator end values, compared with the same calls made in-process.
"""

from __future__ import annotations

import numpy as np
import pytest

from instruments.errors import InstrumentError
from instruments.limits import Limits
from instruments.macro_controller import LayerRegion, MacroController
from instruments.serial_link import SerialLink
from instruments.sim.macro_controller import MacroControllerEmulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld

# A 2 -> 14 -> 14 -> 2 score network on three macros (G+ and G- side by side).
LAYERS = [
    LayerRegion(0, 0, 0, 2, 14, 1, "relu", 20e3),
    LayerRegion(1, 0, 0, 14, 14, 1, "relu", 20e3),
    LayerRegion(2, 0, 0, 14, 2, 1, "linear", 20e3),
]
V_BIAS = 0.1
DURATION = 2e-4  # s: 200 fine steps of the circuit


def f32(x):
    """The value as it travels: float32 on the wire, float64 again on the board."""
    return np.float32(x).astype(float) if np.ndim(x) else float(np.float32(x))


def streams(t_steps: int, hidden: int = 14):
    t = np.linspace(1, 0, t_steps)
    emb = 0.2 * np.sin(np.outer(t, np.arange(1, hidden + 1)))
    return 1e-5, emb, np.zeros(hidden), -0.5 * (0.1 + t), np.ones(t_steps), 0.2 * np.sqrt(0.1 + t)


class LoopRig:
    def __init__(self, **driver) -> None:
        self.world = SimWorld(seed=5)
        self.board = MacroControllerEmulator(self.world)
        self.server = LoopbackServer(self.board.handle, delimiter=b"\x00", name="macro_controller").start()
        self.link = SerialLink.open(self.server.url, timeout=2.0)
        self.ctl = MacroController(self.link, Limits(), **driver)

    def close(self) -> None:
        self.link.close()
        self.server.stop()


@pytest.fixture
def rig():
    r = LoopRig()
    yield r
    r.close()


def in_process(t_steps: int, x0: np.ndarray, sde: bool, seed: int):
    """The same sequence on a twin world, with the values as float32 on the wire."""
    twin = SimWorld(seed=5)
    twin.loop.load_mapping(LAYERS, f32(V_BIAS))
    dt, *arrays = streams(t_steps)
    twin.loop.set_streams(f32(dt), *(f32(a) for a in arrays))
    return twin.loop.run(f32(x0), f32(DURATION), sde, np.random.default_rng(seed))


@pytest.mark.parametrize("sde", [False, True], ids=["ode", "sde"])
def test_run_over_the_link_equals_the_in_process_loop_and_fires_the_trigger(rig, sde):
    fired = []
    rig.world.add_trigger_listener(lambda traces, dt, t0: fired.append((traces.shape, dt, t0)))
    x0 = np.random.default_rng(1).uniform(-0.5, 0.5, (64, 2))
    rig.ctl.load_mapping(LAYERS, V_BIAS)
    rig.ctl.set_streams(*streams(40))
    rig.ctl.set_initial(x0)
    t_start = rig.world.clock.now()
    rig.ctl.run_samples(64, DURATION, sde=sde, seed=11)
    end = rig.ctl.fetch_end_values()
    expected = in_process(40, x0, sde, seed=11)
    assert end.shape == (64, 2)
    np.testing.assert_array_equal(end, expected.end.astype(np.float32))
    assert len(fired) == 1
    shape, dt, t0 = fired[0]
    assert shape == expected.traces.shape and dt == pytest.approx(expected.trace_dt) and t0 == t_start
    assert rig.world.clock.now() - t_start == pytest.approx(64 * DURATION, rel=1e-6)
    assert not rig.ctl.status().integrators_running


def test_long_streams_and_many_samples_cross_frame_limits_intact():
    rig = LoopRig(max_payload=4096)
    try:
        x0 = np.random.default_rng(2).uniform(-0.4, 0.4, (3000, 2))  # 24 kB: staged in 4 kB chunks
        rig.ctl.load_mapping(LAYERS, V_BIAS)
        rig.ctl.set_streams(*streams(400))  # 27 kB of streams
        rig.ctl.set_initial(x0)
        frames = rig.board.count
        rig.ctl.run_samples(3000, DURATION, sde=False, seed=3)
        end = rig.ctl.fetch_end_values()
        fetches = rig.board.count - frames - 1
        assert fetches == -(-3000 * 2 * 4 // (4096 - 1 - 14))  # FETCH_END chunks of whole samples
        np.testing.assert_array_equal(end, in_process(400, x0, False, 3).end.astype(np.float32))
    finally:
        rig.close()


def test_running_before_loading_is_refused_with_the_boards_text(rig):
    with pytest.raises(InstrumentError, match="load a mapping"):
        rig.ctl.run_samples(1, DURATION, sde=False)
    with pytest.raises(InstrumentError, match="no run has finished"):
        rig.ctl.fetch_end_values()


def test_a_mapping_that_does_not_fit_its_macro_is_refused_with_the_circuits_text(rig):
    wide = [LayerRegion(0, 0, 10, 2, 14, 1, "relu", 20e3)]  # G- block would need columns up to 38
    with pytest.raises(InstrumentError, match="BAD_ARGUMENT"):
        rig.ctl.load_mapping(wide, V_BIAS)
    assert not rig.ctl.status().mapping_loaded


def test_loaded_dacs_show_in_the_outputs_until_safe_state(rig):
    rig.ctl.set_initial(np.array([[0.3, -0.45]]))
    assert rig.world.outputs.dac_max == pytest.approx(0.45, rel=1e-6)
    rig.ctl.safe_state()
    assert rig.world.outputs_safe()


def test_a_run_longer_than_the_link_timeout_is_waited_for_not_retried(rig, monkeypatch):
    """The board answers RUN_SAMPLES when its last sample has run: count x duration of board
    time may exceed the link's timeout, and the driver waits that long for the reply instead
    of calling the run lost (a 100,000-sample run timed out after 8 retries before)."""
    rig.ctl.load_mapping(LAYERS, V_BIAS)
    rig.ctl.set_streams(*streams(200))
    x0 = np.random.default_rng(0).uniform(-0.3, 0.3, (4, 2))
    rig.ctl.set_initial(x0)
    waits = []
    read = rig.link.read_message
    monkeypatch.setattr(rig.link, "read_message", lambda timeout=None: (waits.append(timeout), read(timeout))[1])
    rig.ctl.run_samples(4, DURATION, False, seed=1)
    assert waits and waits[0] == pytest.approx(rig.link.timeout + 4 * DURATION)
    assert rig.ctl.retries == 0
