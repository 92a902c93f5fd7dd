"""Analog network, read noise and closed-loop integrators (instruments/sim/circuit.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from instruments.macro_controller_wire import LayerRegion
from instruments.sim.analog_network import AnalogLayer, network_forward
from instruments.sim.circuit import AnalogLoop, CircuitParams
from instruments.sim.integrator import NormalSource, normal_levels
from instruments.sim.world import SimWorld

R_F = 100e3      # ohm: weight 1 V/V = 10 uS of differential conductance
G_REF = 5e-6     # S: conductance both cells of a pair share
HIDDEN = 14


# -- helpers -----------------------------------------------------------------------------
def pair_conductances(weights: np.ndarray, r_f: float = R_F) -> tuple[np.ndarray, np.ndarray]:
    """G+ and G- (S) realising voltage gains ``weights`` = R_f (G+ - G-)."""
    return G_REF + np.maximum(weights, 0) / r_f, G_REF + np.maximum(-weights, 0) / r_f


def mlp_weights(seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W, bias) of a 2->14->14->2 network in volts, weights within +-2 V/V."""
    rng = np.random.default_rng(seed)
    shapes = [(2, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, 2)]
    return [(rng.uniform(-1, 1, s) * (1.5 if s[0] == 2 else 0.5), rng.uniform(-0.1, 0.1, s[1])) for s in shapes]


def analog_mlp(weights, v_bias: float, noise_rel: float = 0.0) -> list[AnalogLayer]:
    """AnalogLayers with one bias row per layer; read noise sigma = noise_rel x G."""
    layers = []
    for k, (w, b) in enumerate(weights):
        g_pos, g_neg = pair_conductances(np.vstack([w, b / v_bias]))
        sig = {"sigma_pos": noise_rel * g_pos, "sigma_neg": noise_rel * g_neg} if noise_rel else {}
        layers.append(AnalogLayer(g_pos, g_neg, n_bias=1, r_feedback=R_F,
                                  activation="linear" if k == 2 else "relu", **sig))
    return layers


def numpy_forward(weights, x: np.ndarray, emb: np.ndarray, v_rail: float) -> np.ndarray:
    """The software network: ReLU hidden layers with the embedding added, rail-limited."""
    h = x
    for k, (w, b) in enumerate(weights):
        pre = h @ w + b
        h = np.clip(pre, -v_rail, v_rail) if k == 2 else np.clip(pre + emb, 0, v_rail)
    return h


def program_ideal(world: SimWorld, macro: int, rows: slice, cols: slice, g: np.ndarray) -> None:
    """Set exact conductances (S) in a macro region, freshly programmed now (test oracle)."""
    cells = world.cells
    index = np.arange(np.prod(world.shape)).reshape(world.shape)[macro, rows, cols].ravel()
    now = world.clock.now()
    cells.g[index] = cells.g_prog[index] = np.asarray(g, dtype=float).ravel()
    cells.t_prog[index] = cells.t_seen[index] = now
    cells.stuck[index] = False


def map_network(world: SimWorld, layers: list[AnalogLayer]) -> list[LayerRegion]:
    """Place each layer in its own macro at the origin and program it ideally."""
    maps = []
    for k, layer in enumerate(layers):
        lm = LayerRegion(macro=k, row0=0, col0=0, n_in=layer.n_in, n_out=layer.n_out, bias_rows=layer.n_bias,
                      activation=layer.activation, r_feedback=layer.r_feedback)
        (rp, cp), (rn, cn) = lm.regions()
        program_ideal(world, k, rp, cp, layer.g_pos)
        program_ideal(world, k, rn, cn, layer.g_neg)
        maps.append(lm)
    return maps


def constant_streams(loop: AnalogLoop, a: float, b: float, c: float, emb: np.ndarray | None = None,
                     t_len: int = 10, dt: float = 1e-3) -> None:
    emb = np.zeros((t_len, HIDDEN)) if emb is None else np.tile(emb, (t_len, 1))
    loop.set_streams(dt, emb, np.zeros(emb.shape[1]), np.full(t_len, a), np.full(t_len, b), np.full(t_len, c))


@pytest.fixture
def world() -> SimWorld:
    return SimWorld(seed=3, n_macros=3)


