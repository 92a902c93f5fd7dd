"""The simulated board's analog loop: macro regions wired into a network, closed by integrators.

``AnalogLoop(world)`` is the circuit a :class:`~instruments.sim.world.SimWorld` holds.
The board loads a mapping (which macro regions form which layer), DAC streams (time
embedding, condition, gains a, b, c) and runs the closed loop
``RC dx/dtau = a x + b y(x, tau) + c xi`` for many initial conditions at once
(``docs/circuit-model.md``). The maths lives in :mod:`instruments.sim.analog_network`
(the network in volts, usable without a world) and :mod:`instruments.sim.integrator`
(the ideal loop), or :mod:`instruments.sim.loop_circuit` (the board's parts:
``CircuitParams.model = "circuit"``, the default).

Layout of a layer region (:class:`~instruments.macro_controller_wire.LayerRegion`) in a
macro: rows ``row0 .. row0 + n_in - 1`` take the input voltages, the next ``bias_rows``
rows the constant ``v_bias``; G+ of output j sits in column ``col0 + j`` and its G- in
column ``col0 + n_out + j``, on the same rows (the row-shared reference: a current
mirror subtracts the G- column from the G+ column before the TIA).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from instruments.macro_controller_wire import LOOP_DT_STEP, LOOP_RC, LOOP_V_RAIL, LayerRegion
from instruments.sim.analog_network import (
    ACTIVATIONS,
    AnalogLayer,
    _finite_array,
    compile_layers,
    network_forward,
)
from instruments.sim.device import read_noise_sigma
from instruments.sim.integrator import LoopSettings, StepStreams, integrate

#: Circuit loop models: ``"ideal"`` (instant, exact amplifiers; ``integrator.py``) or
#: ``"circuit"`` (parts, converters and crossbar parasitics; ``loop_circuit.py``).
LOOP_MODELS = ("ideal", "circuit")
#: Largest change per sub-step of the circuit model's fastest own mode: the loop's time
#: constants are RC over its gains a, b, so a sub-step h keeps max(|a|, |b|) h / RC below
#: this (1 %; the ring's streams at the board's defaults: 0.6 %, one sub-step).
CIRCUIT_GAIN_STEP = 1e-2

__all__ = [
    "AnalogLayer", "AnalogLoop", "CircuitParams", "LoopResult", "network_forward",
]

log = logging.getLogger(__name__)


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class CircuitParams:
    """Electrical and numerical settings of the analog loop (SI units).

    rc: integrator time constant RC (s, > 0). dt_step: fine simulation step (s, > 0,
    at most rc / 10). v_rail: rail of the activation amplifiers (V, > 0): ReLU outputs
    lie in [0, v_rail], linear outputs in [-v_rail, v_rail]. x_rail: rail of the
    integrators (V, > 0). v_dac: largest |DAC voltage| accepted for embeddings,
    conditions, the noise gain c and v_bias (V, > 0). noise_window: observation window
    (s, > 0) of the read noise each step sees in the ideal model and EVAL_LAYER (the
    circuit model draws the cells' spectrum, ``loop_noise.py``). read_noise_scale:
    multiplier (>= 0) of the std of the device read noise (0 turns it off, 2 doubles it).
    trace_rate: default trace sample rate (Hz, > 0). trigger_level: trigger output (V) on the last trace channel in ODE
    runs. probe_channel: index of the time-embedding DAC shown on the trace (>= 0).
    chunk: trajectories integrated per cache-sized block (>= 1; results depend on it
    only through the order of random draws). model: ``"ideal"`` or ``"circuit"`` (op-amp
    lags and limits, DACs, ADC, crossbar IR drop and nonlinearity;
    ``docs/circuit-model.md``). substeps: least number of sub-steps per ``dt_step`` in the
    circuit model (>= 1); it takes more when the streams' largest gain over RC would change
    the loop by more than ``CIRCUIT_GAIN_STEP`` per sub-step.
    """

    rc: float = LOOP_RC
    dt_step: float = LOOP_DT_STEP
    v_rail: float = LOOP_V_RAIL
    x_rail: float = 2.5
    v_dac: float = 2.5
    noise_window: float = 1e-6
    read_noise_scale: float = 1.0
    trace_rate: float = 1e5
    trigger_level: float = 1.0
    probe_channel: int = 0
    chunk: int = 2048
    model: str = "circuit"
    substeps: int = 1

    def __post_init__(self) -> None:
        for name in ("rc", "dt_step", "v_rail", "x_rail", "v_dac", "noise_window", "trace_rate"):
            _positive(f"CircuitParams.{name}", getattr(self, name))
        if self.dt_step > self.rc / 10:
            raise ValueError(f"CircuitParams.dt_step must be <= rc / 10 = {self.rc / 10:g} s, "
                             f"got {self.dt_step:g}")
        if not (math.isfinite(self.read_noise_scale) and self.read_noise_scale >= 0):
            raise ValueError(f"CircuitParams.read_noise_scale must be >= 0, got {self.read_noise_scale!r}")
        if not math.isfinite(self.trigger_level):
            raise ValueError(f"CircuitParams.trigger_level must be finite, got {self.trigger_level!r}")
        for name in ("probe_channel", "chunk", "substeps"):
            value = getattr(self, name)
            least = 0 if name == "probe_channel" else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"CircuitParams.{name} must be an integer >= {least}, got {value!r}")
        if self.model not in LOOP_MODELS:
            raise ValueError(f"CircuitParams.model must be one of {LOOP_MODELS}, got {self.model!r}")


@dataclass(frozen=True)
class LoopResult:
    """Outcome of one closed-loop run of N trajectories.

    end: (N, D) integrator voltages at the end (V). traces: (N, D + 2, P) float32 node
    voltages (V): channels 0..D-1 the integrators, D the time-embedding DAC
    ``probe_channel``, D + 1 the board's monitor output: the node :meth:`AnalogLoop.select_monitor`
    chose (its activation amplifier's output), by default the injected noise voltage of
    integrator 0 (SDE) or the trigger output (ODE). trace_dt: time between trace samples
    (s); sample 0 is the run start. saturated: (N,) True where an integrator sat on its rail
    at a sample.
    """

    end: np.ndarray
    traces: np.ndarray
    trace_dt: float
    saturated: np.ndarray


#: Relative tolerance on times (s) that arrive as float32 over the board link.
_REL_TOL = 1e-6


def _whole_steps(ratio: float) -> int:
    """Fine steps covering ``ratio`` steps' worth of time: a near-whole ratio (float32
    inputs) rounds to it, anything else rounds up; at least one."""
    nearest = round(ratio)
    if abs(ratio - nearest) <= _REL_TOL * max(1.0, ratio):
        return max(1, nearest)
    return max(1, math.ceil(ratio))


_LAYER_FIELDS = ("macro", "row0", "col0", "n_in", "n_out", "bias_rows")
_STREAM_KEYS = ("stream_dt", "embedding", "condition", "a", "b", "c")


class AnalogLoop:
    """Mapping, DAC streams and integrators of the simulated board, over one world.

    world: the :class:`SimWorld` whose macros hold the conductances; params: circuit
    settings (``CircuitParams()`` by default). Thread safety: every method that touches
    the world takes ``world.lock``.
    """

    def __init__(self, world: Any, params: CircuitParams | None = None) -> None:
        self._world = world
        self.params = params if params is not None else CircuitParams()
        self.layers: list[LayerRegion] = []
        self.v_bias: float | None = None
        #: (layer, node) on the monitor output (trace channel D + 1), None: its default source
        self.monitor: tuple[int, int] | None = None
        self._streams: dict[str, Any] = dict.fromkeys(_STREAM_KEYS)

    # -- configuration ----------------------------------------------------------------
    def load_mapping(self, layers: Sequence[LayerRegion], v_bias: float) -> None:
        """Wire macro regions into a network; ``v_bias`` (V) drives every bias row.

        Consecutive layers must chain (n_in of one = n_out of the previous) and every
        region must fit its macro. Nothing changes if anything is refused.
        """
        layers = list(layers)
        if not layers or not all(isinstance(layer, LayerRegion) for layer in layers):
            raise ValueError("layers must be a non-empty sequence of LayerRegion")
        if not (math.isfinite(v_bias) and abs(v_bias) <= self.params.v_dac):
            raise ValueError(f"v_bias must be finite with |v_bias| <= {self.params.v_dac} V, got {v_bias!r}")
        n_macros, rows, cols = self._world.shape
        for k, layer in enumerate(layers):
            if layer.macro >= n_macros:
                raise ValueError(f"layers[{k}].macro {layer.macro} outside 0..{n_macros - 1}")
            if layer.row0 + layer.n_in + layer.bias_rows > rows:
                raise ValueError(f"layers[{k}] rows {layer.row0}..{layer.row0 + layer.n_in + layer.bias_rows - 1}"
                                 f" exceed the macro's {rows} rows")
            if layer.col0 + 2 * layer.n_out > cols:
                raise ValueError(f"layers[{k}] columns {layer.col0}..{layer.col0 + 2 * layer.n_out - 1}"
                                 f" exceed the macro's {cols} columns")
            if k and layer.n_in != layers[k - 1].n_out:
                raise ValueError(f"layers[{k}].n_in {layer.n_in} != layers[{k - 1}].n_out {layers[k - 1].n_out}")
        self.layers, self.v_bias = layers, float(v_bias)
        self.monitor = None  # a new network: the monitor returns to its default source
        log.debug("mapping loaded: %d layers, v_bias %.3g V", len(layers), v_bias)

    def set_streams(self, dt: float, embedding: np.ndarray, condition: np.ndarray,
                    a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
        """Load the DAC streams, held for ``dt`` s each (sample k covers [k dt, (k+1) dt)).

        embedding: (T, H) V time embedding summed into every ReLU layer; condition: (H,)
        V added likewise; a, b: (T,) dimensionless integrator gains; c: (T,) V noise gain.
        Voltages must lie within +-v_dac; NaN or infinite values are refused.
        """
        dt = _positive("dt", dt)
        emb = _finite_array("embedding", embedding, 2).copy()  # the loop keeps its own copy
        t_len, hidden = emb.shape
        if t_len == 0 or hidden == 0:
            raise ValueError(f"embedding must be (T, H) with T, H >= 1, got {emb.shape}")
        cond = _finite_array("condition", condition, 1).copy()
        if cond.shape != (hidden,):
            raise ValueError(f"condition must have shape ({hidden},), got {cond.shape}")
        gains = {}
        for name, value in (("a", a), ("b", b), ("c", c)):
            gains[name] = _finite_array(name, value, 1).copy()
            if gains[name].shape != (t_len,):
                raise ValueError(f"{name} must have shape ({t_len},) like embedding's T, got {gains[name].shape}")
        for name, value in (("embedding", emb), ("condition", cond), ("c", gains["c"])):
            worst = float(np.max(np.abs(value)))
            if worst > self.params.v_dac:
                raise ValueError(f"{name} reaches {worst:.4g} V, beyond the DAC range +-{self.params.v_dac} V")
        self._streams = {"stream_dt": dt, "embedding": emb, "condition": cond, **gains}

    def select_monitor(self, layer: int | None, node: int = 0) -> None:
        """Route the output of node ``node`` of mapped layer ``layer`` (its activation
        amplifier: a hidden ReLU output or an output-layer node, V) to the monitor output,
        trace channel D + 1 of every later run; ``layer`` None returns it to its default
        source (noise or trigger). Refused (ValueError) without a mapping or outside it;
        loading a mapping returns the monitor to its default."""
        if layer is None:
            self.monitor = None
            return
        if not self.layers:
            raise ValueError("no mapping loaded: the monitor selects a node of the loaded network")
        if not 0 <= layer < len(self.layers):
            raise ValueError(f"monitor layer {layer} outside the mapping's layers 0..{len(self.layers) - 1}")
        n_out = self.layers[layer].n_out
        if not 0 <= node < n_out:
            raise ValueError(f"monitor node {node} outside layer {layer}'s outputs 0..{n_out - 1}")
        self.monitor = (int(layer), int(node))

    def safe_state(self) -> None:
        """Integrators held (run switches open); mapping and streams stay loaded."""
        self._world.outputs.integrators_running = False

    # -- the network ------------------------------------------------------------------
    def analog_layers(self, noise: bool = True) -> list[AnalogLayer]:
        """The mapped layers with the world's true conductances now (relaxation applied),
        with read-noise sigma (S) per conductance when ``noise`` and read_noise_scale > 0."""
        if not self.layers:
            raise ValueError("no mapping loaded: call load_mapping first")
        with self._world.lock:
            g_by_macro = {m: self._world.conductance(m) for m in sorted({lay.macro for lay in self.layers})}
        scale = self.params.read_noise_scale if noise else 0.0
        return [self._region_layer(layer, g_by_macro[layer.macro], scale) for layer in self.layers]

    def _region_layer(self, layer: LayerRegion, g: np.ndarray, scale: float) -> AnalogLayer:
        """The layer in region ``layer`` of a macro whose conductances are ``g`` (rows, cols) S,
        with read-noise sigma times ``scale`` (none at 0)."""
        (rows_p, cols_p), (rows_n, cols_n) = layer.regions()
        g_pos, g_neg = g[rows_p, cols_p], g[rows_n, cols_n]
        sigma_pos = sigma_neg = None
        if scale > 0:
            sigma_pos = scale * read_noise_sigma(g_pos, self.params.noise_window, self._world.params)
            sigma_neg = scale * read_noise_sigma(g_neg, self.params.noise_window, self._world.params)
        return AnalogLayer(g_pos, g_neg, n_bias=layer.bias_rows, r_feedback=layer.r_feedback,
                           activation=layer.activation, sigma_pos=sigma_pos, sigma_neg=sigma_neg)

    def evaluate_layer(self, layer: LayerRegion, v_bias: float, x: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
        """One layer region evaluated open-loop (the board's EVAL_LAYER), outputs (N, n_out) V.

        x: (N, n_in) input voltages, held on the region's input rows by the stream DACs
        (quantised to their codes), the bias rows at ``v_bias``; each vector is one
        conversion: the TIAs and the activation amplifiers (ReLU or linear, rail
        ``params.v_rail``) settle, the readout ADC digitises every output. Read noise as in
        the loop (``read_noise_scale``, ``noise_window``), drawn from ``rng``. The loaded
        mapping and streams are untouched; ``world.clock`` advances by the ADC's conversion
        time of every output. Amplifier lags and the crossbar's wire resistance are not
        modelled here (the vector is held until the outputs settle).
        """
        from instruments.sim import loop_circuit as lc

        p = self.params
        n_macros, rows, cols = self._world.shape
        if layer.macro >= n_macros or layer.row0 + layer.n_in + layer.bias_rows > rows \
                or layer.col0 + 2 * layer.n_out > cols:
            raise ValueError(f"layer region {layer} does not fit {n_macros} macros of {rows}x{cols} cells")
        if not (math.isfinite(v_bias) and abs(v_bias) <= p.v_dac):
            raise ValueError(f"v_bias must be finite with |v_bias| <= {p.v_dac} V, got {v_bias!r}")
        x = _finite_array("x", x, 2)
        if x.shape[0] == 0 or x.shape[1] != layer.n_in:
            raise ValueError(f"x must have shape (N >= 1, {layer.n_in}), got {x.shape}")
        if np.max(np.abs(x)) > p.v_dac:
            raise ValueError(f"x reaches {np.max(np.abs(x)):.4g} V, beyond the DAC range +-{p.v_dac} V")
        world = self._world
        with world.lock:
            analog = self._region_layer(layer, world.conductance(layer.macro), p.read_noise_scale)
            y = network_forward([analog], lc.AD5542A.quantize(x), v_bias=v_bias, v_rail=p.v_rail,
                                rng=rng if analog.noisy else None)
            world.clock.sleep(x.shape[0] * layer.n_out / lc.ADS8688.rate)
        return lc.ADS8688.quantize(y)

    # -- running ----------------------------------------------------------------------
    def run(self, x0: np.ndarray, duration: float, sde: bool, rng: np.random.Generator,
            sample_rate: float | None = None) -> LoopResult:
        """Run the closed loop from each row of ``x0`` (N, D) V for ``duration`` s.

        sde: inject the noise c(tau) xi (reverse SDE) or not (probability-flow ODE).
        rng: generator of the read noise and the SDE noise. sample_rate: trace rate
        (Hz, default ``params.trace_rate``, at most 1 / dt_step). Reads the programmed
        conductances at the start, advances ``world.clock`` by N x duration and holds
        ``world.outputs.integrators_running`` during the run.
        """
        if not self.layers:
            raise ValueError("no mapping loaded: call load_mapping first")
        if self._streams["stream_dt"] is None:
            raise ValueError("no DAC streams loaded: call set_streams first")
        p = self.params
        duration = _positive("duration", duration)
        x0 = np.array(x0, dtype=float)
        dim = self.layers[0].n_in
        if x0.ndim != 2 or x0.shape[0] == 0 or x0.shape[1] != dim:
            raise ValueError(f"x0 must have shape (N >= 1, {dim}), got {x0.shape}")
        if not np.all(np.isfinite(x0)) or np.max(np.abs(x0)) > p.x_rail:
            raise ValueError(f"x0 must be finite within the integrator rails +-{p.x_rail} V")
        if self.layers[-1].n_out != dim:
            raise ValueError(f"the last layer gives {self.layers[-1].n_out} outputs but the loop has {dim}"
                             " integrators (first layer's n_in)")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        rate = p.trace_rate if sample_rate is None else _positive("sample_rate", sample_rate)
        n_steps = _whole_steps(duration / p.dt_step)
        step = duration / n_steps
        if rate * step > 1 + 1e-9:
            raise ValueError(f"sample_rate {rate:g} Hz exceeds the simulation rate {1 / step:g} Hz")
        every = max(1, round(1.0 / (rate * step)))
        if p.model == "circuit":
            return self._run_circuit(x0, n_steps, step, duration, every, bool(sde), rng)
        streams = self._step_streams(n_steps, step, duration)
        settings = LoopSettings(h=step / p.rc, every=every, v_rail=p.v_rail, x_rail=p.x_rail,
                                trigger_level=p.trigger_level, chunk=p.chunk, monitor=self.monitor)
        world = self._world
        with world.lock:
            noise = p.read_noise_scale > 0
            net = compile_layers(self.analog_layers(noise=noise), self.v_bias, noise=noise)
            world.outputs.integrators_running = True
            try:
                with threadpool_limits(limits=1, user_api="blas"):   # tiny products: threads only cost
                    end, traces, saturated = integrate(net, x0, streams, settings, bool(sde), noise, rng)
                world.clock.sleep(x0.shape[0] * duration)
            finally:
                world.outputs.integrators_running = False
        if np.any(saturated):
            log.info("%d of %d trajectories reached the integrator rail", int(saturated.sum()), len(saturated))
        return LoopResult(end=end, traces=traces, trace_dt=every * step, saturated=saturated)

    def _run_circuit(self, x0: np.ndarray, n_steps: int, step: float, duration: float, every: int, sde: bool,
                     rng: np.random.Generator) -> LoopResult:
        """The circuit-level loop (``loop_circuit.py``): the same run, through the board's parts."""
        from instruments.sim import loop_circuit as lc

        p = self.params
        index = self._stream_index(n_steps, step, duration)
        s = self._streams
        gain = max(float(np.max(np.abs(s["a"][index]))), float(np.max(np.abs(s["b"][index]))))
        k = max(p.substeps, math.ceil(gain * step / p.rc / CIRCUIT_GAIN_STEP - _REL_TOL))
        h = step / k
        dac = lc.AD5542A
        gains = {name: lc.dac_substeps(s[name][index], k, step, dac, lc.gain_full_scale(s[name], dac))
                 for name in ("a", "b")}
        embedding = lc.dac_substeps(s["embedding"][index], k, step, dac)
        hidden = (embedding + dac.quantize(s["condition"])).astype(np.float32)
        streams = lc.CircuitStreams(a=gains["a"], b=gains["b"], c=lc.dac_substeps(s["c"][index], k, step, dac),
                                    hidden=hidden, probe=embedding[:, p.probe_channel])
        op = lc.OPA2320
        x_rail = min(p.x_rail, op.v_out_high, -op.v_out_low)
        leak, drift = lc.integrator_constants(p.rc, op)
        slew = op.slew_rate * h
        worst = h / p.rc * (float(np.max(np.abs(streams.a))) * x_rail + float(np.max(np.abs(streams.b))) * p.v_rail
                            + drift) + float(np.max(np.abs(streams.c))) * math.sqrt(h / p.rc) * lc.z_max()
        settings = lc.CircuitSettings(h=h / p.rc, k=k, every=every, leak=leak, drift=drift, x_rail=x_rail,
                                      slew=slew if worst > slew else None, trigger_level=p.trigger_level,
                                      chunk=p.chunk, gain=lc.integrator_gain(p.rc, op), monitor=self.monitor)
        world = self._world
        with world.lock:
            layers = self._circuit_layers(h, x_rail, step, duration)
            world.outputs.integrators_running = True
            try:
                with threadpool_limits(limits=1, user_api="blas"):
                    end, traces, saturated = lc.integrate_circuit(layers, np.clip(x0, -x_rail, x_rail), streams,
                                                                  settings, sde, rng)
                world.clock.sleep(x0.shape[0] * duration)
            finally:
                world.outputs.integrators_running = False
        if np.any(saturated):
            log.info("%d of %d trajectories reached the integrator rail", int(saturated.sum()), len(saturated))
        return LoopResult(end=lc.ADS8688.quantize(end), traces=traces, trace_dt=every * step, saturated=saturated)

    def _circuit_layers(self, h: float, x_rail: float, interval: float, duration: float) -> list[Any]:
        """The mapped regions at circuit level for sub-step ``h``, board interval ``interval`` and
        runs of ``duration`` (s), read noise from the cells' spectrum; call with the world locked."""
        from instruments.sim import loop_circuit as lc
        from instruments.sim.crossbar import CrossbarParams

        p = self.params
        rows = self._world.shape[1]
        result = []
        for k, (region, layer) in enumerate(zip(self.layers, self.analog_layers(noise=False), strict=True)):
            result.append(lc.build_layer(
                layer.g_pos, layer.g_neg, n_bias=layer.n_bias, v_bias=self.v_bias, r_feedback=layer.r_feedback,
                relu=layer.activation == "relu", v_max=x_rail if k == 0 else p.v_rail, v_rail=p.v_rail, h=h,
                row0=region.row0, col0=region.col0, macro_rows=rows, crossbar=CrossbarParams(),
                device=self._world.params, read_noise=p.read_noise_scale, interval=interval, t_run=duration))
        return result

    def _stream_index(self, n_steps: int, step: float, duration: float) -> np.ndarray:
        """Index of the loaded stream value held during each fine step (checks the streams fit)."""
        s = self._streams
        dt, emb = s["stream_dt"], s["embedding"]
        if emb.shape[0] * dt < duration * (1 - _REL_TOL):
            raise ValueError(f"duration {duration:g} s outlasts the DAC streams ({emb.shape[0]} x {dt:g} s)")
        hidden = emb.shape[1]
        for k, layer in enumerate(self.layers):
            if layer.activation == "relu" and layer.n_out != hidden:
                raise ValueError(f"layers[{k}] has {layer.n_out} hidden outputs but the embedding "
                                 f"streams have H = {hidden}")
        if self.params.probe_channel >= hidden:
            raise ValueError(f"CircuitParams.probe_channel {self.params.probe_channel} >= H = {hidden}")
        return np.minimum((np.arange(n_steps) * (step / dt) * (1 + _REL_TOL)).astype(int), emb.shape[0] - 1)

    def _step_streams(self, n_steps: int, step: float, duration: float) -> StepStreams:
        """DAC values held during each fine step (zero-order hold of the loaded streams)."""
        s = self._streams
        emb = s["embedding"]
        index = self._stream_index(n_steps, step, duration)
        return StepStreams(a=s["a"][index], b=s["b"][index], c=s["c"][index],
                           hidden=(emb[index] + s["condition"]).astype(np.float32),
                           probe=emb[index, self.params.probe_channel])

    # -- persistence ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Mapping, streams and parameters as numpy arrays, Python scalars and None."""
        d: dict[str, Any] = {f"param.{f.name}": getattr(self.params, f.name) for f in fields(self.params)}
        d["v_bias"] = self.v_bias
        d["monitor"] = None if self.monitor is None else np.array(self.monitor, dtype=np.int64)
        if self.layers:
            d["layer_ints"] = np.array([[getattr(lay, n) for n in _LAYER_FIELDS] for lay in self.layers],
                                       dtype=np.int64)
            d["layer_activation"] = np.array([ACTIVATIONS.index(lay.activation) for lay in self.layers],
                                             dtype=np.int64)
            d["layer_r_feedback"] = np.array([lay.r_feedback for lay in self.layers], dtype=float)
        else:
            d["layer_ints"] = d["layer_activation"] = d["layer_r_feedback"] = None
        for key in _STREAM_KEYS:
            value = self._streams[key]
            d[f"stream.{key}"] = value.copy() if isinstance(value, np.ndarray) else value
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (keys it lacks keep their defaults)."""
        defaults = asdict(CircuitParams())
        params = {name: d.get(f"param.{name}", default) for name, default in defaults.items()}
        for name in ("probe_channel", "chunk", "substeps"):
            params[name] = int(params[name])
        params["model"] = str(params["model"])
        self.params = CircuitParams(**params)
        self.v_bias = None if d.get("v_bias") is None else float(d["v_bias"])
        ints = d.get("layer_ints")
        if ints is None:
            self.layers = []
        else:
            self.layers = [
                LayerRegion(**{n: int(v) for n, v in zip(_LAYER_FIELDS, row, strict=True)},
                         activation=ACTIVATIONS[int(act)], r_feedback=float(rf))
                for row, act, rf in zip(np.asarray(ints), np.asarray(d["layer_activation"]),
                                        np.asarray(d["layer_r_feedback"]), strict=True)
            ]
        monitor = d.get("monitor")
        self.monitor = None if monitor is None else (int(monitor[0]), int(monitor[1]))
        streams = {key: d.get(f"stream.{key}") for key in _STREAM_KEYS}
        streams = {k: (np.array(v, dtype=float) if v is not None and k != "stream_dt" else v)
                   for k, v in streams.items()}
        if streams["stream_dt"] is not None:
            streams["stream_dt"] = float(streams["stream_dt"])
        self._streams = streams
