"""EVAL_LAYER: one layer region evaluated open-loop on given input voltages, over the
serial loopback and frame by frame, with its failure paths on both sides."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from instruments import macro_controller_wire as ops
from instruments.errors import InstrumentError, LimitError
from instruments.macro_controller import LayerRegion
from instruments.macro_controller_wire import Op, Status, decode, encode
from instruments.sim.macro_controller import MacroControllerEmulator
from instruments.sim.world import SimWorld
from tests.instruments.test_macro_controller_loop import LoopRig

LAYER = LayerRegion(3, 2, 4, 6, 5, 2, "relu", 20e3)
V_BIAS = 0.1
ADC_LSB = 5.12 / 2**16          # V, the readout ADC (ADS8688, +-2.56 V, 16 bit)


def make_rig(read_noise: float = 1.0, **driver) -> LoopRig:
    """The loop tests' rig (world seed 5, the board on a loopback link) with read noise times ``read_noise``."""
    rig = LoopRig(**driver)
    rig.world.loop.params = replace(rig.world.loop.params, read_noise_scale=read_noise)
    return rig


@pytest.fixture
def rig():
    r = make_rig()
    yield r
    r.close()


def _weights(world: SimWorld, layer: LayerRegion, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Conductances set in the region; returns its G+ and G- blocks (rows, n_out) S as the
    world holds them (a stuck cell keeps its own)."""
    rng = np.random.default_rng(seed)
    shape = (layer.n_in + layer.bias_rows, layer.n_out)
    g_pos, g_neg = rng.uniform(2e-6, 40e-6, shape), rng.uniform(2e-6, 40e-6, shape)
    (rows, cols_p), (_, cols_n) = layer.regions()
    r, c = np.meshgrid(np.arange(rows.start, rows.stop), np.arange(cols_p.start, cols_p.stop), indexing="ij")
    world.set_conductance(layer.macro, r, c, g_pos)
    r, c = np.meshgrid(np.arange(rows.start, rows.stop), np.arange(cols_n.start, cols_n.stop), indexing="ij")
    world.set_conductance(layer.macro, r, c, g_neg)
    g = world.conductance(layer.macro)
    return g[rows, cols_p], g[rows, cols_n]


def test_a_noiseless_layer_gives_the_differential_pair_product_through_its_activation():
    """Outputs = ReLU(R_f (G+ - G-)^T [x; v_bias]) within an ADC step; a linear layer keeps the sign."""
    rig = make_rig(read_noise=0.0)
    try:
        g_pos, g_neg = _weights(rig.world, LAYER)
        x = np.random.default_rng(1).uniform(-0.4, 0.4, (40, LAYER.n_in))
        rows = np.hstack([x, np.full((len(x), LAYER.bias_rows), V_BIAS)])
        pre = LAYER.r_feedback * rows @ (g_pos - g_neg)
        y = rig.ctl.evaluate_layer(LAYER, x, V_BIAS)
        assert y.shape == (40, LAYER.n_out)
        np.testing.assert_allclose(y, np.clip(pre, 0.0, 0.5), atol=2 * ADC_LSB + 1e-4)
        linear = LayerRegion(3, 2, 4, 6, 5, 2, "linear", 20e3)
        np.testing.assert_allclose(rig.ctl.evaluate_layer(linear, x, V_BIAS), np.clip(pre, -0.5, 0.5),
                                   atol=2 * ADC_LSB + 1e-4)
    finally:
        rig.close()


def test_over_the_link_equals_the_in_process_evaluation_and_the_loop_keeps_its_mapping(rig):
    """Same seed, same float32 inputs: the reply equals the world's own evaluation. A loaded
    mapping stays loaded; the board clock advances one ADC conversion per output."""
    _weights(rig.world, LAYER)
    loop_layers = [LayerRegion(0, 0, 0, 2, 3, 1, "relu"), LayerRegion(1, 0, 0, 3, 2, 1, "linear")]
    rig.ctl.load_mapping(loop_layers, V_BIAS)
    x = np.random.default_rng(2).uniform(0.0, 0.4, (64, LAYER.n_in))
    t0 = rig.world.clock.now()
    y = rig.ctl.evaluate_layer(LAYER, x, V_BIAS, seed=11)
    assert rig.world.clock.now() - t0 == pytest.approx(64 * LAYER.n_out / 500e3)
    assert rig.world.loop.layers == loop_layers
    twin = SimWorld(seed=5)
    _weights(twin, LAYER)
    want = twin.loop.evaluate_layer(LAYER, float(np.float32(V_BIAS)), x.astype(np.float32).astype(float),
                                    np.random.default_rng(11))
    np.testing.assert_array_equal(y, want.astype(np.float32))
    again = rig.ctl.evaluate_layer(LAYER, x, V_BIAS, seed=12)
    assert not np.array_equal(again, y), "another seed draws other read noise"


def test_a_large_request_is_split_into_frames_that_each_fit():
    """At a 1 KiB frame the driver sends as many frames as max_vectors says; without read noise
    the split changes nothing but the moments of the conversions (the cells relax meanwhile:
    a few ADC steps)."""
    small, whole = make_rig(read_noise=0.0, max_payload=1024), make_rig(read_noise=0.0)
    try:
        for r in (small, whole):
            _weights(r.world, LAYER)
        x = np.random.default_rng(3).uniform(0.0, 0.4, (300, LAYER.n_in))
        per = ops.max_vectors(LAYER.n_in, LAYER.n_out, 1024)
        before = small.ctl.round_trips
        y = small.ctl.evaluate_layer(LAYER, x, V_BIAS)
        assert small.ctl.round_trips - before == -(-300 // per)
        np.testing.assert_allclose(y, whole.ctl.evaluate_layer(LAYER, x, V_BIAS), atol=10 * ADC_LSB)
    finally:
        small.close()
        whole.close()


def test_the_host_refuses_bad_inputs_before_sending_anything(rig):
    sent = rig.board.count
    x = np.zeros((4, LAYER.n_in))
    with pytest.raises(ValueError, match="shape"):
        rig.ctl.evaluate_layer(LAYER, np.zeros((4, 3)), V_BIAS)
    with pytest.raises(ValueError, match="NaN"):
        rig.ctl.evaluate_layer(LAYER, np.full((4, LAYER.n_in), np.nan), V_BIAS)
    with pytest.raises(LimitError):
        rig.ctl.evaluate_layer(LAYER, x + 0.6, V_BIAS)          # beyond [limits] read_voltage 0.5 V
    with pytest.raises(LimitError):
        rig.ctl.evaluate_layer(LAYER, x, 0.7)
    with pytest.raises(ValueError, match="seed"):
        rig.ctl.evaluate_layer(LAYER, x, V_BIAS, seed=-1)
    assert rig.board.count == sent


def test_the_board_refuses_a_region_outside_its_macros(rig):
    off = LayerRegion(3, 28, 0, 6, 5, 2, "relu")           # rows 28..35 of a 32-row macro
    with pytest.raises(InstrumentError, match="BAD_ARGUMENT.*does not fit"):
        rig.ctl.evaluate_layer(off, np.zeros((2, 6)), V_BIAS)
    with pytest.raises(InstrumentError, match="BAD_ARGUMENT"):
        rig.ctl.evaluate_layer(LayerRegion(9, 0, 0, 6, 5, 2, "relu"), np.zeros((2, 6)), V_BIAS)


def _frame(n: int, x: np.ndarray | None = None, *, v_bias: float = V_BIAS, activation: int = 1,
           layer: LayerRegion = LAYER, extra: bytes = b"") -> bytes:
    record = ops.encode_layers([layer])
    record["activation"] = activation
    values = np.zeros((n, layer.n_in)) if x is None else x
    return ops.EVAL_HEAD.pack(v_bias, 0, n) + record.tobytes() + values.astype(ops.VALUE).tobytes() + extra


@pytest.mark.parametrize(("payload", "status", "text"), [
    (b"\x00" * 10, Status.BAD_LENGTH, b"layer record"),
    (_frame(3, extra=b"\x00\x00"), Status.BAD_LENGTH, b"payload must be"),
    (_frame(0), Status.BAD_ARGUMENT, b"N >= 1"),
    (_frame(2, activation=7), Status.BAD_ARGUMENT, b"activation"),
    (_frame(2, np.full((2, 6), 3.0)), Status.BAD_ARGUMENT, b"input voltage"),
    (_frame(2, v_bias=4.0), Status.BAD_ARGUMENT, b"v_bias"),
    (_frame(2000, layer=LayerRegion(0, 0, 0, 1, 16, 0, "relu")), Status.BAD_LENGTH, b"exceed one frame"),
], ids=["short", "length", "empty", "activation", "rating", "v_bias", "reply"])
def test_malformed_or_out_of_rating_frames_are_refused_with_text(payload, status, text):
    board = MacroControllerEmulator(SimWorld(seed=7))
    reply = decode(board.handle(encode(1, Op.EVAL_LAYER, payload)[:-1]))
    assert reply.payload[0] == status and text in reply.payload, reply.payload
    assert board.ops.world.clock.now() == 0.0, "nothing was evaluated"


def test_max_vectors_keeps_request_and_reply_within_a_frame():
    for n_in, n_out, payload in ((6, 5, 65535), (32, 16, 1024), (1, 16, 65535), (30, 1, 64)):
        n = ops.max_vectors(n_in, n_out, payload)
        assert ops.EVAL_HEAD.size + ops.LAYER.itemsize + 4 * n * n_in <= payload
        assert 1 + 4 * n * n_out <= payload
        assert ops.EVAL_HEAD.size + ops.LAYER.itemsize + 4 * (n + 1) * n_in > payload \
            or 1 + 4 * (n + 1) * n_out > payload