def decay_loop(world: SimWorld, noise_scale: float = 0.0) -> AnalogLoop:
    """One linear layer y = -x (R_f (G+ - G-) = -I), gains a = 0, b = 1: RC dx/dtau = -x.

    The ideal loop: these tests check its maths (test_loop_circuit.py checks the parts')."""
    world.loop.params = CircuitParams(rc=1e-3, dt_step=1e-6, read_noise_scale=noise_scale, model="ideal")
    layer = AnalogLayer(*pair_conductances(-np.eye(2)), r_feedback=R_F, activation="linear")
    world.loop.load_mapping(map_network(world, [layer]), v_bias=0.1)
    constant_streams(world.loop, a=0.0, b=1.0, c=0.0)
    return world.loop


# -- the network in volts -------------------------------------------------------------------
def test_network_matches_numpy_forward_within_one_percent_of_full_scale():
    weights, v_bias, v_rail = mlp_weights(), 0.2, 0.5
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.4, 0.4, (2000, 2))
    emb = rng.uniform(-0.1, 0.1, HIDDEN)
    analog = network_forward(analog_mlp(weights, v_bias), x, v_bias=v_bias, extra=[emb, emb, None], v_rail=v_rail)
    software = numpy_forward(weights, x, emb, v_rail)
    assert np.max(np.abs(analog - software)) <= 0.01 * v_rail
    assert np.std(software) > 0.05 * v_rail          # the comparison is not between two near-zero outputs


def test_relu_output_saturates_at_the_rail_and_linear_output_at_both_rails():
    w = np.array([[3.0, -3.0]])
    x = np.array([[1.0], [-1.0]])
    relu = network_forward([AnalogLayer(*pair_conductances(w), r_feedback=R_F)], x, v_rail=0.5)
    linear = network_forward([AnalogLayer(*pair_conductances(w), r_feedback=R_F, activation="linear")], x, v_rail=0.5)
    np.testing.assert_allclose(relu, [[0.5, 0.0], [0.0, 0.5]], atol=1e-6)
    np.testing.assert_allclose(linear, [[0.5, -0.5], [-0.5, 0.5]], atol=1e-6)


def test_read_noise_closed_form_matches_per_conductance_draws():
    """One normal per output reproduces the spread of independent noise on every conductance."""
    rng = np.random.default_rng(5)
    g_pos, g_neg = rng.uniform(2e-6, 65e-6, (2, 6, 3))
    sigma_pos, sigma_neg = 0.05 * g_pos, 0.08 * g_neg
    v = rng.uniform(-0.3, 0.3, 6)
    layer = AnalogLayer(g_pos, g_neg, r_feedback=R_F, activation="linear", sigma_pos=sigma_pos, sigma_neg=sigma_neg)
    n = 20000
    closed = network_forward([layer], np.tile(v, (n, 1)), v_rail=10.0, rng=rng)
    dp = rng.standard_normal((n, 6, 3)) * sigma_pos
    dn = rng.standard_normal((n, 6, 3)) * sigma_neg
    per_weight = R_F * np.einsum("i,nij->nj", v, (g_pos + dp) - (g_neg + dn))
    ratio = closed.std(axis=0) / per_weight.std(axis=0)
    assert np.all(np.abs(ratio - 1) < 0.04)
    spread = per_weight.std(axis=0).max()
    np.testing.assert_allclose(closed.mean(axis=0), per_weight.mean(axis=0), atol=0.03 * spread)


def test_output_error_grows_with_the_read_noise_level():
    weights, v_bias = mlp_weights(), 0.2
    x = np.random.default_rng(1).uniform(-0.4, 0.4, (4000, 2))
    emb = np.full(HIDDEN, 0.05)
    clean = network_forward(analog_mlp(weights, v_bias), x, v_bias=v_bias, extra=[emb, emb, None])
    errors = []
    for level in (0.005, 0.01, 0.02, 0.04):
        noisy = network_forward(analog_mlp(weights, v_bias, level), x, v_bias=v_bias, extra=[emb, emb, None],
                                rng=np.random.default_rng(2))
        errors.append(np.sqrt(np.mean((noisy - clean) ** 2)))
    assert all(b > 1.5 * a for a, b in zip(errors, errors[1:], strict=False))


def test_normal_source_draws_standard_normals():
    source = NormalSource(np.random.default_rng(9), 50000, 4)
    z = source.draw().astype(float)
    assert not np.array_equal(source.draw(), z)  # fresh draws, in the same buffer
    assert z.shape == (4, 50000)
    levels = normal_levels().astype(float)  # the table: unit variance exactly, tails cut at 4.3 sigma
    assert abs(np.mean(levels**2) - 1) < 1e-6 and np.max(np.abs(levels)) == pytest.approx(4.325, abs=1e-3)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005
    assert abs(np.mean(np.abs(z) < 2) - 0.9545) < 0.003


