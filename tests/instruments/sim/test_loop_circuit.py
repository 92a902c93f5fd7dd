"""The closed loop at circuit level (instruments/sim/loop_circuit.py via AnalogLoop, model="circuit")."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from instruments.sim import loop_circuit as lc
from instruments.sim.analog_network import AnalogLayer
from instruments.sim.circuit import CircuitParams
from instruments.sim.opamp import (
    OPA2320,
    SUMMING_C_FEEDBACK,
    TIA_C_FEEDBACK,
    OpAmpParams,
    rk4_step,
    summing_amplifier,
    transimpedance_amplifier,
)
from instruments.sim.world import SimWorld
from tests.instruments.sim.test_circuit import (
    HIDDEN,
    R_F,
    analog_mlp,
    constant_streams,
    map_network,
    mlp_weights,
    numpy_forward,
    pair_conductances,
)

LSB = lc.ADS8688.lsb


# -- converters ------------------------------------------------------------------------------
def test_dac_codes_are_16_bit_over_the_bipolar_range():
    dac = lc.AD5542A
    assert dac.lsb == pytest.approx(5.0 / 65536)
    v = np.array([-3.0, -2.5, 0.0, 1e-5, 0.1, 2.5, 3.0])
    q = dac.quantize(v)
    assert q[0] == q[1] == -2.5 and q[-1] == q[-2] == pytest.approx(2.5 - dac.lsb)    # clipped to the codes
    assert np.all(np.abs(q[2:5] - v[2:5]) <= dac.lsb / 2 + 1e-15)
    # a gain DAC with a +-8 reference: the same 16 bits over a range 3.2 times wider
    assert np.abs(dac.quantize(np.array([6.7]), 8.0) - 6.7)[0] <= 8.0 / 32768 / 2 + 1e-12
    assert lc.gain_full_scale(np.array([0.3, -6.7]), dac) == 10.0


def test_dac_settling_takes_the_datasheet_time_to_half_an_lsb():
    dac = lc.AD5542A
    assert math.exp(-dac.settling / dac.tau) == pytest.approx(2.0 ** -17)


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_dac_waveform_integrates_to_the_same_charge_for_any_substep(k):
    """Sub-step means of the exact first-order settling: what an integrator collects over each
    board interval does not depend on the sub-step."""
    values = np.array([0.0, 1.0, 1.0, -0.5, 0.25])
    interval = 1e-6
    ref = lc.dac_substeps(values, 1, interval, lc.AD5542A).reshape(-1)
    wave = lc.dac_substeps(values, k, interval, lc.AD5542A).reshape(-1, k).mean(axis=1)
    np.testing.assert_allclose(wave, ref, atol=1e-12)
    tau = lc.AD5542A.tau
    expected = 1.0 - (tau / interval) * -math.expm1(-interval / tau)    # mean over the first rising interval
    assert ref[1] == pytest.approx(lc.AD5542A.quantize(np.array([1.0]))[0] * expected, rel=1e-9)
    assert ref[0] == 0.0                                                 # loaded before the run


# -- amplifier stages --------------------------------------------------------------------------
def test_stage_time_constant_is_feedback_corner_plus_noise_gain_over_gbw():
    tau = lc.elmore_tau(10e3, TIA_C_FEEDBACK, 1.0, OPA2320)
    assert tau == pytest.approx(47e-9 + 1.0 / (2 * math.pi * 20e6))
    assert lc.elmore_tau(10e3, TIA_C_FEEDBACK, 5.0, OPA2320) > tau     # cells on the column slow it


def test_stage_poles_give_the_elmore_delay_and_the_opamp_stages_rates():
    """y'' + a1 y' + a0 y = a0 u: its delay a1 / a0 is the Elmore tau, its poles those of
    opamp.py's two-state stage (fastest_rate)."""
    g_cells = np.array([0.0, 300e-6])
    a0, a1 = lc.stage_poles(10e3, TIA_C_FEEDBACK, 1.0 + 10e3 * g_cells, OPA2320)
    np.testing.assert_allclose(a1 / a0, lc.elmore_tau(10e3, TIA_C_FEEDBACK, 1.0 + 10e3 * g_cells, OPA2320),
                               rtol=1e-3)
    for k, g in enumerate(g_cells):
        fastest = transimpedance_amplifier(10e3, TIA_C_FEEDBACK, g, OPA2320).fastest_rate()
        assert np.max(np.abs(np.roots([1.0, a1[k], a0[k]]))) == pytest.approx(fastest, rel=1e-5)


