"""Mapping a score network onto differential pairs and DAC streams."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.sim.analog_network import AnalogLayer, network_forward
from protocols.diffusion.loop_streams import loop_streams
from protocols.diffusion.mapping import G_MAX, G_MIN, MappingConfig, map_dense, map_score_net
from protocols.diffusion.samplers import sample_probability_flow
from protocols.diffusion.weights import load_shipped


@pytest.fixture(scope="module")
def ring():
    model = load_shipped("ring")
    return model, map_score_net(model)


@pytest.fixture(scope="module")
def digits():
    model = load_shipped("digits")
    return model, map_score_net(model)


def _analog_score(mapped, x, t, cond=None):
    layers = [AnalogLayer(p.g_pos, p.g_neg, n_bias=p.n_bias, r_feedback=p.r_feedback, activation=lay.activation)
              for p, lay in zip(mapped.pairs, mapped.layers, strict=True)]     # the target conductances
    emb, c = mapped.hidden_volts(t, cond)
    y = network_forward(layers, mapped.to_volts(x), v_bias=mapped.v_bias, extra=[emb + c, emb + c, None],
                        v_rail=mapped.v_rail)
    return mapped.score_from_output(y)


@pytest.mark.parametrize("name", ["ring", "digits"])
def test_ideal_conductances_reproduce_the_score_network_within_1_percent_of_full_scale(name, ring, digits):
    """Round trip: mapping, then the target conductances through network_forward, equals the numpy net."""
    model, mapped = {"ring": ring, "digits": digits}[name]
    classes = range(model.net.n_classes) if model.net.conditional else [None]
    rng = np.random.default_rng(0)
    for cond in classes:
        labels = None if cond is None else np.full(500, cond)
        res = sample_probability_flow(model.net, model.sampling_sde, rng.standard_normal((500, 2)), 200,
                                      cond=labels, snapshot_times=np.linspace(1, 1e-4, 9))
        for x, t in zip(res.snapshots, res.times, strict=True):
            want = model.net(x, t, labels)
            got = _analog_score(mapped, x, t, cond)
            full_scale = model.net.amplitude * mapped.v_rail / mapped.y_scale
            assert np.max(np.abs(got - want)) < 0.01 * full_scale


def test_pairs_are_one_sided_inside_the_window_and_the_largest_weight_spans_the_fill(ring):
    """Every cell lies in the programmable window; one cell of each pair sits at g_min;
    the largest |weight| of each layer uses `fill` of the window."""
    _, mapped = ring
    for pair in mapped.pairs:
        assert pair.g_pos.min() >= G_MIN and pair.g_neg.min() >= G_MIN
        assert max(pair.g_pos.max(), pair.g_neg.max()) <= G_MAX
        assert np.all(np.minimum(pair.g_pos, pair.g_neg) == G_MIN)
        span = np.max(np.abs(pair.g_pos - pair.g_neg))
        assert span == pytest.approx(mapped.config.fill * (G_MAX - G_MIN))


def test_bias_rows_are_added_until_no_bias_row_outweighs_the_largest_input_weight():
    """A bias far larger than the weights is spread over enough rows at v_bias."""
    cfg = MappingConfig()
    w = np.array([[0.1, -0.2], [0.05, 0.2]])
    b = np.array([3.0, -0.1])
    pair = map_dense(w, b, 0.1, 0.1, cfg)
    assert pair.n_bias == 15        # 3 V of bias at 0.1 V per row is a gain of 30; 0.2 per row at most
    dg = np.abs(pair.g_pos - pair.g_neg)
    assert dg[2:].max() <= dg[:2].max() * (1 + 1e-9)
    w_back, b_back = pair.weights(pair.g_pos, pair.g_neg, cfg.v_bias)
    np.testing.assert_allclose(w_back, w, atol=1e-12)
    np.testing.assert_allclose(b_back, b, atol=1e-12)


def test_pair_weights_of_the_targets_are_the_network_weights(ring):
    """Conductances read back as weights give the trained weights (and b / n_bias per bias row)."""
    model, mapped = ring
    weights = mapped.pair_weights()
    net = mapped.programmed_net(mapped.cells()[3])
    for name in ("w1", "b1", "w2", "b2", "w3", "b3"):
        np.testing.assert_allclose(getattr(net, name), getattr(model.net, name), atol=1e-9)
    assert weights.size == mapped.cells()[3].size // 2


def test_stream_gains_follow_the_time_mapping(ring):
    """t = 1 - tau / T; a = RC beta / 2T; b = a A s_x / s_y (ODE); c = s_x sqrt(beta RC / T) (SDE)."""
    model, mapped = ring
    ode = loop_streams(mapped, model, n_steps=1500, dt_step=1e-6, rc=1e-3, sde=False)
    sde = loop_streams(mapped, model, n_steps=1500, dt_step=1e-6, rc=1e-3, sde=True)
    assert ode.duration == pytest.approx(1.5e-3) and ode.t_span == pytest.approx(1.5e-3 / (1 - 1e-4))
    beta = model.sampling_sde.beta(1.0)
    assert ode.a[0] == pytest.approx(1e-3 * beta / (2 * ode.t_span))
    assert ode.b[0] == pytest.approx(ode.a[0] * model.net.amplitude * mapped.x_scale / mapped.y_scale)
    assert np.all(ode.c == 0)
    assert sde.b[0] == pytest.approx(2 * ode.b[0])
    assert sde.c[0] == pytest.approx(mapped.x_scale * np.sqrt(beta * 1e-3 / sde.t_span))
    np.testing.assert_allclose(ode.embedding[0], model.net.time_embedding(1.0) * mapped.h_scale)
    assert np.all(np.abs(ode.embedding) <= mapped.config.v_dac)


def test_states_beyond_the_dac_range_are_refused_not_clipped(ring):
    """5 data units is the most the 0.5 V DACs hold at 0.1 V per unit."""
    _, mapped = ring
    assert mapped.to_volts(np.array([[5.0, -5.0]])) == pytest.approx(np.array([[0.5, -0.5]]))
    with pytest.raises(ValueError, match="DAC range"):
        mapped.to_volts(np.array([[5.1, 0.0]]))


def test_conditional_streams_carry_the_class_embedding(digits):
    """The condition DACs hold the class vector in hidden volts; each class differs."""
    model, mapped = digits
    conds = [loop_streams(mapped, model, n_steps=100, dt_step=1e-6, rc=1e-3, sde=False, cond=k).condition
             for k in range(model.net.n_classes)]
    for k, c in enumerate(conds):
        np.testing.assert_allclose(c, model.net.class_embedding[k] * mapped.h_scale)
    assert not np.allclose(conds[0], conds[1])


def test_relocation_moves_only_layers_that_hold_a_stuck_cell(ring):
    """A stuck cell inside layer 1's region moves layer 1 to a free region of its macro."""
    _, mapped = ring
    lay = mapped.layers[1]
    stuck = {(lay.macro, lay.row0 + 2, lay.col0 + 3)}
    moved = mapped.relocated(stuck, (8, 32, 32))
    assert moved.layers[0] == mapped.layers[0] and moved.layers[2] == mapped.layers[2]
    new = moved.layers[1]
    rows = range(new.row0, new.row0 + new.n_in + new.bias_rows)
    cols = range(new.col0, new.col0 + 2 * new.n_out)
    assert not any((new.macro, r, c) in stuck for r in rows for c in cols)
    assert (new.n_in, new.n_out, new.bias_rows) == (lay.n_in, lay.n_out, lay.bias_rows)