# -- the closed loop on the world ---------------------------------------------------------------
def test_integrator_follows_exponential_decay_within_one_percent(world):
    loop = decay_loop(world)
    x0 = np.array([[0.4, -0.3], [0.5, 0.02]])         # |y| = |x| stays below the 0.5 V rail
    result = loop.run(x0, duration=5e-3, sde=False, rng=np.random.default_rng(0), sample_rate=1e5)
    t = np.arange(result.traces.shape[2]) * result.trace_dt
    expected = x0[:, :, None] * np.exp(-t / 1e-3)
    assert result.traces.shape[2] == 501 and t[-1] == pytest.approx(5e-3)
    assert np.max(np.abs(result.traces[:, :2, :] / expected - 1)) < 0.01
    np.testing.assert_allclose(result.end, x0 * np.exp(-5.0), rtol=0.01)


def test_decay_with_default_read_noise_still_within_one_percent(world):
    loop = decay_loop(world, noise_scale=1.0)
    x0 = np.full((200, 2), 0.5)
    result = loop.run(x0, duration=2e-3, sde=False, rng=np.random.default_rng(0))
    errors = np.abs(result.end / (0.5 * np.exp(-2.0)) - 1)
    assert np.percentile(errors, 99) < 0.01
    assert np.std(result.end) > 0                      # the noise is really there


def test_closed_loop_network_matches_numpy_euler_solution(world):
    """2->14->14->2 ReLU network with embedding in the loop, noise off, against numpy."""
    weights, v_bias, v_rail = mlp_weights(), 0.2, 0.5
    world.loop.params = CircuitParams(read_noise_scale=0.0, v_rail=v_rail, model="ideal")
    world.loop.load_mapping(map_network(world, analog_mlp(weights, v_bias)), v_bias)
    emb = np.linspace(-0.1, 0.1, HIDDEN)
    constant_streams(world.loop, a=-0.5, b=1.0, c=0.0, emb=emb)
    x0 = np.random.default_rng(4).uniform(-0.4, 0.4, (300, 2))
    result = world.loop.run(x0, duration=1e-3, sde=False, rng=np.random.default_rng(0))
    x, h = x0.copy(), 1e-6 / 1e-3
    for _ in range(1000):
        x = x + h * (-0.5 * x + numpy_forward(weights, x, emb, v_rail))
    assert np.max(np.abs(result.end - x)) < 0.01 * v_rail
    assert np.max(np.abs(x - x0)) > 0.05 * v_rail      # the network moved the state


def test_closed_loop_error_grows_with_the_read_noise_scale(world):
    """The device read noise (instruments.sim.device) scaled up moves the samples further."""
    weights, v_bias = mlp_weights(), 0.2
    x0 = np.random.default_rng(4).uniform(-0.4, 0.4, (500, 2))
    ends = []
    for scale in (0.0, 1.0, 4.0, 16.0):
        # freshly programmed each time, so relaxation between runs plays no part
        world.loop.load_mapping(map_network(world, analog_mlp(weights, v_bias)), v_bias)
        constant_streams(world.loop, a=-0.5, b=1.0, c=0.0, emb=np.full(HIDDEN, 0.05))
        world.loop.params = CircuitParams(read_noise_scale=scale)
        ends.append(world.loop.run(x0, duration=5e-4, sde=False, rng=np.random.default_rng(1)).end)
    rms = [np.sqrt(np.mean((e - ends[0]) ** 2)) for e in ends[1:]]
    assert 0 < rms[0] and rms[1] > 3 * rms[0] and rms[2] > 3 * rms[1]


def test_sde_noise_gives_the_stationary_variance_of_the_ou_process(world):
    """a = -1, b = 0, noise gain c: dx = -x ds + c dW settles to variance c^2 / 2."""
    loop = decay_loop(world)
    constant_streams(loop, a=-1.0, b=0.0, c=0.2)
    result = loop.run(np.zeros((4000, 2)), duration=5e-3, sde=True, rng=np.random.default_rng(1))
    variance = result.end.var(axis=0)
    np.testing.assert_allclose(variance, 0.02 * (1 - np.exp(-10.0)), rtol=0.06)