def _opamp_step_response(times: np.ndarray, g_cells: float) -> np.ndarray:
    """Output (V) of opamp.py's TIA (offset-free, no slew limit: a linear stage) at ``times`` (s)
    for a column current that asks 1 V, from rest: RK4 at 0.2 ns."""
    op = OpAmpParams(v_offset=0.0, i_bias=0.0, slew_rate=1e11)
    tia = transimpedance_amplifier(10e3, TIA_C_FEEDBACK, g_cells, op)
    dt = 0.2e-9
    y = np.zeros(2)
    out, t = [], 0.0
    for target in times:
        while t < target - dt / 2:
            y = rk4_step(lambda _t, s: tia.derivative(s, i_in=-1e-4), t, y, dt)
            t += dt
        out.append(y[0])
    return np.array(out)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_stage_is_the_exact_two_pole_response_at_any_substep(k):
    """A target step held over 200 ns cut into k sub-steps: the stage's end values are
    opamp.py's TIA at those times, and its sub-step means integrate to the same charge."""
    g_cells, span = 150e-6, 200e-9
    h = span / k
    a0, a1 = lc.stage_poles(10e3, TIA_C_FEEDBACK, 1.0 + 10e3 * g_cells, OPA2320)
    stage = lc._Stage(1, 1, lc.stage_step(a0, a1, h, None))
    target = np.ones((1, 1), dtype=np.float32)
    ends, means = [], []
    for _ in range(k):
        means.append(float(stage.advance(target, settle=False)[0, 0]))
        ends.append(float(stage.y[0, 0]))
    fine = np.linspace(0.0, span, 1001)
    reference = _opamp_step_response(fine, g_cells)
    np.testing.assert_allclose(ends, np.interp(np.arange(1, k + 1) * h, fine, reference), atol=2e-5)
    charge = np.sum((reference[1:] + reference[:-1]) / 2) * (fine[1] - fine[0])
    assert np.mean(means) * span == pytest.approx(charge, rel=1e-4)


def test_stage_steps_are_slew_limited():
    a0, a1 = lc.stage_poles(10e3, TIA_C_FEEDBACK, 1.0, OPA2320)
    stage = lc._Stage(1, 1, lc.stage_step(a0, a1, 10e-9, 0.01))
    target = np.ones((1, 1), dtype=np.float32)
    ys = [0.0]
    for _ in range(20):
        stage.advance(target, settle=False)
        ys.append(float(stage.y[0, 0]))
    steps = np.diff(ys)
    assert np.all(steps <= 0.01 * (1 + 1e-6))
    np.testing.assert_allclose(steps[1:10], 0.01, rtol=1e-5)         # a 1 V step asks ~70 V/us: it slews


@pytest.mark.parametrize(("pre0", "pre1"), [(-0.3, 0.2), (-1.0, 0.2), (0.3, -0.2), (0.2, 0.8)],
                         ids=["release", "release-from-deep", "into-zero", "into-rail"])
def test_relu_stage_enters_and_leaves_its_clamps_as_the_opamp_stage_does(pre0, pre1):
    """A ReLU summing stage settled at pre-activation pre0, then stepped to pre1, 10 ns
    sub-steps, against opamp.py's summing stage (RK4, 0.2 ns): held on a clamp its node sits
    off virtual ground, so the output leaves 0 V only once the node is back (tens of ns,
    longer from deeper below); a stage that took the clamp as its target would leave at once
    (~0.1 V off here)."""
    op = OpAmpParams(v_offset=0.0, i_bias=0.0)
    stage = summing_amplifier((10e3, 10e3), 10e3, SUMMING_C_FEEDBACK, "relu", 0.5, op)
    h, n_sub, dt = 10e-9, 30, 0.2e-9
    state = stage.dc_state(np.array([-pre0, 0.0]))
    reference = []
    for i in range(n_sub):
        for j in range(round(h / dt)):
            state = stage.confine(rk4_step(lambda _t, y: stage.derivative(y, np.array([-pre1, 0.0])),
                                           (i * h + j * dt), state, dt))
        reference.append(state[0])
    a0, a1 = lc.stage_poles(10e3, SUMMING_C_FEEDBACK, 3.0, op)
    ours = lc._Stage(1, 1, lc.stage_step(a0, a1, h, op.slew_rate * h, 0.0, 0.5,
                                         lc.held_node_rate(10e3, SUMMING_C_FEEDBACK, 3.0, op)))
    ours.advance(np.full((1, 1), pre0, dtype=np.float32), settle=True)
    ys = []
    for _ in range(n_sub):
        ours.advance(np.full((1, 1), pre1, dtype=np.float32), settle=False)
        ys.append(float(ours.y[0, 0]))
    np.testing.assert_allclose(ys, reference, atol=2.5e-3)


