"""The closed loop's REDUCED stage model (instruments/sim/loop_circuit.py) against ngspice.

What the simulator runs is not ``opamp.py``'s stage equations integrated at a 2 ns step
(checked in ``test_spice_opamp_stages.py``) but their reduction per sub-step: each
amplifier's two-pole response to a target held over the sub-step, advanced by its exact
transition, slew limited, held on its clamps and passed on as its sub-step mean; and the
Miller integrator as a lossy, drifting Euler step (``docs/circuit-model.md``,
"Circuit-level loop"). Here the
loop's own functions (``build_layer``, ``layer_stages``, ``layer_substep``,
``integrator_substep``) compute one mapped layer, open loop: the same crossbar as the
op-amp check (3 input rows + 1 bias row x 2 outputs, 1 ohm per wire segment in both
simulators: the loop's ``FastCrossbar`` has the same wire topology; r_on = 0 and a linear
device, as the netlist's cells are plain resistors), its TIAs, output 0 through a ReLU
layer's summing stage and output 1 through a linear layer's, and one integrator
(RC = 1 us; three 10 kohm inputs as in the loop: the ReLU output at b = -1, its own
output at a = -0.5 through an ideal gain stage, the noise input at 0 V).

Sub-step: 10 ns, the one the simulator chooses for RC = 1 us at max(|a|, |b|) = 1
(``CIRCUIT_GAIN_STEP``: 100 sub-steps per 1 us board interval). Inputs are held over
each sub-step at their value at its midpoint (the staircase: the DAC model's sub-step
means, ``dac_substeps``); ngspice gets the same samples as piecewise-linear sources.
Compared: every stage's output and the integrator at the end of each sub-step. Agreement:
the RMS difference of every node within 1 % of its full scale.
"""

from __future__ import annotations

import numpy as np
import pytest

from instruments.sim import loop_circuit as lc
from instruments.sim.analog_network import COMPUTE_DTYPE, AnalogLayer
from instruments.sim.circuit import CIRCUIT_GAIN_STEP
from instruments.sim.crossbar import CrossbarParams
from instruments.sim.device_params import DeviceParams
from instruments.sim.opamp import OPA2320
from instruments.sim.spice import LayerBench, Stimulus, run_ngspice, spice_netlist
from tests.instruments.sim.test_spice_opamp_stages import FULL_SCALE, G_NEG, G_POS, T_STOP

T_MAX = 2e-9                                  # ngspice's largest step
RC = 1e-6
A_GAIN, B_GAIN = -0.5, -1.0                   # RC dx/dt = a x + b y (+ leak, drift)
H = CIRCUIT_GAIN_STEP * RC / max(abs(A_GAIN), abs(B_GAIN))
N_SUB = round(T_STOP / H)
INTERVAL = 1e-6                               # the board's DAC update interval
SCENARIOS = ("step", "sine", "ramp", "staircase")
#: The netlist's cells are linear resistors: the device's sinh pushed out of reach
#: (nl_v0 = 1 MV: S(V) = 1 within 1e-12 over the rows' range).
LINEAR_DEVICE = DeviceParams(nl_v0=1e6)
BENCH = LayerBench(AnalogLayer(G_POS, G_NEG, n_bias=1, r_feedback=10e3), activations=("relu", "linear"),
                   r_int=lc.INTEGRATOR_R, r_int_dac=lc.INTEGRATOR_R, c_int=RC / lc.INTEGRATOR_R)
#: The integrator's third input, its own output times a (the loop's a x term), appended to
#: the bench's netlist: an ideal inverting gain stage into one more 10 kohm resistor on the
#: integrator's node ``in`` (output ``io``).
FEEDBACK_INPUT = f"Eax ax 0 io 0 {-A_GAIN:.12g}\nRax ax in {lc.INTEGRATOR_R:.12g}\n"