def test_traces_carry_integrators_embedding_probe_and_trigger(world):
    loop = decay_loop(world)
    t_len, dt = 10, 1e-4
    emb = np.zeros((t_len, HIDDEN))
    emb[:, 0] = np.linspace(0, 0.9, t_len)
    loop.set_streams(dt, emb, np.zeros(HIDDEN), np.zeros(t_len), np.ones(t_len), np.zeros(t_len))
    result = loop.run(np.full((3, 2), 0.2), duration=1e-3, sde=False, rng=np.random.default_rng(0),
                      sample_rate=2e4)
    assert result.traces.shape == (3, 4, 21)
    assert result.trace_dt == pytest.approx(5e-5)
    t = np.arange(20) * result.trace_dt
    np.testing.assert_allclose(result.traces[0, 2, :20], emb[(t / dt + 1e-9).astype(int), 0], atol=1e-6)
    np.testing.assert_allclose(result.traces[:, 3, :], loop.params.trigger_level)
    np.testing.assert_allclose(result.traces[:, :2, -1], result.end, rtol=1e-6)


def test_sde_trace_shows_the_injected_noise_voltage(world):
    loop = decay_loop(world)
    constant_streams(loop, a=0.0, b=0.0, c=0.1)
    result = loop.run(np.zeros((2000, 2)), duration=1e-4, sde=True, rng=np.random.default_rng(2), sample_rate=1e6)
    held = result.traces[:, 3, :-1].astype(float)
    np.testing.assert_allclose(held.std(), 0.1 / np.sqrt(1e-3), rtol=0.03)


def test_run_advances_the_clock_and_holds_the_integrators_running(world):
    loop = decay_loop(world)
    t0 = world.clock.now()
    seen = []
    runner = threading.Thread(target=loop.run, args=(np.zeros((1000, 2)), 2e-3, False, np.random.default_rng(0)))
    runner.start()
    while runner.is_alive():
        seen.append(world.outputs.integrators_running)
        time.sleep(1e-4)  # a spinning poll would hold the GIL from the run it watches
    runner.join()
    assert any(seen)
    assert not world.outputs.integrators_running
    assert world.clock.now() - t0 == pytest.approx(1000 * 2e-3)


def test_conductances_are_read_from_the_world_at_run_start(world):
    """Reprogramming the mapped cells changes what the loop computes."""
    loop = decay_loop(world)
    before = loop.run(np.full((1, 2), 0.2), 1e-3, False, np.random.default_rng(0)).end
    layer = AnalogLayer(*pair_conductances(-2 * np.eye(2)), r_feedback=R_F, activation="linear")
    map_network(world, [layer])
    after = loop.run(np.full((1, 2), 0.2), 1e-3, False, np.random.default_rng(0)).end
    np.testing.assert_allclose(before, 0.2 * np.exp(-1.0), rtol=0.01)
    np.testing.assert_allclose(after, 0.2 * np.exp(-2.0), rtol=0.01)


def test_state_survives_save_and_load(world, tmp_path):
    """Mapping, streams and parameters come back; the same seed gives the same run."""
    loop = decay_loop(world, noise_scale=1.0)
    constant_streams(loop, a=-0.2, b=1.0, c=0.05, emb=np.full(HIDDEN, 0.1))
    world.save(tmp_path / "w.npz")
    restored = SimWorld.load(tmp_path / "w.npz")
    assert restored.loop.layers == loop.layers and restored.loop.params == loop.params
    x0 = np.full((20, 2), 0.3)
    a = loop.run(x0, 1e-3, True, np.random.default_rng(7))
    b = restored.loop.run(x0, 1e-3, True, np.random.default_rng(7))
    np.testing.assert_array_equal(a.end, b.end)


def test_empty_loop_state_round_trips(world, tmp_path):
    world.save(tmp_path / "w.npz")
    restored = SimWorld.load(tmp_path / "w.npz")
    assert restored.loop.layers == [] and restored.loop.v_bias is None


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, kwargs", [
    ("a", {"a": np.array([0.0, np.nan, 0.0])}),
    ("embedding", {"embedding": np.full((3, HIDDEN), np.inf)}),
    ("condition", {"condition": np.zeros(5)}),
    ("c", {"c": np.zeros(4)}),
    ("embedding", {"embedding": np.full((3, HIDDEN), 3.0)}),
    ("dt", {"dt": -1e-3}),
])
def test_bad_streams_are_refused_naming_the_argument(world, name, kwargs):
    args = {"dt": 1e-3, "embedding": np.zeros((3, HIDDEN)), "condition": np.zeros(HIDDEN),
            "a": np.zeros(3), "b": np.zeros(3), "c": np.zeros(3)} | kwargs
    with pytest.raises(ValueError, match=name):
        world.loop.set_streams(**args)
    assert world.loop.state_dict()["stream.stream_dt"] is None