def test_settled_stage_takes_its_target_and_passes_the_exact_mean():
    """h = 1 us: the summing stage is at its target by the sub-step's end, and its mean over
    the sub-step is the exact one of the step response (the charge the integrator needs)."""
    a0, a1 = lc.stage_poles(lc.SUMMING_R, SUMMING_C_FEEDBACK, 3.0, OPA2320)
    step = lc.stage_step(a0, a1, 1e-6, None)
    assert step.transition is None and step.mean is not None
    stage = lc._Stage(1, 1, step)
    mean = float(stage.advance(np.ones((1, 1), dtype=np.float32), settle=False)[0, 0])
    assert float(stage.y[0, 0]) == 1.0
    assert mean == pytest.approx(1.0 - a1 / a0 / 1e-6, rel=1e-5)     # 1 - Elmore delay / h


def test_integrator_leak_and_drift_come_from_the_opamp():
    leak, drift = lc.integrator_constants(1e-3)
    assert leak == pytest.approx(3 / OPA2320.a0)
    assert drift == pytest.approx(3 * 40e-6 + 10e3 * 0.2e-12)


# -- the loop ------------------------------------------------------------------------------------
@pytest.fixture
def world() -> SimWorld:
    return SimWorld(seed=3, n_macros=3)


def circuit_decay(world: SimWorld, substeps: int = 1) -> None:
    world.loop.params = CircuitParams(read_noise_scale=0.0, model="circuit", substeps=substeps)
    layer = AnalogLayer(*pair_conductances(-np.eye(2)), r_feedback=R_F, activation="linear")
    world.loop.load_mapping(map_network(world, [layer]), v_bias=0.1)
    constant_streams(world.loop, a=0.0, b=1.0, c=0.0)


def test_circuit_decay_is_exponential_up_to_offsets_and_the_crossbar(world):
    """RC dx/dtau = -x through the parts: within 1 % plus the offsets' millivolt."""
    circuit_decay(world)
    x0 = np.array([[0.4, -0.3], [0.45, 0.02]])
    result = world.loop.run(x0, duration=3e-3, sde=False, rng=np.random.default_rng(0), sample_rate=1e4)
    t = np.arange(result.traces.shape[2]) * result.trace_dt
    expected = x0[:, :, None] * np.exp(-t / 1e-3)
    assert np.all(np.abs(result.traces[:, :2, :] - expected) <= 0.01 * np.abs(expected) + 1e-3)


def test_circuit_end_values_are_adc_codes(world):
    circuit_decay(world)
    end = world.loop.run(np.full((3, 2), 0.3), duration=1e-4, sde=False, rng=np.random.default_rng(0)).end
    codes = (end - lc.ADS8688.v_low) / LSB
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-6)


def mlp_run(world: SimWorld, x0: np.ndarray, params: CircuitParams) -> np.ndarray:
    """End values of the 2->14->14->2 network in the loop for 1 ms, freshly programmed (so that
    relaxation between runs plays no part)."""
    weights, v_bias = mlp_weights(), 0.2
    world.loop.params = params
    world.loop.load_mapping(map_network(world, analog_mlp(weights, v_bias)), v_bias)
    constant_streams(world.loop, a=-0.5, b=1.0, c=0.0, emb=np.linspace(-0.1, 0.1, HIDDEN))
    return world.loop.run(x0, duration=1e-3, sde=False, rng=np.random.default_rng(0)).end