def _stimuli() -> Stimulus:
    """Samples at t = 0, every sub-step's midpoint and T_STOP (what both simulators see)."""
    t = np.concatenate([[0.0], (np.arange(N_SUB) + 0.5) * H, [T_STOP]])

    def edge(t0: float, width: float = 10e-9) -> np.ndarray:   # 0 -> 1 from t0 over width s
        return np.clip((t - t0) / width, 0.0, 1.0)

    n = len(SCENARIOS)
    rows, dac_sum, dac_int = np.zeros((3, n, t.size)), np.zeros((2, n, t.size)), np.zeros((n, t.size))
    rows[:, 0] = np.array([0.3, -0.2, 0.25])[:, None] * edge(0.5e-6)
    dac_sum[0, 0] = -0.05 * edge(2.5e-6)      # output 1 is a linear layer's: no DAC input in the loop
    rows[:, 1] = 0.3 * np.sin(2 * np.pi * 500e3 * t + np.array([0.0, 2.1, 4.2])[:, None])
    # pre-activations 0.87 s + 0.02 V and -0.875 s - 0.02 V for s from -0.6 to 0.6 V
    rows[:, 2] = np.array([1.0, -0.5, 0.6])[:, None] * np.interp(t, [0.0, T_STOP], [-0.6, 0.6])
    # DAC staircase: a new code every 1 us, settling as the AD5542A model does (sub-step means)
    k = round(INTERVAL / H)
    values = np.array([[0.0, 0.3, -0.2, 0.45, 0.1], [0.1, -0.25, 0.3, -0.1, 0.2], [0.0, 0.2, 0.35, -0.3, 0.05],
                       [0.0, -0.08, 0.1, 0.15, -0.05]]).T
    wave = lc.dac_substeps(values, k, INTERVAL, lc.AD5542A)                 # (N_SUB, 4)
    wave = np.concatenate([wave[:1], wave, wave[-1:]])
    rows[:, 3], dac_sum[0, 3] = wave[:, :3].T, wave[:, 3]
    return Stimulus(t, rows, dac_sum, dac_int)


STIMULI = _stimuli()


def loop_traces() -> tuple[np.ndarray, dict]:
    """The loop's stage functions over the four stimuli side by side: time (T,) s, {probe: (T, N) V}."""
    layers = [lc.build_layer(G_POS, G_NEG, n_bias=1, v_bias=BENCH.v_bias, r_feedback=BENCH.layer.r_feedback,
                             relu=relu, v_max=OPA2320.v_out_high, v_rail=BENCH.v_rail, h=H, row0=0, col0=0,
                             macro_rows=G_POS.shape[0],
                             crossbar=CrossbarParams(r_row=BENCH.r_wire, r_col=BENCH.r_wire, r_on=0.0),
                             device=LINEAR_DEVICE) for relu in (True, False)]
    leak, drift = lc.integrator_constants(RC, OPA2320)
    settings = lc.CircuitSettings(h=H / RC, k=round(INTERVAL / H), every=1, leak=leak, drift=drift,
                                  x_rail=min(OPA2320.v_out_high, -OPA2320.v_out_low), slew=OPA2320.slew_rate * H,
                                  trigger_level=0.0, chunk=STIMULI.n, gain=lc.integrator_gain(RC, OPA2320))
    n = STIMULI.n
    rows, dac_sum, _ = STIMULI.at(STIMULI.t[1:-1])                        # held over each sub-step
    rows = rows.astype(COMPUTE_DTYPE)
    hidden = (-dac_sum).astype(COMPUTE_DTYPE)      # the loop's summing target adds +hidden; the netlist's DAC inverts
    stages = [lc.layer_stages(layer, n) for layer in layers]
    work = [np.empty((layer.n_out, n), dtype=COMPUTE_DTYPE) for layer in layers]
    x, dx = np.zeros((1, n)), np.empty((1, n))
    traces = {name: np.empty((N_SUB, n)) for name in FULL_SCALE}
    for i in range(N_SUB):
        relu_out = lc.layer_substep(layers[0], rows[i], stages[0], hidden[i], i == 0, work[0])
        lc.layer_substep(layers[1], rows[i], stages[1], None, i == 0, work[1])
        lc.integrator_substep(x, relu_out[:1], A_GAIN, B_GAIN, settings, dx)
        traces["tia0"][i], traces["tia1"][i] = stages[0][0].y[0], stages[1][0].y[1]
        traces["sum0"][i], traces["sum1"][i] = stages[0][1].y[0], stages[1][1].y[1]
        traces["int"][i] = x[0]
    return (np.arange(N_SUB) + 1) * H, traces


