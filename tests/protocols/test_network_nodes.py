"""network-nodes on the simulated bench: every node of the network on the scope, and its report (Figs. 3a, 3c).

The end-to-end check compares each recorded node with the network's software forward through the
conductances the run read back after the settle (``settled_conductance``: what the runs compute
with; the read-back right after programming is off by the first minute's relaxation, about
0.1 µS a cell, several mV at hidden layer 2), on the integrator voltages the scope recorded at
the same instants (both channels resampled alike by the scope). What separates them: the scope's input
noise (about 0.35 mV rms on each channel at these scales) on the monitor and, through the
layer's gain, on the integrators; the circuit loop's static errors (crossbar wire resistance
and I-V nonlinearity, within 1 % of the 0.5 V rail, ``tests/instruments/sim/test_loop_monitor.py``);
its lag of about a board step (signals change by well under 1 mV per us in a 1.5 ms sampling);
read noise, on in this run. Measured: 0.4-0.6 mV rms at hidden layer 1, up to 1 mV at hidden
layer 2, up to 1.7 mV at the output nodes. Bound: RMS over every sample and time under 5 mV for
each node, and the selected node fits at least 3 times better than any other node of its layer
that moves.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis import diffusion_data as ldd
from analysis import open_run
from analysis.report import report_run
from analysis.schema import SCOPE
from instruments.bench import Bench
from instruments.sim.analog_network import AnalogLayer, network_forward
from protocols.diffusion.loop_streams import loop_streams
from protocols.diffusion.network_nodes import NetworkNodes
from protocols.diffusion.placement import recorded_placement
from protocols.engine.runner import RunEngine, RunState
from tests.analysis.figure_checks import artists, has_unit

SAMPLES = 3
RMS_BOUND = 5e-3   # V, see the module docstring


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("nodes") / "nodes.h5"
    proto = NetworkNodes.from_values({"samples": SAMPLES})
    with Bench.from_config(seed=5) as bench:
        engine = RunEngine(proto, bench, path, seed=7)
        assert engine.run() == RunState.COMPLETED, engine.error
        rc, dt_step = bench.macro_controller.loop_rc, bench.macro_controller.loop_dt_step
    return path, proto, rc, dt_step


@pytest.mark.slow
def test_every_node_is_recorded_with_its_layer_and_node_and_the_runs_repeat_one_sampling(run_path):
    path, proto, _, _ = run_path
    run = open_run(path)
    layer, node, sample = run.read("monitor_layer"), run.read("monitor_node"), run.read("monitor_sample")
    assert len(layer) == 30 * SAMPLES
    pairs = sorted({(int(k), int(j)) for k, j in zip(layer, node, strict=True)})
    assert pairs == [(0, j) for j in range(14)] + [(1, j) for j in range(14)] + [(2, 0), (2, 1)]
    np.testing.assert_array_equal(sample, np.tile(np.arange(SAMPLES), 30))
    for name, channel in (("integrator_0", "CHAN1"), ("integrator_1", "CHAN2"), ("monitor", "CHAN4")):
        assert run.datasets[f"{SCOPE}/{name}"].shape == (30 * SAMPLES, 250)
        assert run.attrs(f"{SCOPE}/{name}")["channel"] == channel
    # the same initial conditions and seed in every run: the integrators repeat within the scope's noise
    x = run.trace_volts("integrator_0").reshape(30, SAMPLES, -1)
    assert np.max(np.abs(x - x[0])) < 3e-3
    initial = run.read("initial")
    x_scale = run.read("voltage_scales")[0]
    np.testing.assert_allclose(x[0, :, 0], initial[:, 0] * x_scale, atol=3e-3)
    outcome = run.outcome
    assert outcome["nodes"]["value"] == 30 and outcome["samples"]["value"] == SAMPLES
    assert outcome["end_spread_between_runs"]["value"] < 1e-3          # a few ADC codes: relaxation, settled
    for k in (1, 2, 3):
        lo, hi = outcome[f"layer_{k}_input_min"]["value"], outcome[f"layer_{k}_input_max"]["value"]
        assert lo < hi and outcome[f"layer_{k}_input_min"]["units"] == "V"
    assert outcome["layer_2_input_min"]["value"] > -5e-3              # ReLU outputs: 0 V but for scope noise
    assert run.parameters["settle"] == 60.0


@pytest.mark.slow
def test_each_monitor_trace_is_the_software_forward_of_the_recorded_integrators(run_path):
    path, proto, rc, dt_step = run_path
    run = open_run(path)
    data = ldd.load_nodes(run)
    placed = recorded_placement(proto.network.mapped, run.read("layer_region"), "test")
    blocks = placed.split(run.read("settled_conductance")[-1])
    layers = [AnalogLayer(gp, gn, n_bias=lay.bias_rows, r_feedback=lay.r_feedback, activation=lay.activation)
              for (gp, gn), lay in zip(blocks, placed.layers, strict=True)]
    streams = loop_streams(placed, proto.network.model, n_steps=proto.p.steps, dt_step=dt_step, rc=rc, sde=False)
    x = np.stack([run.trace_volts(n).reshape(30, SAMPLES, -1)[0] for n in ("integrator_0", "integrator_1")], 1)
    index = np.clip((data.time / streams.dt).astype(int), 0, len(streams.embedding) - 1)
    inner = slice(2, -2)   # away from the record's ends
    want = {k: np.empty((SAMPLES, data.time.size, lay.n_out)) for k, lay in enumerate(layers)}
    for p in range(data.time.size):
        hidden = streams.embedding[index[p]] + streams.condition
        for k in range(len(layers)):
            extra = [hidden if lay.activation == "relu" else None for lay in layers[: k + 1]]
            want[k][:, p] = network_forward(layers[: k + 1], x[:, :, p], v_bias=placed.v_bias, extra=extra,
                                            v_rail=0.5)
    for k, lay in enumerate(layers):
        moving = np.ptp(want[k], axis=(0, 1)) > 0.01
        for j in range(lay.n_out):
            rows = np.flatnonzero((data.layer == k) & (data.node == j))
            got = data.monitor[rows][:, inner]                          # (samples, P)
            rms = np.sqrt(np.mean((got[..., None] - want[k][:, inner]) ** 2, axis=(0, 1)))
            assert rms[j] < RMS_BOUND, (k, j, rms[j])
            others = [i for i in range(lay.n_out) if i != j and moving[i]]
            assert all(3 * rms[j] < rms[i] for i in others), (k, j, rms)


@pytest.mark.slow
def test_the_report_draws_every_node_and_each_layers_inputs(run_path, tmp_path):
    path, _, _, _ = run_path
    result = report_run(path, tmp_path)
    stems = {f.stem: f for f in result.figures}
    assert {"nodes_waveforms", "layer_inputs"} <= set(stems)
    assert all(stems[s].stat().st_size > 20_000 for s in ("nodes_waveforms", "layer_inputs"))
    metrics = result.summary["metrics"]["nodes"]
    assert metrics["samples"] == SAMPLES and metrics["node_runs"] == 30
    assert set(metrics["input_range_V"]) == {"layer 1: integrators", "layer 2: hidden layer 1 outputs",
                                            "layer 3: hidden layer 2 outputs"}
    from analysis.report_diffusion import nodes_section

    figs = dict(nodes_section(open_run(path)).figures)
    waves = figs["nodes_waveforms"].axes
    assert [len(ax.lines) for ax in waves] == [2, 14, 14, 2]
    assert all(has_unit(ax.get_ylabel()) for ax in waves) and has_unit(waves[-1].get_xlabel())
    hists = figs["layer_inputs"].axes
    assert len(hists) == 3 and all(artists(ax) and has_unit(ax.get_xlabel()) for ax in hists)
    text = " ".join(t.get_text() for fig in figs.values() for ax in fig.axes for t in [ax.title, *ax.texts])
    assert "uV" not in text and "uS" not in text and "+-" not in text