@pytest.mark.parametrize("name, call", [
    ("x0", lambda loop: loop.run(np.full((2, 2), np.nan), 1e-3, False, np.random.default_rng(0))),
    ("x0", lambda loop: loop.run(np.zeros((2, 3)), 1e-3, False, np.random.default_rng(0))),
    ("x0", lambda loop: loop.run(np.full((2, 2), 9.0), 1e-3, False, np.random.default_rng(0))),
    ("duration", lambda loop: loop.run(np.zeros((2, 2)), -1.0, False, np.random.default_rng(0))),
    ("duration", lambda loop: loop.run(np.zeros((2, 2)), 1.0, False, np.random.default_rng(0))),
    ("sample_rate", lambda loop: loop.run(np.zeros((2, 2)), 1e-3, False, np.random.default_rng(0), 1e9)),
    ("rng", lambda loop: loop.run(np.zeros((2, 2)), 1e-3, False, 42)),
])
def test_bad_run_arguments_are_refused_naming_the_argument(world, name, call):
    loop = decay_loop(world)
    t0 = world.clock.now()
    with pytest.raises(ValueError, match=name):
        call(loop)
    assert world.clock.now() == t0 and not world.outputs.integrators_running


@pytest.mark.parametrize("name, layers", [
    ("macro", [LayerRegion(macro=7, row0=0, col0=0, n_in=2, n_out=2)]),
    ("rows", [LayerRegion(macro=0, row0=31, col0=0, n_in=2, n_out=2)]),
    ("columns", [LayerRegion(macro=0, row0=0, col0=29, n_in=2, n_out=2)]),
    ("n_in", [LayerRegion(macro=0, row0=0, col0=0, n_in=2, n_out=3),
              LayerRegion(macro=1, row0=0, col0=0, n_in=2, n_out=2)]),
])
def test_bad_mappings_are_refused_and_leave_the_old_mapping(world, name, layers):
    loop = decay_loop(world)
    old = list(loop.layers)
    with pytest.raises(ValueError, match=name):
        loop.load_mapping(layers, v_bias=0.1)
    assert loop.layers == old


def test_bad_layer_fields_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="activation"):
        LayerRegion(macro=0, row0=0, col0=0, n_in=2, n_out=2, activation="tanh")
    with pytest.raises(ValueError, match="r_feedback"):
        LayerRegion(macro=0, row0=0, col0=0, n_in=2, n_out=2, r_feedback=float("nan"))
    with pytest.raises(ValueError, match="g_neg"):
        AnalogLayer(np.ones((2, 2)) * 1e-5, -np.ones((2, 2)) * 1e-5)
    with pytest.raises(ValueError, match="x"):
        network_forward([AnalogLayer(np.ones((2, 2)) * 1e-5, np.ones((2, 2)) * 1e-5)], np.full((1, 2), np.nan))
    with pytest.raises(ValueError, match="dt_step"):
        CircuitParams(rc=1e-6, dt_step=1e-6)


def test_float32_times_from_the_board_link_give_whole_steps_and_the_right_stream_samples(world):
    """A float32 duration or dt (slightly off the decimal value) must not add a step or
    shift the zero-order hold by one sample."""
    loop = decay_loop(world)
    f32 = np.float32
    t_len, dt = 10, f32(2e-5)
    emb = np.zeros((t_len, HIDDEN), dtype=f32)
    emb[:, 0] = np.arange(t_len, dtype=f32) * f32(0.1)
    loop.set_streams(dt, emb, np.zeros(HIDDEN, f32), np.zeros(t_len, f32), np.ones(t_len, f32), np.zeros(t_len, f32))
    result = loop.run(np.zeros((2, 2), f32), f32(2e-4), False, np.random.default_rng(0), sample_rate=1e5)
    assert result.traces.shape[2] == 21
    np.testing.assert_allclose(result.traces[0, 2, :20:2], emb[:, 0], atol=1e-6)