def spice_run(k: int) -> tuple[np.ndarray, dict]:
    probes = BENCH.probes()
    netlist = spice_netlist(BENCH, STIMULI.one(k)) + FEEDBACK_INPUT
    t, data = run_ngspice(netlist, list(probes.values()), T_STOP, T_MAX)
    return t, {name: data[:, j] for j, name in enumerate(probes)}


def differences(ours: tuple[np.ndarray, dict], theirs: tuple[np.ndarray, dict], k: int) -> dict[str, tuple]:
    """{probe: (RMS, largest) |loop - ngspice|, % of full scale} for stimulus k."""
    t, loop = ours
    t_spice, spice = theirs
    result = {}
    for probe, full_scale in FULL_SCALE.items():
        diff = loop[probe][:, k] - np.interp(t, t_spice, spice[probe])
        result[probe] = (100 * np.sqrt(np.mean(diff**2)) / full_scale, 100 * np.max(np.abs(diff)) / full_scale)
    return result


@pytest.fixture(scope="module")
def ours() -> tuple[np.ndarray, dict]:
    return loop_traces()


@pytest.fixture(scope="module")
def theirs(ngspice) -> list[tuple[np.ndarray, dict]]:
    return [spice_run(k) for k in range(len(SCENARIOS))]


CASES = [pytest.param(k, probe, id=f"{name}-{probe}") for k, name in enumerate(SCENARIOS) for probe in FULL_SCALE]


@pytest.mark.parametrize(("k", "probe"), CASES)
def test_spice_and_loop_stage_model_agree_within_1_percent_of_full_scale(k, probe, ours, theirs):
    rms, largest = differences(ours, theirs[k], k)[probe]
    assert rms < 1.0, f"{probe}: RMS {rms:.3g} % of full scale (largest {largest:.3g} %)"


def test_spice_loop_stimuli_cross_the_relu_threshold_and_move_the_integrator(ours, theirs):
    """The check is not trivial: in both simulators the ReLU output sits at 0 V and leaves it
    (ramp, staircase), the linear output reaches both clamps (ramp), the integrator swings."""
    _, loop = ours
    for k in (SCENARIOS.index("ramp"), SCENARIOS.index("staircase")):
        for relu in (loop["sum0"][:, k], theirs[k][1]["sum0"]):
            assert np.mean(relu < 1e-3) > 0.1 and relu.max() > 0.2
    for linear in (loop["sum1"][:, SCENARIOS.index("ramp")], theirs[SCENARIOS.index("ramp")][1]["sum1"]):
        assert linear.max() == pytest.approx(0.5, abs=1e-3) and linear.min() == pytest.approx(-0.5, abs=1e-3)
    assert np.all(np.ptp(loop["int"], axis=0) > 0.1)


def test_spice_loop_bench_runs_the_simulators_substep_with_stage_dynamics_that_act():
    """10 ns: 100 sub-steps per interval, as ``_run_circuit`` picks for RC = 1 us and |b| = 1; at
    that sub-step neither stage reaches its target within a sub-step (transitions given) and
    both can slew, so the check sees their dynamics."""
    assert round(INTERVAL / H) == 100
    layer = lc.build_layer(G_POS, G_NEG, n_bias=1, v_bias=0.1, r_feedback=10e3, relu=True, v_max=2.49,
                           v_rail=0.5, h=H, row0=0, col0=0, macro_rows=4, crossbar=CrossbarParams(r_on=0.0),
                           device=LINEAR_DEVICE)
    for step in (layer.tia_step, layer.sum_step):
        assert step.transition is not None and step.mean is not None and step.slew is not None
