"""The op-amp macro-model and its stages against closed-form circuit results."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from instruments.sim.opamp import (
    OPA2320,
    STEP_FRACTION,
    InvertingStage,
    OpAmpParams,
    miller_integrator,
    rk4_step,
    summing_amplifier,
    transimpedance_amplifier,
)

#: Ideal in all but what a test looks at: no offset, no bias current, no input capacitance.
CLEAN = OpAmpParams(v_offset=0.0, i_bias=0.0, c_in=0.0)


def run(stage: InvertingStage, state: np.ndarray, t_stop: float, v_in: Callable[[float], tuple] | None = None,
        i_in: float | None = None, steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """RK4 in ``steps`` equal steps (default: STEP_FRACTION of the fastest time constant)
    from ``state`` to t_stop (s); returns the time axis and the output trace (V)."""
    n = math.ceil(t_stop * stage.fastest_rate() / STEP_FRACTION) if steps is None else steps
    dt = t_stop / n
    out = [state[0].copy()]
    for k in range(n):
        state = stage.confine(rk4_step(lambda t, y: stage.derivative(y, v_in and v_in(t), i_in), k * dt, state, dt))
        out.append(state[0].copy())
    return np.arange(n + 1) * dt, np.array(out)


def test_defaults_are_the_opa2320_typical_datasheet_values():
    assert OPA2320.a0 == pytest.approx(3.98e6, rel=1e-3)             # 132 dB
    assert (OPA2320.gbw, OPA2320.slew_rate) == (20e6, 10e6)          # 20 MHz, 10 V/us
    assert (OPA2320.v_offset, OPA2320.i_bias) == (40e-6, 0.2e-12)    # 40 uV, 0.2 pA
    assert (OPA2320.v_out_low, OPA2320.v_out_high, OPA2320.c_in) == (-2.49, 2.49, 9e-12)
    assert OPA2320.omega_p == pytest.approx(2 * math.pi * 20e6 / 3.98e6, rel=1e-3)


def test_finite_gain_makes_the_integrator_lossy_with_its_pole_near_1_over_a0_rc():
    op = OpAmpParams(a0=100.0, gbw=100e3, slew_rate=1e9, v_offset=0.0, i_bias=0.0, c_in=0.0)
    r, c, u = 10e3, 1e-9, -0.01                    # RC = 10 us, input -10 mV
    stage = miller_integrator((r,), c, op)
    t, v = run(stage, stage.held_state(0.0), 1.5e-3, lambda t: (u,))
    # closed form: H(s) = -A0 / ((1 + s/w_p)(1 + s RC) + A0 s RC), a step from rest
    rc, w_p = r * c, op.omega_p
    p1, p2 = np.roots([rc / w_p, rc + 1 / w_p + op.a0 * rc, 1.0])
    exact = -op.a0 * u * (1 + (p2 * np.exp(p1 * t) - p1 * np.exp(p2 * t)) / (p1 - p2))
    full_scale = op.a0 * abs(u)                    # the DC gain A0 takes -10 mV to 1 V
    assert np.max(np.abs(v - exact)) < 1e-3 * full_scale
    slow = min(abs(p1), abs(p2))
    assert slow == pytest.approx(1 / ((1 + op.a0) * rc + 1 / w_p), rel=0.01)
    assert slow * op.a0 * rc == pytest.approx(1.0, rel=0.2)   # -> 1 / (A0 RC) as omega_t RC grows
    # an ideal integrator would have reached 1.5 ms * 1 kV/s = 1.5 V; the lossy one stays below A0 |u|
    assert v[-1] < full_scale


def test_gain_bandwidth_sets_the_closed_loop_time_constant():
    stage = InvertingStage(CLEAN, g_in=(1e-4,), g_feedback=1e-4)   # gain -1: feedback factor 1/2
    tau = 1 / (CLEAN.omega_p + CLEAN.omega_t / 2)                  # 15.9 ns
    assert stage.fastest_rate() == pytest.approx(1 / tau)
    t, v = run(stage, stage.dc_state((0.0,)), 10 * tau, lambda t: (0.01,), steps=400)
    v_end = -0.01 / (1 + 2 / CLEAN.a0)
    assert np.max(np.abs(v - v_end * (1 - np.exp(-t / tau)))) < 1e-3 * 0.01


def test_a_large_step_ramps_at_the_slew_rate():
    stage = InvertingStage(CLEAN, g_in=(1e-4,), g_feedback=1e-4)
    t, v = run(stage, stage.dc_state((0.0,)), 400e-9, lambda t: (2.0,), steps=800)
    t20, t80 = np.interp([0.4, 1.6], -v, t)        # v falls monotonically to -2 V
    assert 1.2 / (t80 - t20) == pytest.approx(CLEAN.slew_rate, rel=0.01)
    assert v[-1] == pytest.approx(-2.0, rel=1e-3)


def test_offset_and_bias_current_shift_the_output_by_noise_gain_and_feedback_resistor():
    op = OpAmpParams(v_offset=1e-3, i_bias=10e-9)
    stage = InvertingStage(op, g_in=(1e-4,), g_feedback=1e-5)      # 10 kohm in, 100 kohm feedback
    expected = (op.v_offset * 11 + op.i_bias * 100e3) / (1 + 11 / op.a0)   # 11 mV + 1 mV
    assert stage.dc_state((0.0,))[0] == pytest.approx(expected, rel=1e-9)
    _, v = run(stage, stage.held_state(0.0), 5e-6, lambda t: (0.0,))
    assert v[-1] == pytest.approx(expected, rel=1e-4)


def test_integrator_drifts_at_offset_over_rc_plus_bias_over_c():
    op = OpAmpParams(gbw=1e6, v_offset=1e-3, i_bias=1e-9, c_in=0.0)
    r, c = 10e3, 1e-9
    stage = miller_integrator((r,), c, op)
    t, v = run(stage, stage.held_state(0.0), 50e-6, lambda t: (0.0,))
    late = t > 10e-6
    slope = np.polyfit(t[late], v[late], 1)[0]
    # 101 V/s, less the node's departure slope / omega_t from the offset (1.6 % at 1 MHz GBW)
    expected = (op.v_offset / (r * c) + op.i_bias / c) / (1 + 1 / (op.omega_t * r * c))
    assert slope == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("activation, low", [("relu", 0.0), ("linear", -0.5)])
def test_summing_amplifier_settles_to_the_clamped_inverted_sum(activation, low):
    stage = summing_amplifier(activation=activation, v_rail=0.5)
    v_tia = np.linspace(-1.0, 1.0, 41)
    dac = np.full_like(v_tia, -0.1)                 # adds +0.1 V
    out = stage.dc_state((v_tia, dac), shape=v_tia.shape)[0]
    np.testing.assert_allclose(out, np.clip(-v_tia + 0.1, low, 0.5), atol=3 * OPA2320.v_offset + 1e-6)


def test_relu_holds_its_clamp_and_leaves_it_as_soon_as_the_drive_turns():
    stage = summing_amplifier(activation="relu", v_rail=0.5)
    ramp = lambda t: (1.0 - 2e6 * t, 0.0)           # noqa: E731 - pre-activation -1 V -> +1 V over 1 us
    t, v = run(stage, stage.dc_state((1.0, 0.0)), 1e-6, ramp)
    assert np.all((v >= 0.0) & (v <= 0.5))
    assert v[np.searchsorted(t, 0.45e-6)] == 0.0 and v[-1] == 0.5
    # the ideal output crosses 0.25 V at 0.625 us; the stage lags by its recovery from the
    # clamp (the node returns to virtual ground, ~C_t / G = 37 ns) and its ramp lag, not by
    # the 0.25 us a wound-up op-amp would need to slew back from its rail
    lag = np.interp(0.25, v, t) - 0.625e-6
    assert 0 < lag < 80e-9


def test_tia_feedback_capacitor_damps_the_input_capacitance_pole():
    def overshoot(c_feedback: float) -> float:
        stage = transimpedance_amplifier(10e3, c_feedback)
        _, v = run(stage, stage.dc_state(i_in=0.0), 2e-6, i_in=20e-6)
        return (-v.min() - 0.2) / 0.2               # settles at -R_f i = -0.2 V
    assert overshoot(4.7e-12) < 0.02
    assert overshoot(0.0) > 0.1                     # 9 pF input capacitance alone rings


def test_tia_settles_to_minus_rf_times_the_column_current():
    stage = transimpedance_amplifier(10e3, g_source=np.array([0.0, 4e-4]))
    out = stage.dc_state(i_in=np.array([30e-6, 30e-6]), shape=(2,))[0]
    np.testing.assert_allclose(out, -0.3, atol=2.5e-4)   # offset x noise gain (1 or 5): <= 0.2 mV


def test_halving_the_step_changes_outputs_by_less_than_0p1_percent_of_full_scale():
    # integrator (RC 100 ns on its DAC input) slewing to the rail and back, and a relu
    # summing stage crossing both clamps
    integrator = miller_integrator((10e3, 1e3), 100e-12)
    # a DAC pulse with 20 ns edges: an ideal jump between two grid points would make the
    # comparison measure where the jump falls, not the stage
    edges_t, edges_v = [0.0, 0.1e-6, 0.12e-6, 0.5e-6, 0.52e-6], [-1.0, -1.0, 2.0, 2.0, -1.0]
    pulse = lambda t: (0.2, np.interp(t, edges_t, edges_v))   # noqa: E731
    relu = summing_amplifier()
    ramp = lambda t: (0.8 - 1.2e6 * t, 0.0)         # noqa: E731
    for stage, inputs, state0, full_scale in ((integrator, pulse, integrator.held_state(0.0), 2.5),
                                              (relu, ramp, relu.dc_state((0.8, 0.0)), 0.5)):
        steps = math.ceil(1.5e-6 * stage.fastest_rate() / STEP_FRACTION)
        _, coarse = run(stage, state0, 1.5e-6, inputs, steps=steps)
        _, fine = run(stage, state0, 1.5e-6, inputs, steps=2 * steps)
        assert np.max(np.abs(coarse - fine[::2])) < 1e-3 * full_scale
        assert np.ptp(coarse) > 0.4 * full_scale    # it did go somewhere


@pytest.mark.parametrize("make", [
    lambda: OpAmpParams(gbw=0.0),
    lambda: OpAmpParams(a0=float("nan")),
    lambda: OpAmpParams(v_out_low=1.0, v_out_high=0.5),
    lambda: OpAmpParams(v_offset=0.5),
    lambda: summing_amplifier(v_rail=3.0),          # beyond the +-2.49 V rails
    lambda: summing_amplifier(activation="tanh"),
    lambda: miller_integrator(c=0.0),
    lambda: transimpedance_amplifier(r_feedback=-1.0),
    lambda: InvertingStage(OPA2320),                # a node with no conductance at all
    lambda: InvertingStage(OPA2320, g_in=(-1e-4,), g_feedback=1e-4),
    lambda: miller_integrator().held_state(3.0),
])
def test_out_of_range_parameters_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_the_integrators_bandwidth_slows_it_by_n_in_over_omega_t_rc():
    """A Miller integrator on a single-pole op-amp integrates slower by 1 / (1 + n_in / (omega_t RC)):
    2.3 % at RC = 1 us, 19 % at 100 ns, nothing to speak of at the board's 1 ms."""
    from instruments.sim.loop_circuit import integrator_gain

    assert integrator_gain(1e-6) == pytest.approx(1 / 1.0239, rel=1e-3)
    assert 1 - integrator_gain(1e-7) == pytest.approx(0.193, abs=0.002)
    assert 1 - integrator_gain(1e-3) < 3e-5
