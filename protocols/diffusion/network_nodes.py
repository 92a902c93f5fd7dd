"""Every node of the analog network recorded during sampling (Figs. 3a and 3c).

The scope sees the two integrators on channels 1 and 2; the board's analog monitor
multiplexer (MONITOR_SELECT, ``docs/macro-controller-protocol.md``) puts one node of the
network, a hidden ReLU output or an output-layer node, on its monitor output, wired to
channel 4. One node at a time, so the same samples are run once per node: the
probability-flow ODE from the same initial conditions with the same board seed (the read
noise it draws), so every run follows the same trajectories and the node waveforms of all
runs belong together.

Procedure: program the network (write-verify, as ``sample`` does); let it settle (the cells'
relaxation after a write is fastest at first: ln(1 + t / 10 ms) grows by 2.2 over the first
0.2 s, by 0.003 over the same time a minute later) and read it back (what the runs compute
with: the settle moves small conductances by about 0.1 µS); draw the initial
conditions (N(0, I), as ``sample`` draws its initial noise, from the run seed) and the
board's noise seed; then for each node of each layer: load the network, select the node
on the monitor, arm the scope (integrators and monitor, segmented memory: one segment per
sample), run the samples, store the segments and the integrators' end values. The monitor
is returned to its default source at the end of each run.

Layer k's inputs (Fig. 3c) are the integrators (k = 1) and the outputs of hidden layer
k - 1 (k = 2, 3): all of them are in the recorded traces.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import numpy as np

from protocols.characterization.write_verify_algorithm import averaged_read
from protocols.diffusion.analog import N_STEPS, board_load, check_noise_limit, initial_noise
from protocols.diffusion.board_sampler import WAVE_POINTS, record_waveform
from protocols.diffusion.loop_streams import LoopStreams, loop_streams
from protocols.diffusion.macro_controller_sampler import SCOPE_TIMEOUT
from protocols.diffusion.mapping import MappedNetwork
from protocols.diffusion.network_programming import programming_specs
from protocols.diffusion.program_model import PROGRAM_TIME, ProgrammedNetwork, ProgramModel, write_verify_config
from protocols.engine.datasets import Constant, Spec, Stream, Traces
from protocols.engine.protocol import ParameterError, Protocol, Step, param

if TYPE_CHECKING:
    from protocols.engine.bench_shape import BenchShape

#: Scope channels: the integrators on 1 and 2, the board's monitor output on 4.
CHANNELS = {"integrator_0": 1, "integrator_1": 2, "monitor": 4}
NODE_TIME = 1.0  # s, typical bench time of one node's run and transfers (estimate only)


class NetworkNodes(Protocol):
    """Record every node of the analog network during sampling: the integrators and, one run per
    node through the board's monitor multiplexer, every hidden ReLU output and output node
    (Fig. 3a), which give each layer's input voltages (Fig. 3c)."""

    name = "network-nodes"
    signal = "node_range"

    @dataclass
    class Params(ProgramModel.Params):   # program-model's parameters (it programs the same way), then these
        samples: int = param(20, limits=(1, 1000), help="initial conditions, each run once per node of the network")
        steps: int = param(N_STEPS, limits=(10, 65535), help="solver steps per sample (DAC updates)")
        condition: int = param(0, limits=(0, 255), help="class of a conditional model (ignored otherwise)")
        settle: float = param(60.0, unit="s", limits=(0.0, 1e5),
                              help="wait between programming and the first run: the cells relax fastest right "
                              "after a write, which would make the node runs differ")

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        self.network = ProgrammedNetwork(self)

    # -- the procedure ----------------------------------------------------------------------
    def plan(self) -> Iterator[Step]:
        yield Step("write-verify the network and read it back", self.network.program, estimate=PROGRAM_TIME)
        yield Step(f"let the network settle {self.p.settle:g} s, read it back, draw {self.p.samples} initial "
                   "conditions and the board's noise seed", self.draw, estimate=self.p.settle)
        for layer, node in self.nodes:
            yield Step(f"{self.layer_name(layer)}, node {node} on the monitor (scope channel 4): "
                       f"{self.p.samples} samples", partial(self.measure, layer, node), estimate=NODE_TIME)

    def draw(self) -> None:
        """After ``settle`` s, the network read back (the conductances the runs compute with), then
        N(0, I) initial conditions within the DACs' range (as ``sample`` draws them) and one seed of
        the board's noise generator, shared by every node's run."""
        self.bench.clock.sleep(self.p.settle)
        cfg = write_verify_config(self.p)
        macro, row, col, _ = self.network.placed.cells()
        self.record("settled_conductance", averaged_read(self.bench.macro_controller, macro, row, col, self.p.reads,
                                                         cfg.read_bias, cfg.read_window))
        limit = self.network.mapped.config.v_dac / self.network.mapped.x_scale
        check_noise_limit(limit)
        self.record_rows("initial", initial_noise(self.rng, self.p.samples, self.network.model.net.dim, limit=limit))
        self.record("board_seed", int(self.rng.integers(2**32)))

    def measure(self, layer: int, node: int) -> None:
        """One run of every sample with node ``node`` of mapped layer ``layer`` on the monitor."""
        board, scope = self.bench.macro_controller, self.bench.scope
        placed = self.network.placed
        x0 = placed.to_volts(self.recorded("initial"))
        seed = int(self.recorded("board_seed")[-1])
        streams = self.streams(board)
        board_load(board, placed)
        board.select_monitor(layer, node)
        try:
            board.set_streams(*streams.as_args())
            board.set_initial(x0)
            self._arm_scope(scope, placed, streams, board.loop_v_rail)
            board.run_samples(len(x0), streams.duration, False, seed=seed)
            end = board.fetch_end_values()
        finally:
            board.select_monitor(None)
        self.check()
        n = len(x0)
        scope.wait_triggered(timeout=SCOPE_TIMEOUT)
        scope.wait_segments(n, timeout=SCOPE_TIMEOUT)   # :TER? latches at the first trigger, not the last
        scope.stop()
        peaks = {}
        for name, ch in CHANNELS.items():
            waves = scope.fetch_segments(ch, n, fmt="WORD", points=WAVE_POINTS)
            for wave in waves:
                record_waveform(self, name, wave)
            peaks[name] = [f(np.concatenate([w.volts for w in waves])) for f in (np.nanmin, np.nanmax)]
        self.record_rows("end_volts", end)
        self.record_rows("monitor_layer", np.full(n, layer))
        self.record_rows("monitor_node", np.full(n, node))
        self.record_rows("monitor_sample", np.arange(n))
        self.record("node_range", np.array(peaks["monitor"]))
        self.record("integrator_range", np.array([min(peaks["integrator_0"][0], peaks["integrator_1"][0]),
                                                  max(peaks["integrator_0"][1], peaks["integrator_1"][1])]))

    def _arm_scope(self, scope: Any, placed: MappedNetwork, streams: LoopStreams, v_rail: float) -> None:
        """Integrators at the DACs' range, the monitor at the activation rail (both signs: an output
        node swings ±v_rail), the run on screen, segmented memory, armed on the board's trigger."""
        v_x = placed.to_volts(np.array([5.0]))[0]
        for name, ch in CHANNELS.items():
            top = 1.1 * v_rail if name == "monitor" else v_x
            scope.configure_channel(ch, scale=top / 4)
        scope.set_timebase(streams.duration / 10, streams.duration / 2)
        scope.set_edge_trigger("EXT", 0.5)
        scope.set_segmented(max(2, self.p.samples))
        scope.single()

    # -- declared data ----------------------------------------------------------------------
    def validate(self, shape: BenchShape) -> None:
        """The model maps and fits the board; a conditional model's class exists; the DACs hold
        the initial noise."""
        self.network.check(shape)
        try:
            check_noise_limit(self.network.mapped.config.v_dac / self.network.mapped.x_scale)
        except ValueError as exc:
            raise ParameterError(f"x_scale={self.p.x_scale:g} V: {exc}") from None

    def datasets(self) -> Sequence[Spec]:
        sizes = np.array([lay.n_out for lay in self.network.mapped.layers])
        return [
            *programming_specs(self.network.mapped),
            Constant("layer_outputs", "", sizes, long_name="outputs (nodes) of each mapped layer, in order: "
                     "the hidden ReLU layers, then the output layer"),
            Stream("settled_conductance", "S", shape=(self.network.mapped.cells()[3].size,),
                   long_name="averaged read-back of every cell after the settle, before the runs"),
            Stream("initial", "", shape=(2,), long_name="initial conditions, data units (every node's run the same)"),
            Stream("board_seed", "", dtype="i8", long_name="seed of the board's noise generator, every run"),
            *(Traces(name, points=WAVE_POINTS, dtype="u2", channel=f"CHAN{ch}") for name, ch in CHANNELS.items()),
            Stream("monitor_layer", "", dtype="i2",
                   long_name="mapped layer (0-based) whose node the monitor trace of each row shows"),
            Stream("monitor_node", "", dtype="i2", long_name="node of that layer the monitor trace of each row shows"),
            Stream("monitor_sample", "", dtype="i4", long_name="initial condition (row of initial) of each row"),
            Stream("end_volts", "V", shape=(2,), long_name="integrator voltages at the end of each row's run"),
            Stream("node_range", "V", shape=(2,), long_name="least and largest voltage of each run's monitored node"),
            Stream("integrator_range", "V", shape=(2,),
                   long_name="least and largest integrator voltage of each run (layer 1's inputs)"),
        ]

    def outcome(self) -> dict:
        """Nodes and samples recorded, each layer's input range (V), and how far the integrators'
        end values of the same sample differ between the node runs (V: the runs repeat one sampling)."""
        layers = self.recorded("monitor_layer")
        if not len(layers):
            return {}
        node_range, integ = self.recorded("node_range"), self.recorded("integrator_range")
        run_layer = layers[:: self.p.samples][: len(node_range)]
        out: dict[str, tuple[Any, str]] = {"nodes": (len(node_range), ""), "samples": (self.p.samples, "")}
        ranges = [(integ[:, 0].min(), integ[:, 1].max())]
        for k in range(len(self.network.mapped.layers) - 1):
            mine = node_range[run_layer == k]
            if len(mine):
                ranges.append((mine[:, 0].min(), mine[:, 1].max()))
        for k, (lo, hi) in enumerate(ranges, start=1):
            out[f"layer_{k}_input_min"] = (float(lo), "V")
            out[f"layer_{k}_input_max"] = (float(hi), "V")
        end = self.recorded("end_volts").reshape(-1, self.p.samples, 2)
        out["end_spread_between_runs"] = (float(np.max(np.ptp(end, axis=0))), "V")
        return out

    # -- helpers ----------------------------------------------------------------------------
    @cached_property
    def nodes(self) -> list[tuple[int, int]]:
        """(layer, node) of every node the monitor shows, layer by layer."""
        return [(k, j) for k, lay in enumerate(self.network.mapped.layers) for j in range(lay.n_out)]

    def layer_name(self, layer: int) -> str:
        return "output layer" if layer == len(self.network.mapped.layers) - 1 else f"hidden layer {layer + 1}"

    def streams(self, board: Any) -> LoopStreams:
        """The probability-flow ODE's DAC streams at the board's own time constants."""
        return loop_streams(self.network.placed, self.network.model, n_steps=self.p.steps, dt_step=board.loop_dt_step,
                            rc=board.loop_rc, sde=False, cond=self.network.condition)