def test_circuit_network_in_the_loop_is_the_ideal_one_up_to_the_crossbar(world):
    """2->14->14->2 network, noise off: within 5 % of the rail of the numpy solution (IR
    drop, the device nonlinearity alone +2-3 % of a column current at 0.4 V, offsets), and
    really different from the ideal loop."""
    weights, v_rail = mlp_weights(), 0.5
    x0 = np.random.default_rng(4).uniform(-0.4, 0.4, (300, 2))
    ends = {model: mlp_run(world, x0, CircuitParams(read_noise_scale=0.0, v_rail=v_rail, model=model))
            for model in ("ideal", "circuit")}
    x = x0.copy()
    for _ in range(1000):
        x = x + 1e-3 * (-0.5 * x + numpy_forward(weights, x, np.linspace(-0.1, 0.1, HIDDEN), v_rail))
    assert np.max(np.abs(ends["circuit"] - x)) < 0.05 * v_rail
    assert np.max(np.abs(ends["circuit"] - ends["ideal"])) > 3 * LSB


def test_deterministic_end_values_do_not_depend_on_the_substep(world):
    """Noise off: 1, 2 and 4 sub-steps per board interval agree to a few ADC codes."""
    x0 = np.random.default_rng(4).uniform(-0.4, 0.4, (300, 2))
    ends = [mlp_run(world, x0, CircuitParams(read_noise_scale=0.0, model="circuit", substeps=k)) for k in (1, 2, 4)]
    assert np.max(np.abs(ends[1] - ends[0])) <= 4 * LSB
    assert np.max(np.abs(ends[2] - ends[1])) <= 4 * LSB


def test_white_read_noise_keeps_its_effect_when_the_substep_halves(world):
    """Read noise with a fixed PSD: the spread it leaves on the end values is the same with
    1 and 2 sub-steps (within the sampling error of 3000 trajectories)."""
    circuit_decay(world)
    constant_streams(world.loop, a=0.0, b=1.0, c=0.0)
    x0 = np.full((3000, 2), 0.4)
    spreads = []
    for k in (1, 2):
        world.loop.params = CircuitParams(read_noise_scale=30.0, model="circuit", substeps=k)
        spreads.append(world.loop.run(x0, duration=1e-3, sde=False, rng=np.random.default_rng(k)).end.std(axis=0))
    assert np.all(spreads[0] > 5 * LSB)
    np.testing.assert_allclose(spreads[1], spreads[0], rtol=0.08)


def test_model_and_substeps_are_saved_with_the_world(world, tmp_path):
    circuit_decay(world, substeps=3)
    world.save(tmp_path / "w.npz")
    restored = SimWorld.load(tmp_path / "w.npz")
    assert restored.loop.params == world.loop.params
    assert restored.loop.params.model == "circuit" and restored.loop.params.substeps == 3


def test_bad_model_or_substeps_are_refused():
    with pytest.raises(ValueError, match="model"):
        CircuitParams(model="spice")
    with pytest.raises(ValueError, match="substeps"):
        CircuitParams(substeps=0)
    assert replace(CircuitParams(), model="ideal").model == "ideal"


def test_the_loop_sees_each_cell_as_verify_measured_it_through_its_transistor():
    """The world's G is what write-verify read through the access transistor: with ideal wires
    a cell read at the verify bias (0.1 V) carries G x 0.1 V, not the 5 % less that r_on in
    series with a device of conductance G would let through."""
    from instruments.sim.crossbar import CrossbarParams
    from instruments.sim.device_params import DeviceParams

    g_pos = np.array([[100e-6, 20e-6], [5e-6, 140e-6]])
    g_neg = np.full_like(g_pos, 2e-6)
    layer = lc.build_layer(g_pos, g_neg, n_bias=0, v_bias=0.0, r_feedback=10e3, relu=False, v_max=0.5, v_rail=0.5,
                           h=1e-6, row0=0, col0=0, macro_rows=2, crossbar=CrossbarParams(r_row=0.0, r_col=0.0),
                           device=DeviceParams())
    for row in range(2):
        v = np.zeros((2, 1), dtype=np.float32)
        v[row] = 0.1
        v_tia = layer.crossbar.column_currents_t(v)[:, 0].astype(float)
        offset = lc.OPA2320.v_offset * (1 + 10e3 * g_pos.sum(axis=0))
        np.testing.assert_allclose(v_tia - offset, -10e3 * 0.1 * (g_pos[row] - g_neg[row]), rtol=1e-3)
