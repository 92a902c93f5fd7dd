"""Our op-amp stage equations against ngspice on one mapped layer (docs/circuit-opamps.md).

The circuit: 3 input rows + 1 bias row x 2 differential outputs (1-100 uS cells, 1 ohm
per wire segment in ngspice only), current mirrors, TIAs, a relu and a linear summing
stage, and an integrator fed by output 0 and by a DAC (RC 1 us from the network, 100 ns
from the DAC). Four stimuli: a step, sines, a ramp through the relu threshold and both
clamps, and DAC pulses that slew the integrator into its rail and back. Agreement: the
RMS difference of every compared node within 1 % of its full scale.
"""

from __future__ import annotations

import numpy as np
import pytest

from instruments.sim.analog_network import AnalogLayer
from instruments.sim.opamp import OPA2320
from instruments.sim.spice import (
    SUBCKT_NAME,
    LayerBench,
    Stimulus,
    simulate_spice,
    simulate_stages,
    spice_netlist,
)

T_STOP = 5e-6
T_MAX = 2e-9                    # ngspice's largest step: the Python step (2 ns) or finer
#: Full scale per node, V: the activation range for TIA and summing outputs (what the next
#: stage accepts), the integrator rail (the board's DAC range) for the integrator.
FULL_SCALE = {"tia0": 0.5, "tia1": 0.5, "sum0": 0.5, "sum1": 0.5, "int": 2.5}
SCENARIOS = ("step", "sine", "ramp", "slew_rail")

G_POS = np.array([[60e-6, 10e-6], [20e-6, 80e-6], [50e-6, 5e-6], [30e-6, 40e-6]])
G_NEG = np.array([[10e-6, 50e-6], [40e-6, 15e-6], [5e-6, 30e-6], [10e-6, 60e-6]])
BENCH = LayerBench(AnalogLayer(G_POS, G_NEG, n_bias=1, r_feedback=10e3), activations=("relu", "linear"),
                   r_int_dac=1e3)


def _stimuli() -> Stimulus:
    t = np.linspace(0.0, T_STOP, 501)                # 10 ns samples, linear in between

    def edge(t0: float, width: float = 10e-9) -> np.ndarray:   # 0 -> 1 from t0 over width s
        return np.clip((t - t0) / width, 0.0, 1.0)

    n = len(SCENARIOS)
    rows, dac_sum, dac_int = np.zeros((3, n, t.size)), np.zeros((2, n, t.size)), np.zeros((n, t.size))
    rows[:, 0] = np.array([0.3, -0.2, 0.25])[:, None] * edge(0.5e-6)
    dac_sum[:, 0] = np.array([-0.05, 0.02])[:, None] * edge(2.5e-6)
    dac_int[0] = -0.02
    rows[:, 1] = 0.3 * np.sin(2 * np.pi * 500e3 * t + np.array([0.0, 2.1, 4.2])[:, None])
    dac_int[1] = -0.007
    # pre-activations 0.87 s + 0.02 V and -0.875 s - 0.02 V for s from -0.6 to 0.6 V
    rows[:, 2] = np.array([1.0, -0.5, 0.6])[:, None] * np.linspace(-0.6, 0.6, t.size)
    rows[:, 3] = np.array([0.4, -0.3, 0.3])[:, None] * edge(0.2e-6)
    dac_int[3] = 2.0 * (edge(1.0e-6) - edge(1.3e-6)) - 2.0 * (edge(3.0e-6) - edge(3.2e-6))
    return Stimulus(t, rows, dac_sum, dac_int)


STIMULI = _stimuli()


@pytest.fixture(scope="module")
def python_traces() -> tuple[np.ndarray, dict]:
    return simulate_stages(BENCH, STIMULI, T_STOP)


@pytest.fixture(scope="module")
def spice_traces(ngspice) -> list[tuple[np.ndarray, dict]]:
    return [simulate_spice(BENCH, STIMULI.one(k), T_STOP, T_MAX) for k in range(len(SCENARIOS))]


@pytest.mark.parametrize("k", range(len(SCENARIOS)), ids=SCENARIOS)
def test_spice_and_stage_equations_agree_within_1_percent_of_full_scale(k, spice_traces, python_traces):
    t, ours = python_traces
    t_spice, theirs = spice_traces[k]
    for probe, full_scale in FULL_SCALE.items():
        diff = ours[probe][:, k] - np.interp(t, t_spice, theirs[probe])
        rms = np.sqrt(np.mean(diff**2))
        assert rms < 0.01 * full_scale, f"{probe}: RMS {rms:.3g} V"


def test_spice_ramp_crosses_the_relu_threshold_and_both_clamps(spice_traces):
    _, theirs = spice_traces[SCENARIOS.index("ramp")]
    relu, linear = theirs["sum0"], theirs["sum1"]
    assert abs(relu[0]) < 1e-3 and relu[-1] == pytest.approx(0.5, abs=1e-3)
    assert np.mean(relu < 1e-3) > 0.3                    # sat at 0 V a third of the run
    assert linear[0] == pytest.approx(0.5, abs=1e-3) and linear[-1] == pytest.approx(-0.5, abs=1e-3)


def test_spice_integrator_slews_at_the_slew_rate_into_its_rail(spice_traces, python_traces):
    k = SCENARIOS.index("slew_rail")
    t_spice, theirs = spice_traces[k]
    t, ours = python_traces
    for time, v in ((t_spice, theirs["int"]), (t, ours["int"][:, k])):
        fast = (time > 1.05e-6) & (time < 1.2e-6)          # 2 V / 1 kohm / 100 pF asks 20 V/us
        assert np.polyfit(time[fast], v[fast], 1)[0] == pytest.approx(-OPA2320.slew_rate, rel=0.02)
        assert v.min() == pytest.approx(OPA2320.v_out_low, abs=1e-3)


def test_spice_netlist_builds_every_stage_from_the_one_opamp_model():
    netlist = spice_netlist(BENCH, STIMULI.one(0))
    lines = netlist.splitlines()
    assert sum(line.startswith(".subckt") for line in lines) == 1
    instances = [line for line in lines if line.startswith("X")]
    assert len(instances) == 5 and all(f" {SUBCKT_NAME} " in line for line in instances)   # 2 TIA, 2 sum, 1 int
    assert sum(line.startswith("Rcell") for line in lines) == G_POS.size * 2
    assert sum(line.startswith(("Rrw", "Rcw")) for line in lines) == 2 * G_POS.size * 2
    with pytest.raises(ValueError):
        spice_netlist(BENCH, STIMULI)                     # four stimuli: one netlist each
