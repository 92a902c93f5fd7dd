"""MONITOR_SELECT: one node of the loaded network on the board's monitor output (scope channel 4),
over the serial loopback, with its refusals on both sides and an older board's UNKNOWN_OP."""

from __future__ import annotations

import numpy as np
import pytest

from instruments import macro_controller_wire as ops
from instruments.errors import InstrumentError
from instruments.macro_controller_wire import Op, Status, decode, encode
from instruments.sim.macro_controller import MacroControllerEmulator
from instruments.sim.world import SimWorld
from tests.instruments.test_macro_controller_loop import DURATION, LAYERS, V_BIAS, LoopRig, f32, streams


@pytest.fixture
def rig():
    r = LoopRig()
    yield r
    r.close()


def _captured(rig: LoopRig) -> list[np.ndarray]:
    seen: list[np.ndarray] = []
    rig.world.add_trigger_listener(lambda traces, dt, t0: seen.append(traces))
    return seen


def test_the_selected_node_is_on_the_monitor_channel_as_the_in_process_loop_gives_it(rig):
    """Over the link: the traces the scope receives carry node (1, 4) on channel D + 1, equal to a
    twin world's loop with the same selection; None brings the default (the trigger, ODE) back,
    and a new mapping does too, on the board and in the driver's record."""
    seen = _captured(rig)
    x0 = np.random.default_rng(1).uniform(-0.4, 0.4, (8, 2))
    rig.ctl.load_mapping(LAYERS, V_BIAS)
    rig.ctl.set_streams(*streams(40))
    rig.ctl.set_initial(x0)
    rig.ctl.select_monitor(1, 4)
    assert rig.world.loop.monitor == (1, 4) and rig.ctl.monitor == (1, 4)
    assert rig.ctl.snapshot()["monitor"] == ("1:4", "")
    rig.ctl.run_samples(8, DURATION, sde=False, seed=3)
    twin = SimWorld(seed=5)
    twin.loop.load_mapping(LAYERS, f32(V_BIAS))
    dt, *arrays = streams(40)
    twin.loop.set_streams(f32(dt), *(f32(a) for a in arrays))
    twin.loop.select_monitor(1, 4)
    want = twin.loop.run(f32(x0), f32(DURATION), False, np.random.default_rng(3)).traces
    np.testing.assert_allclose(seen[-1], want, atol=1e-6)
    assert np.ptp(seen[-1][:, 3]) > 0 and np.all(seen[-1][:, 3] >= 0) and np.all(seen[-1][:, 3] <= 0.5)
    rig.ctl.select_monitor(None)
    assert rig.world.loop.monitor is None and rig.ctl.monitor is None
    rig.ctl.run_samples(8, DURATION, sde=False, seed=3)
    np.testing.assert_allclose(seen[-1][:, 3], rig.world.loop.params.trigger_level)
    rig.ctl.select_monitor(2, 1)
    rig.ctl.load_mapping(LAYERS, V_BIAS)
    assert rig.world.loop.monitor is None and rig.ctl.monitor is None


def test_the_host_refuses_nodes_outside_its_mapping_before_sending_anything(rig):
    sent = rig.board.count
    with pytest.raises(ValueError, match="no mapping loaded"):
        rig.ctl.select_monitor(0, 0)
    assert rig.board.count == sent
    rig.ctl.load_mapping(LAYERS, V_BIAS)
    sent = rig.board.count
    for layer, node, what in ((3, 0, "layer"), (-1, 0, "layer"), (1.5, 0, "layer"), (True, 0, "layer"),
                              (0, 14, "node"), (2, 2, "node"), (2, -1, "node"), (0, 0.5, "node")):
        with pytest.raises(ValueError, match=f"monitor {what}"):
            rig.ctl.select_monitor(layer, node)
    assert rig.board.count == sent and rig.ctl.monitor is None


def _request(board: MacroControllerEmulator, payload: bytes, seq: int = 1):
    return decode(board.handle(encode(seq, Op.MONITOR_SELECT, payload)[:-1])).payload


def test_the_board_refuses_what_its_network_does_not_have():
    world = SimWorld(seed=7)
    board = MacroControllerEmulator(world)
    reply = _request(board, ops.MONITOR_REQ.pack(0, 0))
    assert reply[0] == Status.BAD_ARGUMENT and b"load a mapping" in reply
    assert _request(board, ops.MONITOR_REQ.pack(ops.MONITOR_OFF, 0), seq=2)[0] == Status.OK
    assert _request(board, b"\x01", seq=3)[0] == Status.BAD_LENGTH
    records = ops.encode_layers(LAYERS)
    load = ops.MAPPING_HEAD.pack(V_BIAS, len(LAYERS)) + records.tobytes()
    assert decode(board.handle(encode(4, Op.LOAD_MAPPING, load)[:-1])).payload[0] == Status.OK
    for seq, (layer, node) in enumerate(((3, 0), (0, 14), (2, 2)), start=5):
        reply = _request(board, ops.MONITOR_REQ.pack(layer, node), seq=seq)
        assert reply[0] == Status.BAD_ARGUMENT and b"monitor" in reply, reply
    assert world.loop.monitor is None
    assert _request(board, ops.MONITOR_REQ.pack(2, 1), seq=9)[0] == Status.OK
    assert world.loop.monitor == (2, 1)


def test_an_older_board_answers_unknown_op_and_the_driver_says_so(rig):
    """A board of protocol version 3 has no monitor multiplexer: it answers UNKNOWN_OP, the driver
    raises InstrumentError naming it and keeps its record of the monitor unchanged."""
    del rig.board._handlers[Op.MONITOR_SELECT]
    rig.ctl.load_mapping(LAYERS, V_BIAS)
    with pytest.raises(InstrumentError, match="MONITOR_SELECT refused \\(UNKNOWN_OP\\)"):
        rig.ctl.select_monitor(2, 0)
    assert rig.ctl.monitor is None and rig.world.loop.monitor is None
