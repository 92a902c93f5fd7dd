"""The closed loop at circuit level: amplifier lags, lossy integrators, converters, crossbar parasitics.

The ideal loop (:mod:`instruments.sim.integrator`) takes every amplifier as instant and
exact. Here each stage is the part the board carries (``docs/circuit-model.md``,
"Circuit-level loop"):

- **Amplifier stages** (TIA, summing/ReLU, linear output), TI OPA2320: each a first-order
  closed-loop lag with the stage's Elmore time constant ``tau = R_f C_f + NG / omega_t``
  (feedback corner plus noise gain over the unity-gain frequency), updated exactly per
  sub-step, ``y += (target - y)(1 - exp(-h / tau))``, the step limited to ``SR h``,
  the output clamped to the stage's window (ReLU [0, v_rail], linear +-v_rail, TIA the
  op-amp rails). Offsets enter at the noise gain.
- **Miller integrators**, the same op-amp: finite DC gain makes them lossy (leak
  ``n_in / A0`` per RC), offset and bias current make them drift
  (``n_in v_os + R i_bias`` V per RC), slew rate and rails bound them.
- **DACs** (ADI AD5542A, 16 bit, +-2.5 V): every stream value quantised, held for the
  board's update interval, settling first-order to 1/2 LSB in 1 us; the gains a, b, c
  through the same resolution. The DAC waveform is the same for every trajectory, so
  it is computed once per run, as sub-step means.
- **Crossbar** (:class:`~instruments.sim.crossbar.FastCrossbar`): wire IR drop,
  access-transistor on-resistance and the device's I-V nonlinearity at the actual row
  voltages, one matrix product per layer and sub-step.
- **ADC** (TI ADS8688, 16 bit, +-2.56 V): quantises the end values the board reports.

Sub-stepping: the board's interval ``dt_step`` is cut into ``k`` sub-steps of ``h``.
Every first-order element is advanced with its exact exponential, so the result does
not depend on ``k`` once ``h`` resolves the loop's own time constants (RC over its
gains); the amplifier lags (30-90 ns) need not be resolved for that: their effect is a
delay of tau in a loop of RC. Read noise is white with a fixed PSD (variance
``sigma(T)^2 T / h`` per sub-step), so its effect on the samples is step independent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from instruments.sim.analog_network import COMPUTE_DTYPE
from instruments.sim.crossbar import CrossbarParams, FastCrossbar, region_leads
from instruments.sim.device_params import DeviceParams
from instruments.sim.integrator import NormalSource, aux_channel, n_trace_points, record_trace
from instruments.sim.opamp import OPA2320, SUMMING_C_FEEDBACK, TIA_C_FEEDBACK, OpAmpParams

#: |z| of the float32 Box-Muller normals never exceeds this (24-bit uniforms): a bound
#: that lets the loop skip a slew clip that can never act.
Z_MAX = 5.8
#: A lag whose sub-step decay exp(-h / tau) is below float32 resolution is its target.
_SETTLED = float(np.finfo(COMPUTE_DTYPE).eps) / 2


@dataclass(frozen=True)
class Converter:
    """A data converter: ``bits`` resolution over [v_low, v_high] V, settling to 1/2 LSB in ``settling`` s.

    Codes are 0 .. 2^bits - 1, offset binary: ``v = v_low + code * lsb``.
    """

    part: str
    bits: int
    v_low: float
    v_high: float
    settling: float = 0.0
    rate: float = 0.0

    @property
    def lsb(self) -> float:
        """One code step, V."""
        return (self.v_high - self.v_low) / 2**self.bits

    @property
    def tau(self) -> float:
        """First-order time constant that settles a full-scale step to 1/2 LSB in ``settling``, s."""
        return self.settling / math.log(2.0 ** (self.bits + 1)) if self.settling > 0 else 0.0

    def quantize(self, v: np.ndarray, full_scale: float | None = None) -> np.ndarray:
        """Nearest code of ``v`` (V), clipped to the range; ``full_scale`` rescales the range
        symmetrically (a gain DAC whose reference sets +-full_scale)."""
        scale = 1.0 if full_scale is None else full_scale / max(abs(self.v_low), abs(self.v_high))
        lsb, low = self.lsb * scale, self.v_low * scale
        codes = np.clip(np.round((np.asarray(v, dtype=float) - low) / lsb), 0, 2**self.bits - 1)
        return low + codes * lsb


#: Stream DACs: ADI AD5542A, 16-bit voltage-output DAC in its bipolar mode (+-VREF with a
#: 2.5 V reference), settling 1 us to 1/2 LSB (datasheet, typical), SPI at 50 MHz: a
#: 1 MHz update rate is within reach.
AD5542A = Converter("ADI AD5542A", 16, -2.5, 2.5, settling=1e-6, rate=1e6)
#: Readout ADC: TI ADS8688, 16-bit SAR, input range +-0.625 VREF = +-2.56 V (VREF 4.096 V),
#: 500 kSPS.
ADS8688 = Converter("TI ADS8688", 16, -2.56, 2.56, rate=500e3)
#: Summing-stage resistors (ohm): TIA output and DAC input, feedback; gain -1 each.
SUMMING_R = 10e3
#: Integrator inputs per integrator: a x (feedback), b y (network), c xi (noise source).
INTEGRATOR_INPUTS = 3
#: Integrator input resistor (ohm); C = RC / R.
INTEGRATOR_R = 10e3


def elmore_tau(r_f: float, c_f: float, noise_gain: np.ndarray | float, op: OpAmpParams) -> np.ndarray:
    """Time constant (s) of a closed-loop inverting stage taken as first order.

    The stage has two poles, the feedback corner R_f C_f and the op-amp's loop at
    omega_t / NG; a first-order lag with the sum of both (the Elmore delay, the first
    moment of its step response) gives a slow signal the same delay.
    """
    return r_f * c_f + np.asarray(noise_gain, dtype=float) / op.omega_t


def gain_full_scale(values: np.ndarray, dac: Converter) -> float:
    """Range of a gain DAC (a, b): the DAC's span times the least power of two covering the stream.

    A board design choice: the gain path's reference is switched in octaves, so the code
    keeps its full resolution within a factor 2.
    """
    worst = float(np.max(np.abs(values), initial=0.0))
    if worst == 0.0:
        return max(abs(dac.v_low), abs(dac.v_high))
    span = max(abs(dac.v_low), abs(dac.v_high))
    return span * 2.0 ** math.ceil(math.log2(worst / span))


def dac_substeps(values: np.ndarray, n_sub: int, interval: float, dac: Converter,
                 full_scale: float | None = None) -> np.ndarray:
    """DAC output averaged over each sub-step: (n_steps * n_sub, ...) from (n_steps, ...) stream values.

    Each value is quantised, loaded at the start of its interval and approached
    first-order (tau of the part); the first value is settled at the run start (loaded
    before it). A sub-step's mean of ``target + (y0 - target) exp(-t / tau)`` is exact,
    so the integrated DAC voltage does not depend on ``n_sub``.
    """
    target = dac.quantize(values, full_scale)
    tau = dac.tau
    if tau == 0.0:
        return np.repeat(target, n_sub, axis=0)
    h = interval / n_sub
    phi = math.exp(-interval / tau)
    # y0[k+1] = phi y0[k] + (1 - phi) target[k], y0[0] = target[0]; a plain loop: once per
    # run over the stream, and scipy.signal would cost seconds of import on a cold start
    start = np.empty_like(target)
    start[0] = target[0]
    for k in range(1, target.shape[0]):
        start[k] = target[k - 1] + phi * (start[k - 1] - target[k - 1])
    j = np.arange(n_sub)
    gain = np.exp(-j * h / tau) * (tau / h) * -math.expm1(-h / tau)          # (n_sub,)
    shape = (1, n_sub) + (1,) * (target.ndim - 1)
    out = target[:, None] + (start - target)[:, None] * gain.reshape(shape)
    return out.reshape((target.shape[0] * n_sub,) + target.shape[1:])


@dataclass(frozen=True)
class CircuitLayer:
    """One layer at circuit level, ready for a sub-step.

    crossbar: region with bias rows folded and pairs formed, scaled to the TIA output
        (V: ``-R_f I`` plus the TIA's output offset).
    s2, var_b: read-noise variance per squared row voltage (n_out, n_in) and of the bias
        rows (n_out, 1) at the TIA output, per sub-step (V^2), or None.
    alpha_tia, alpha_sum: (n_out, 1) lag factors 1 - exp(-h / tau), or None when settled.
    sum_offset: (n_out,) V, the summing stage's own offset at its noise gain.
    relu: activation; v_rail: activation clamp (V); tia_rail: op-amp output rail (V).
    slew_tia, slew_sum: largest step (V) a sub-step allows, or None when it cannot act.
    """

    crossbar: FastCrossbar
    s2: np.ndarray | None
    var_b: np.ndarray | None
    alpha_tia: np.ndarray | None
    alpha_sum: np.ndarray | None
    sum_offset: np.ndarray
    relu: bool
    v_rail: float
    tia_rail: float
    slew_tia: float | None
    slew_sum: float | None

    @property
    def n_out(self) -> int:
        return self.crossbar.n_columns


def _lag_factor(tau: np.ndarray, h: float) -> np.ndarray | None:
    decay = np.exp(-h / tau)
    if np.all(decay < _SETTLED):
        return None
    return (-np.expm1(-h / tau)).astype(COMPUTE_DTYPE).reshape(-1, 1)


def build_layer(g_pos: np.ndarray, g_neg: np.ndarray, *, n_bias: int, v_bias: float, r_feedback: float,
                relu: bool, v_max: float, v_rail: float, h: float, row0: int, col0: int, macro_rows: int,
                crossbar: CrossbarParams, device: DeviceParams, opamp: OpAmpParams = OPA2320,
                sigma_pos: np.ndarray | None = None, sigma_neg: np.ndarray | None = None,
                noise_window: float = 1e-6) -> CircuitLayer:
    """A mapped region as the circuit computes it with sub-step ``h`` (s).

    g_pos, g_neg: (n_rows, n_out) S as write-verify measured them through the access
    transistor (the world's conductances, see below); the devices behind them are
    ``g / (1 - g r_on)``. sigma_pos, sigma_neg: read-noise std of each cell over
    ``noise_window`` (s), taken as white: per sub-step variance ``sigma^2 T / h``.
    """
    n_rows, n_out = g_pos.shape
    # The world's G is the value a verify read reports. Real write-verify reads through the
    # access transistor, so it programs the device to g_dev with g_dev / (1 + g_dev r_on) = g.
    g_meas = np.hstack([g_pos, g_neg])
    g_dev = g_meas / (1.0 - g_meas * crossbar.r_on)
    lead_row, lead_col = region_leads(row0, col0, n_rows, macro_rows, crossbar)
    fc = FastCrossbar.build(g_dev, v_max, crossbar, device, lead_row=lead_row, lead_col=lead_col)
    if n_bias:
        fc = fc.fold_rows(slice(n_rows - n_bias, n_rows), v_bias)
    fc = fc.differential(n_out)
    # TIA: noise gain 1 + R_f sum(G+ column) (the G- column sits on the mirror's input)
    ng_tia = 1.0 + r_feedback * g_pos.sum(axis=0)
    tia_offset = opamp.v_offset * ng_tia + r_feedback * opamp.i_bias
    scaled = FastCrossbar(-r_feedback * fc.weights, -r_feedback * fc.offset + tia_offset, fc.v_max, fc.order,
                          COMPUTE_DTYPE)
    ng_sum = 1.0 + 2.0                      # two 10 kohm inputs on a 10 kohm feedback
    sum_offset = np.full(n_out, opamp.v_offset * ng_sum, dtype=COMPUTE_DTYPE)
    s2 = var_b = None
    if sigma_pos is not None and sigma_neg is not None:
        white = noise_window / h             # fixed PSD: the variance of a mean goes as 1 / h
        s2_all = white * r_feedback**2 * (sigma_pos**2 + sigma_neg**2)
        n_in = n_rows - n_bias
        s2 = np.ascontiguousarray(s2_all[:n_in].T, dtype=COMPUTE_DTYPE)
        var_b = (v_bias**2 * s2_all[n_in:].sum(axis=0)).astype(COMPUTE_DTYPE).reshape(-1, 1)
    tau_tia = elmore_tau(r_feedback, TIA_C_FEEDBACK, ng_tia, opamp)
    tau_sum = elmore_tau(SUMMING_R, SUMMING_C_FEEDBACK, ng_sum, opamp)
    tia_rail = min(opamp.v_out_high, -opamp.v_out_low)
    step = opamp.slew_rate * h
    return CircuitLayer(
        crossbar=scaled, s2=s2, var_b=var_b,
        alpha_tia=_lag_factor(tau_tia, h), alpha_sum=_lag_factor(np.array([tau_sum]), h),
        sum_offset=sum_offset, relu=relu, v_rail=v_rail, tia_rail=tia_rail,
        slew_tia=step if step < 2 * tia_rail else None, slew_sum=step if step < 2 * v_rail else None,
    )


@dataclass(frozen=True)
class CircuitStreams:
    """DAC outputs per sub-step (the mean over it), n_sub_total rows.

    a, b: (n,) gains; c: (n,) V noise gain; hidden: (n, H) V into every ReLU layer's
    summing stage; probe: (n,) V the probed embedding DAC.
    """

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    hidden: np.ndarray
    probe: np.ndarray


@dataclass(frozen=True)
class CircuitSettings:
    """Sub-step h over RC; k sub-steps per board interval; trace decimation in board
    intervals; integrator leak per RC (n_in / A0), drift (V per RC), output rail (V) and
    largest step (V per sub-step, None when the slew rate cannot act); trigger level;
    trajectories per block."""

    h: float
    k: int
    every: int
    leak: float
    drift: float
    x_rail: float
    slew: float | None
    trigger_level: float
    chunk: int


def integrator_constants(rc: float, opamp: OpAmpParams = OPA2320) -> tuple[float, float]:
    """Leak (per RC, dimensionless) and drift (V per RC) of the board's Miller integrator.

    Finite gain: pole 1 / (A0 R_par C) with R_par = R / n_in, i.e. a leak n_in / A0 per RC.
    Offset and bias: dv/dt = v_os / (R_par C) + i_bias / C, i.e. n_in v_os + R i_bias per RC.
    """
    leak = INTEGRATOR_INPUTS / opamp.a0
    drift = INTEGRATOR_INPUTS * opamp.v_offset + INTEGRATOR_R * opamp.i_bias
    return leak, drift


def integrate_circuit(layers: Sequence[CircuitLayer], x0: np.ndarray, streams: CircuitStreams,
                      settings: CircuitSettings, sde: bool, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the circuit-level loop from ``x0`` (N, D) V; same returns as ``integrator.integrate``."""
    n_traj, dim = x0.shape
    n_steps = streams.a.shape[0] // settings.k
    n_points = n_trace_points(n_steps, settings.every)
    end = np.empty_like(x0, dtype=float)
    traces = np.empty((n_traj, dim + 2, n_points), dtype=COMPUTE_DTYPE)
    for start in range(0, n_traj, settings.chunk):
        block = slice(start, min(start + settings.chunk, n_traj))
        end[block] = _block(layers, x0[block], streams, settings, sde, rng, traces[block], n_steps)
    saturated = np.any(np.abs(traces[:, :dim, :]) >= settings.x_rail, axis=(1, 2))
    return end, traces, saturated


class _Stage:
    """State of one lagged amplifier output over a block, (n_out, n) float32."""

    def __init__(self, n_out: int, n: int, alpha: np.ndarray | None, slew: float | None) -> None:
        self.y = np.zeros((n_out, n), dtype=COMPUTE_DTYPE)
        self.alpha, self.slew = alpha, slew
        self._d = np.empty_like(self.y) if alpha is not None or slew is not None else None

    def follow(self, target: np.ndarray, settle: bool) -> np.ndarray:
        """Advance one sub-step toward ``target`` (exact first-order, slew limited); ``settle``
        jumps to it (the stages settled before the run switch opens)."""
        if settle or self._d is None:
            self.y[...] = target
            return self.y
        d = self._d
        np.subtract(target, self.y, out=d)
        if self.alpha is not None:
            d *= self.alpha
        if self.slew is not None:
            np.clip(d, -self.slew, self.slew, out=d)
        self.y += d
        return self.y


def layer_stages(layer: CircuitLayer, n: int) -> tuple[_Stage, _Stage]:
    """The lagged TIA and summing-stage outputs of ``layer`` for ``n`` trajectories, at 0 V."""
    return (_Stage(layer.n_out, n, layer.alpha_tia, layer.slew_tia),
            _Stage(layer.n_out, n, layer.alpha_sum, layer.slew_sum))


def layer_substep(layer: CircuitLayer, u: np.ndarray, stages: tuple[_Stage, _Stage], hidden: np.ndarray | None,
                  settle: bool, work: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
    """One sub-step of a layer's amplifiers; returns its outputs (n_out, n) V (the summing lag's state).

    u: row voltages (n_rows, n) V held over the sub-step; stages: from :func:`layer_stages`;
    hidden: DAC input of a ReLU layer's summing stages, broadcast to (n_out, n) V (unused
    by a linear layer); settle: jump to the targets (first sub-step); work: (n_out, n)
    float32 scratch; noise: read noise at the TIA output (n_out, n) V, or None.
    TIA target = crossbar + noise, clipped to the op-amp rails, followed by the TIA lag;
    summing target = act(-V_tia + offset + hidden), clamped, followed by its lag.
    """
    tia, out = stages
    t = layer.crossbar.column_currents_t(u, out=work)        # TIA target, V
    if noise is not None:
        t += noise
    np.clip(t, -layer.tia_rail, layer.tia_rail, out=t)
    v_tia = tia.follow(t, settle)
    # summing stage: -V_tia + DAC input + its offset, then the clamp
    np.negative(v_tia, out=t)
    t += layer.sum_offset[:, None]
    if layer.relu:
        t += hidden
    np.maximum(t, 0.0 if layer.relu else -layer.v_rail, out=t)
    np.minimum(t, layer.v_rail, out=t)
    return out.follow(t, settle)


def integrator_substep(x: np.ndarray, y: np.ndarray, a: float, b: float, s: CircuitSettings, dx: np.ndarray,
                       noise: np.ndarray | None = None) -> np.ndarray:
    """One sub-step of the Miller integrators, in place on ``x`` (dim, n) V; returns x.

    RC dx/dtau = (a - leak) x + b y + drift over ``s.h`` (= h / RC), plus ``noise`` (the
    c xi input's increment, V, or None); the step limited to ``s.slew``, x clipped to
    the rails. y: the last layer's outputs (dim, n) V; dx: scratch like x.
    """
    np.multiply(x, s.h * (a - s.leak), out=dx)
    dx += (s.h * b) * y
    dx += s.h * s.drift
    if noise is not None:
        dx += noise
    if s.slew is not None:
        np.clip(dx, -s.slew, s.slew, out=dx)
    x += dx
    np.clip(x, -s.x_rail, s.x_rail, out=x)
    return x


def _block(layers: Sequence[CircuitLayer], x0: np.ndarray, st: CircuitStreams, s: CircuitSettings, sde: bool,
           rng: np.random.Generator, traces: np.ndarray, n_steps: int) -> np.ndarray:
    n, dim = x0.shape
    x = np.array(x0.T, dtype=float)
    np.clip(x, -s.x_rail, s.x_rail, out=x)
    widths = [layer.n_out if layer.s2 is not None else 0 for layer in layers]
    n_net = sum(widths)
    n_normals = n_net + (dim if sde else 0)
    normals = NormalSource(rng, n, n_normals) if n_normals else None
    stages = [layer_stages(layer, n) for layer in layers]
    target = [np.empty((layer.n_out, n), dtype=COMPUTE_DTYPE) for layer in layers]
    sq = [np.empty((layer.crossbar.n_rows, n), dtype=COMPUTE_DTYPE) if layer.s2 is not None else None
          for layer in layers]
    std = [np.empty((layer.n_out, n), dtype=COMPUTE_DTYPE) if layer.s2 is not None else None for layer in layers]
    v_in = np.empty((dim, n), dtype=COMPUTE_DTYPE)
    sqrt_h = math.sqrt(s.h)
    aux_scale = 1.0 / sqrt_h
    dx = np.empty_like(x)
    trace_aux = np.zeros(n, dtype=COMPUTE_DTYPE)
    point = 0
    for i in range(n_steps * s.k):
        z_all = normals.draw() if normals is not None else None
        v_in[...] = x
        u = v_in
        row = 0
        for k, layer in enumerate(layers):
            noise = None
            if layer.s2 is not None:
                np.multiply(u, u, out=sq[k])
                np.matmul(layer.s2, sq[k], out=std[k])
                std[k] += layer.var_b
                np.sqrt(std[k], out=std[k])
                std[k] *= z_all[row:row + layer.n_out]
                noise = std[k]
                row += layer.n_out
            hidden = st.hidden[i][:, None] if layer.relu else None
            u = layer_substep(layer, u, stages[k], hidden, i == 0, target[k], noise)
        z_sde = z_all[n_net:n_normals] if sde else None
        if i % (s.every * s.k) == 0:
            aux_channel(trace_aux, z_sde[0] if sde else None, st.c[i] * aux_scale, s.trigger_level)
            record_trace(traces, point, x, st.probe[i], trace_aux)
            point += 1
        integrator_substep(x, u, st.a[i], st.b[i], s, dx, (st.c[i] * sqrt_h) * z_sde if sde else None)
    if n_steps % s.every == 0:
        record_trace(traces, point, x, st.probe[-1], trace_aux)
    return x.T
