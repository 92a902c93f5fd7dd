"""The board's monitor output (trace channel D + 1): the selected node's voltage, in both loop models.

The reference is the network's software forward (``network_forward``, noise free) through the
conductances the loop reads, on the integrator voltages the same trace records, with the
time embedding the streams held at that sample. Read noise is off, so the difference is
only what each model adds to the ideal network:

- ideal loop: float32 arithmetic (about 1e-7 relative) on outputs of at most 0.5 V, so
  agreement to 10 uV;
- circuit loop: its static errors, the crossbar's wire resistance and the cells' I-V
  nonlinearity at the actual row voltages (about 1 % of a weight), op-amp offsets (40 uV at
  a noise gain of 3 per stage) and the DACs' 76 uV codes: bound 1 % of the activation rail,
  5 mV (measured: at most 1.9 mV once the lag is taken out). And its lag: a node follows the
  integrators through the embedding DACs (a new value each 1 us board step) and a chain of
  amplifier stages (Elmore delays adding to 0.15, 0.5 and 0.77 us for the three layers);
  measured, a node is best matched by the reference 1 us earlier. Bound: two board steps
  times the node's slope at that sample (on this short run of 0.3 ms the output nodes move
  by up to 4 mV per us near its end).

Each node is also told apart from its neighbours: the selected node's reference fits the
monitor at least 5 times better (RMS) than any other node of the layer that moves.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from instruments.sim.analog_network import network_forward
from instruments.sim.device_params import DeviceParams
from instruments.sim.world import SimWorld
from protocols.diffusion.analog import initial_noise
from protocols.diffusion.loop_streams import loop_streams
from protocols.diffusion.mapping import map_score_net
from protocols.diffusion.weights import load_shipped

N_STEPS = 300           # board steps per run: 0.3 ms, enough for the nodes to move
NODES = ((0, 3), (1, 5), (2, 0), (2, 1))   # a node of each hidden layer, both output nodes
TOLERANCE = {"ideal": 1e-5, "circuit": 5e-3}   # V, see the module docstring
LAG = {"ideal": 0.0, "circuit": 2e-6}           # s, see the module docstring


@pytest.fixture(scope="module")
def setup():
    model = load_shipped("ring")
    mapped = map_score_net(model)
    # no relaxation drift: two runs with the same seed see the same conductances
    world = SimWorld(params=DeviceParams(stuck_fraction=0.0, relax_sigma0=0.0, relax_sigma_rel=0.0,
                                         relax_drift_rel=0.0), seed=0)
    macro, row, col, target = mapped.cells()
    world.set_conductance(macro, row, col, target)
    x0 = mapped.to_volts(initial_noise(np.random.default_rng(1), 6))
    return model, mapped, world, x0


def _run(setup, loop_model: str, monitor: tuple[int, int] | None):
    model, mapped, world, x0 = setup
    loop = world.loop
    loop.params = replace(loop.params, model=loop_model, read_noise_scale=0.0)
    streams = loop_streams(mapped, model, n_steps=N_STEPS, dt_step=loop.params.dt_step, rc=loop.params.rc,
                           sde=False)
    loop.load_mapping(list(mapped.layers), mapped.v_bias)
    loop.set_streams(*streams.as_args())
    if monitor is not None:
        loop.select_monitor(*monitor)
    return loop.run(x0, streams.duration, False, np.random.default_rng(3)), streams


def _forward(setup, streams, traces, trace_dt: float, layer: int) -> np.ndarray:
    """Every node of ``layer`` by the software forward on the recorded integrators, (N, P - 1, n_out) V."""
    _, mapped, world, _ = setup
    loop = world.loop
    layers = loop.analog_layers(noise=False)[: layer + 1]
    every = round(trace_dt / loop.params.dt_step)
    n, _, points = traces.shape
    out = np.empty((n, points - 1, layers[-1].n_out))
    for p in range(points - 1):          # the end sample repeats the last step's monitor value
        hidden = streams.embedding[p * every] + streams.condition
        extra = [hidden if lay.activation == "relu" else None for lay in layers]
        out[:, p] = network_forward(layers, traces[:, :2, p].astype(float), v_bias=mapped.v_bias, extra=extra,
                                    v_rail=loop.params.v_rail)
    return out


@pytest.mark.parametrize("loop_model", ["ideal", "circuit"])
def test_the_monitor_is_the_selected_nodes_voltage_and_changes_nothing_else(setup, loop_model):
    base, _ = _run(setup, loop_model, None)
    np.testing.assert_allclose(base.traces[:, 3], setup[2].loop.params.trigger_level)   # default: trigger (ODE)
    for layer, node in NODES:
        result, streams = _run(setup, loop_model, (layer, node))
        np.testing.assert_array_equal(result.traces[:, :3], base.traces[:, :3])   # no random draw changed
        np.testing.assert_array_equal(result.end, base.end)
        every_node = _forward(setup, streams, result.traces, result.trace_dt, layer)
        monitor = result.traces[:, 3, :-1].astype(float)
        error = np.abs(monitor - every_node[..., node])
        step = np.abs(np.diff(every_node[..., node], axis=1)) / result.trace_dt       # V/s between samples
        slope = np.maximum(np.pad(step, ((0, 0), (1, 0))), np.pad(step, ((0, 0), (0, 1))))
        excess = error - (TOLERANCE[loop_model] + LAG[loop_model] * slope)
        assert excess.max() < 0, (layer, node, error.max(), excess.max())
        assert np.ptp(monitor) > 0.02, "the node moves during the run"
        rms = np.sqrt(np.mean((monitor[..., None] - every_node) ** 2, axis=(0, 1)))
        moving = np.ptp(every_node, axis=(0, 1)) > 0.01
        others = [k for k in range(len(rms)) if k != node and moving[k]]
        assert all(rms[node] * 5 < rms[k] for k in others), (layer, node, rms)


def test_loading_a_mapping_returns_the_monitor_to_its_default_and_bad_nodes_are_refused(setup):
    _, mapped, world, _ = setup
    loop = world.loop
    loop.load_mapping(list(mapped.layers), mapped.v_bias)
    loop.select_monitor(2, 1)
    assert loop.monitor == (2, 1)
    saved = loop.state_dict()
    loop.load_mapping(list(mapped.layers), mapped.v_bias)
    assert loop.monitor is None
    loop.load_state_dict(saved)
    assert loop.monitor == (2, 1)
    for layer, node in ((3, 0), (2, 2), (0, 14), (-1, 0)):
        with pytest.raises(ValueError, match="monitor"):
            loop.select_monitor(layer, node)
    assert loop.monitor == (2, 1)
    loop.select_monitor(None)
    assert loop.monitor is None
