"""The closed loop at circuit level: amplifier stage dynamics, lossy integrators, converters, crossbar parasitics.

The ideal loop (:mod:`instruments.sim.integrator`) takes every amplifier as instant and
exact. Here each stage is the part the board carries (``docs/circuit-model.md``,
"Circuit-level loop"):

- **Amplifier stages** (TIA, summing/ReLU, linear output), TI OPA2320: each the closed-loop
  two-pole response of :class:`~instruments.sim.opamp.InvertingStage` (single-pole op-amp,
  feedback R_f || C_f, node capacitance), ``y'' + a1 y' + a0 y = a0 u`` toward its settled
  output ``u`` (:func:`stage_poles`), with ``u`` held over each sub-step and the state
  ``(y, h y')`` advanced by its exact 2x2 transition; the stage passes on its output's mean
  over the sub-step (exact too), so chained stages keep their timing and the integrator
  collects the exact charge. The step is limited to ``SR h``; the summing stage's output
  is held on its clamps (ReLU [0, v_rail], linear +-v_rail) without wind-up, leaving them
  when its node is back at virtual ground; the TIA's target is clipped to the op-amp
  rails. Offsets enter at the noise gain.
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
Every linear element is advanced with its exact exponential (the amplifier stages'
2x2 transitions, the DACs' settling), so the result does not depend on ``k`` once ``h``
resolves the loop's own time constants (RC over its gains); the amplifier stages (delays
of 46 ns to a few 100 ns) need not be resolved for that: what the loop sees of them is
their mean over each sub-step, which carries their delay exactly.
Read noise is the cells' spectrum (:mod:`instruments.sim.loop_noise`):
white thermal and shot noise with a fixed PSD (variance ``S / 2h`` per sub-step) and 1/f
noise correlated over each trajectory's run (an exact Ornstein-Uhlenbeck sum stepped
once per board interval), so its effect on the samples is step independent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from instruments.sim.analog_network import COMPUTE_DTYPE
from instruments.sim.crossbar import CrossbarParams, FastCrossbar, region_leads
from instruments.sim.device_params import DeviceParams
from instruments.sim.integrator import NormalSource, aux_channel, n_trace_points, normal_levels, record_trace
from instruments.sim.loop_noise import BlockNoise, LayerNoise, layer_noise
from instruments.sim.opamp import OPA2320, SUMMING_C_FEEDBACK, TIA_C_FEEDBACK, OpAmpParams


def z_max() -> float:
    """|z| of :class:`NormalSource`'s normals never exceeds this (its table's last level, 4.325):
    a bound that lets the loop skip a slew clip that can never act."""
    return float(np.max(np.abs(normal_levels())))


#: A stage whose sub-step transition e^{A h} is below float32 resolution ends each sub-step on its target.
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
    """Delay (s) a closed-loop inverting stage gives a slow signal: ``a1 / a0`` of :func:`stage_poles`.

    The sum of the feedback corner R_f C_f and the op-amp's loop NG / omega_t (the
    Elmore delay, the first moment of the stage's impulse response).
    """
    return r_f * c_f + np.asarray(noise_gain, dtype=float) / op.omega_t


def stage_poles(r_f: float, c_f: float, noise_gain: np.ndarray | float,
                op: OpAmpParams) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients ``(a0, a1)`` (1/s^2, 1/s) of an inverting stage as ``y'' + a1 y' + a0 y = a0 u``.

    ``u`` is the stage's settled output (its target), ``y`` the op-amp output. From the
    equations of :class:`~instruments.sim.opamp.InvertingStage` (single-pole op-amp,
    node capacitance ``C_t = c_in + C_f``, feedback ``R_f || C_f``, noise gain
    ``NG = 1 + R_f G`` with G the other conductances on the node), linear part: the
    transfer function is ``g_f omega_t / (C_t s^2 + (g_f NG + omega_p C_t + omega_t C_f) s
    + g_f (omega_p NG + omega_t))``, with ``g_f = 1 / R_f``. Its DC gain ``1 / (1 + NG / A0)``
    is taken as 1 (an error below 1e-5).
    """
    ng = np.asarray(noise_gain, dtype=float)
    g_f = 1.0 / r_f
    c_t = op.c_in + c_f
    a1 = (g_f * ng + op.omega_p * c_t + op.omega_t * c_f) / c_t
    a0 = g_f * (op.omega_p * ng + op.omega_t) / c_t
    return a0, a1


def held_node_rate(r_f: float, c_f: float, noise_gain: np.ndarray | float, op: OpAmpParams) -> np.ndarray:
    """Rate (1/s) at which the node of a stage whose output is held on a clamp follows its
    inputs: ``NG / (R_f C_t)`` with ``C_t = c_in + C_f`` (the feedback capacitor does not
    move), what delays the output's release from the clamp (37 ns for the summing stage)."""
    return np.asarray(noise_gain, dtype=float) / (r_f * (op.c_in + c_f))


@dataclass(frozen=True)
class StageStep:
    """Exact sub-step update of a two-pole stage ``y'' + a1 y' + a0 y = a0 u``, target ``u`` held.

    State: the output ``y`` and ``w = h dy/dt`` (V), here as deviations ``d = y - u``:
    ``y_end - y = q11 d + p12 w``, ``w_end = p21 d + p22 w``, and the mean of ``y`` over
    the sub-step ``u + m1 d + m2 w``. Coefficients (n_out, 1) float32, or a float when the
    same for every output. ``transition`` is
    None when it is below float32 resolution (the stage reaches its target within the
    sub-step: ``y_end = u``, ``w = 0``); ``mean`` (m1, m2) None when the mean is the target.
    slew: largest |y_end - y| (and |w|) per sub-step, V, None when it cannot act.
    low, high: output window (V) of a clamped stage (an ideal output limiter), or None.
    hold: with a window and a transition, ``(e_b, g_b, k_b)`` (n_out, 1): while the output
        is held on a clamp, ``w`` is the op-amp's would-be rate, which follows its node back
        toward virtual ground, ``w_end = e_b w - g_b d``, and settles at ``k_b (u - y)``;
        the output leaves the clamp when that rate turns inward. None otherwise.
    """

    transition: tuple[np.ndarray | float, ...] | None
    mean: tuple[np.ndarray | float, np.ndarray | float] | None
    slew: float | None
    low: float | None = None
    high: float | None = None
    hold: tuple[np.ndarray | float, ...] | None = None


def stage_step(a0: np.ndarray, a1: np.ndarray, h: float, slew: float | None, low: float | None = None,
               high: float | None = None, hold_rate: np.ndarray | float | None = None) -> StageStep:
    """The exact sub-step (``h`` s) coefficients of the stage ``y'' + a1 y' + a0 y = a0 u``.

    ``e^{A h}`` of ``A = [[0, 1], [-a0, -a1]]`` in closed form (Cayley-Hamilton with the
    eigenvalues ``lambda = mu +- delta``, complex when the stage rings), its mean over
    the sub-step from ``A^-1 (e^{A h} - I) / h``; float64, then float32. A clamped stage
    (``low``, ``high``) needs ``hold_rate`` (1/s, :func:`held_node_rate`): with the output
    held, ``w' = a0 h (u - y) - hold_rate w``, advanced exactly.
    """
    a0 = np.atleast_1d(np.asarray(a0, dtype=float))
    a1 = np.broadcast_to(np.asarray(a1, dtype=float), a0.shape)
    mu = -0.5 * a1
    delta = np.sqrt((mu * mu - a0).astype(complex))
    e_plus, e_minus = np.exp((mu + delta) * h), np.exp((mu - delta) * h)
    c = (0.5 * (e_plus + e_minus)).real                             # e^{mu h} cosh(delta h)
    small = np.abs(delta * h) < 1e-4
    safe = np.where(small, 1.0, delta)
    s = np.where(small, np.exp(mu * h) * h * (1.0 + (delta * h) ** 2 / 6.0),
                 (e_plus - e_minus) / (2.0 * safe)).real             # e^{mu h} sinh(delta h) / delta
    phi11, phi12, phi21, phi22 = c + 0.5 * a1 * s, s, -a0 * s, c - 0.5 * a1 * s
    m1 = (-a1 * (phi11 - 1.0) - phi21) / (a0 * h)
    m2 = (-a1 * phi12 - (phi22 - 1.0)) / (a0 * h)

    def column(v: np.ndarray) -> np.ndarray | float:
        v = np.asarray(v, dtype=COMPUTE_DTYPE).reshape(-1, 1)
        return float(v[0, 0]) if np.all(v == v[0, 0]) else v       # a scalar is the faster product

    transition = (phi11 - 1.0, phi12 / h, phi21 * h, phi22)
    settled = all(np.all(np.abs(v) < _SETTLED) for v in (phi11, phi12 / h, phi21 * h, phi22))
    if (low is None) != (high is None) or (low is not None and hold_rate is None):
        raise ValueError("a clamped stage needs low, high and hold_rate")
    hold = None
    if low is not None and not settled:
        rate = np.broadcast_to(np.asarray(hold_rate, dtype=float), a0.shape)
        e_b = np.exp(-rate * h)
        k_b = a0 * h / rate
        hold = (column(e_b), column((1.0 - e_b) * k_b), column(k_b))
    return StageStep(
        transition=None if settled else tuple(column(v) for v in transition),
        mean=None if np.all(np.abs(m1) < _SETTLED) and (settled or np.all(np.abs(m2 / h) < _SETTLED))
        else (column(m1), column(m2 / h)),
        slew=slew, low=None if low is None else float(np.float32(low)),
        high=None if high is None else float(np.float32(high)), hold=hold)


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
    noise: the read noise at the TIA outputs (:class:`~instruments.sim.loop_noise.LayerNoise`),
        or None.
    tia_step, sum_step: the exact sub-step updates of the TIAs' and the summing stages'
        two-pole responses (:class:`StageStep`; slew limit, summing stage's output window).
    sum_offset: (n_out,) V, the summing stage's own offset at its noise gain.
    relu: activation; v_rail: activation clamp (V); tia_rail: op-amp output rail (V).
    """

    crossbar: FastCrossbar
    noise: LayerNoise | None
    tia_step: StageStep
    sum_step: StageStep
    sum_offset: np.ndarray
    relu: bool
    v_rail: float
    tia_rail: float

    @property
    def n_out(self) -> int:
        return self.crossbar.n_columns


def build_layer(g_pos: np.ndarray, g_neg: np.ndarray, *, n_bias: int, v_bias: float, r_feedback: float,
                relu: bool, v_max: float, v_rail: float, h: float, row0: int, col0: int, macro_rows: int,
                crossbar: CrossbarParams, device: DeviceParams, opamp: OpAmpParams = OPA2320,
                read_noise: float = 0.0, interval: float | None = None, t_run: float | None = None
                ) -> CircuitLayer:
    """A mapped region as the circuit computes it with sub-step ``h`` (s).

    g_pos, g_neg: (n_rows, n_out) S as write-verify measured them through the access
    transistor (the world's conductances, see below); the devices behind them are
    ``g / (1 - g r_on)``. read_noise: multiplier (>= 0) of the std of the cells' read
    noise (the spectrum of ``device``; 0: none), for runs of ``t_run`` s whose board
    interval is ``interval`` s (default ``h``; :func:`~instruments.sim.loop_noise.layer_noise`).
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
    noise = None
    if read_noise > 0:
        if t_run is None:
            raise ValueError("read noise needs the run's duration t_run (s)")
        noise = layer_noise(g_pos, g_neg, n_bias=n_bias, v_bias=v_bias, r_feedback=r_feedback, device=device,
                            scale=read_noise, h=h, interval=h if interval is None else interval, t_run=t_run)
    tia_rail = min(opamp.v_out_high, -opamp.v_out_low)
    step = opamp.slew_rate * h
    tia_step = stage_step(*stage_poles(r_feedback, TIA_C_FEEDBACK, ng_tia, opamp), h,
                          step if step < 2 * tia_rail else None)
    sum_step = stage_step(*stage_poles(SUMMING_R, SUMMING_C_FEEDBACK, ng_sum, opamp), h,
                          step if step < 2 * v_rail else None, 0.0 if relu else -v_rail, v_rail,
                          held_node_rate(SUMMING_R, SUMMING_C_FEEDBACK, ng_sum, opamp))
    return CircuitLayer(
        crossbar=scaled, noise=noise,
        tia_step=tia_step, sum_step=sum_step, sum_offset=sum_offset, relu=relu, v_rail=v_rail, tia_rail=tia_rail,
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
    trajectories per block; the integrators' rate factor from the op-amp's bandwidth
    (:func:`integrator_gain`); the (layer, node) on the monitor output (the last trace
    channel: that node's summing-stage output, its mean over the sub-step), or None."""

    h: float
    k: int
    every: int
    leak: float
    drift: float
    x_rail: float
    slew: float | None
    trigger_level: float
    chunk: int
    gain: float = 1.0
    monitor: tuple[int, int] | None = None


def integrator_gain(rc: float, opamp: OpAmpParams = OPA2320) -> float:
    """Closed-loop rate factor of the Miller integrator from the op-amp's finite bandwidth.

    With a single-pole op-amp (A = omega_t / s) the integrator's transfer is
    -1 / (s R_par C) / (1 + s / omega_t + 1 / (omega_t R_par C)): every input integrates
    slower by 1 / (1 + n_in / (omega_t RC)) (R_par = R / n_in, C = RC / R) and is delayed
    by ~1 / omega_t (8 ns; not modelled). 2.3 % at RC = 1 us, 19 % at 100 ns, 2.4e-5 at 1 ms.
    """
    return 1.0 / (1.0 + INTEGRATOR_INPUTS / (opamp.omega_t * rc))


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
    """State of one amplifier stage over a block: output ``y`` and ``w = h dy/dt``, (n_out, n) float32 V."""

    def __init__(self, n_out: int, n: int, step: StageStep) -> None:
        self.step = step
        self.y = np.zeros((n_out, n), dtype=COMPUTE_DTYPE)
        self.w = np.zeros_like(self.y) if step.transition is not None else None
        self.mean = np.empty_like(self.y) if step.mean is not None else self.y
        self._d, self._t, self._s = (np.empty_like(self.y) for _ in range(3))

        def full(c: np.ndarray | float) -> np.ndarray | float:
            # per-output coefficients spread over the block: numpy's (n_out, 1) broadcast is ~2x slower
            return c if isinstance(c, float) else np.ascontiguousarray(np.broadcast_to(c, self.y.shape))

        self._mean_c = None if step.mean is None else tuple(full(c) for c in step.mean)
        self._transition = None if step.transition is None else tuple(full(c) for c in step.transition)
        self._hold_c = None if step.hold is None else tuple(full(c) for c in step.hold)
        if step.hold is not None:
            self._held, self._mask = np.empty_like(self.y), np.empty_like(self.y)
            self._stay, self._b1, self._b2 = (np.empty(self.y.shape, dtype=bool) for _ in range(3))

    def advance(self, target: np.ndarray, settle: bool) -> np.ndarray:
        """One sub-step with ``target`` (the stage's settled output, V, before any clamp; the
        buffer may be overwritten) held over it: the exact two-pole response, slew limited,
        held on the stage's clamps; returns the output's mean over the sub-step (a buffer of
        the stage). ``settle`` jumps to the settled state (the stages settled before the run
        switch opens)."""
        st, y, w = self.step, self.y, self.w
        if st.low is not None and (settle or st.transition is None):
            if settle and st.hold is not None:          # held on a clamp: the node off virtual ground
                np.clip(target, st.low, st.high, out=y)
                np.subtract(target, y, out=w)
                w *= self._hold_c[2]
            np.clip(target, st.low, st.high, out=target)
        if settle or st.mean is None:
            y[...] = target
            if w is not None and st.hold is None:
                w[...] = 0.0
            if self.mean is not y:
                self.mean[...] = target
            return self.mean
        d, t, mean = self._d, self._t, self.mean
        m1, m2 = self._mean_c
        np.subtract(y, target, out=d)
        np.multiply(d, m1, out=mean)
        if st.transition is None:                 # at its target within the sub-step (no w)
            mean += target
            if st.slew is None:
                y[...] = target
            else:
                np.negative(d, out=d)
                np.clip(d, -st.slew, st.slew, out=d)
                y += d
            return mean
        q11, p12, p21, p22 = self._transition
        s = self._s
        np.multiply(w, m2, out=t)
        mean += t
        mean += target
        if st.hold is not None:                   # the would-be rate while the output is held
            np.multiply(w, self._hold_c[0], out=self._held)
            np.multiply(d, self._hold_c[1], out=s)
            self._held -= s
        np.multiply(w, p12, out=t)
        w *= p22
        np.multiply(d, p21, out=s)
        w += s
        d *= q11
        d += t                                    # y_end - y
        if st.slew is not None:
            np.clip(d, -st.slew, st.slew, out=d)
            np.clip(w, -st.slew, st.slew, out=w)
        if st.hold is None:
            y += d
            return mean
        mask = self._hold_mask()
        np.subtract(1.0, mask, out=t)
        d *= t                                    # held outputs do not move
        y += d
        np.clip(y, st.low, st.high, out=y)
        np.clip(mean, st.low, st.high, out=mean)
        np.subtract(y, mean, out=t)               # a held output's mean is its clamp
        t *= mask
        mean += t
        return mean

    def _hold_mask(self) -> np.ndarray:
        """1.0 where the output sits on a clamp and its would-be rate still points out (it
        stays, no wind-up; its ``w`` becomes that rate), else 0.0."""
        st, y, held = self.step, self.y, self._held
        stay, b1, b2 = self._stay, self._b1, self._b2
        np.less_equal(y, st.low, out=stay)
        np.less_equal(held, 0.0, out=b1)
        stay &= b1
        np.greater_equal(y, st.high, out=b1)
        np.greater_equal(held, 0.0, out=b2)
        b1 &= b2
        stay |= b1
        mask = self._mask
        mask[...] = stay
        held -= self.w                            # w += mask (held - w)
        held *= mask
        self.w += held
        return mask


def layer_stages(layer: CircuitLayer, n: int) -> tuple[_Stage, _Stage]:
    """The TIA and summing-stage states of ``layer`` for ``n`` trajectories, at 0 V."""
    return _Stage(layer.n_out, n, layer.tia_step), _Stage(layer.n_out, n, layer.sum_step)


def layer_substep(layer: CircuitLayer, u: np.ndarray, stages: tuple[_Stage, _Stage], hidden: np.ndarray | None,
                  settle: bool, work: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
    """One sub-step of a layer's amplifiers; returns its outputs' means over it (n_out, n) V.

    u: row voltages (n_rows, n) V held over the sub-step; stages: from :func:`layer_stages`;
    hidden: DAC input of a ReLU layer's summing stages, broadcast to (n_out, n) V (unused
    by a linear layer); settle: jump to the targets (first sub-step); work: (n_out, n)
    float32 scratch; noise: read noise at the TIA output (n_out, n) V, or None.
    TIA target = crossbar + noise, clipped to the op-amp rails, held over the sub-step into
    the TIA's two-pole response; summing target = -V_tia + offset + hidden, with V_tia the
    TIA output's mean over the sub-step, into the summing stage's response, whose output
    the activation's clamp holds (ReLU [0, v_rail], linear [-v_rail, v_rail]).
    Passing means (not end values) on keeps every signal centred on its sub-step: no lead
    of h/2 per chained stage, and the integrator collects each stage's exact charge.
    """
    tia, out = stages
    t = layer.crossbar.column_currents_t(u, out=work)        # TIA target, V
    if noise is not None:
        t += noise
    np.clip(t, -layer.tia_rail, layer.tia_rail, out=t)
    v_tia = tia.advance(t, settle)
    # summing stage: -V_tia + DAC input + its offset, then the clamp
    np.negative(v_tia, out=t)
    t += layer.sum_offset[:, None]
    if layer.relu:
        t += hidden
    return out.advance(t, settle)                            # clamped there: ReLU [0, v_rail], linear +-v_rail


def integrator_substep(x: np.ndarray, y: np.ndarray, a: float, b: float, s: CircuitSettings, dx: np.ndarray,
                       noise: np.ndarray | None = None) -> np.ndarray:
    """One sub-step of the Miller integrators, in place on ``x`` (dim, n) V; returns x.

    RC dx/dtau = (a - leak) x + b y + drift over ``s.h`` (= h / RC), plus ``noise`` (the
    c xi input's increment, V, or None), all times ``s.gain`` (:func:`integrator_gain`); the
    step limited to ``s.slew``, x clipped to the rails. y: the last layer's outputs (dim, n)
    V; dx: scratch like x.
    """
    np.multiply(x, s.h * (a - s.leak), out=dx)
    dx += (s.h * b) * y
    dx += s.h * s.drift
    if noise is not None:
        dx += noise
    if s.gain != 1.0:  # the op-amp's bandwidth slows every input alike (integrator_gain)
        dx *= s.gain
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
    read = BlockNoise([layer.noise for layer in layers], n, rng) if any(lay.noise for lay in layers) else None
    normals = NormalSource(rng, n, dim) if sde else None
    stages = [layer_stages(layer, n) for layer in layers]
    target = [np.empty((layer.n_out, n), dtype=COMPUTE_DTYPE) for layer in layers]
    v_in = np.empty((dim, n), dtype=COMPUTE_DTYPE)
    sqrt_h = math.sqrt(s.h)
    aux_scale = 1.0 / sqrt_h
    dx = np.empty_like(x)
    trace_aux = np.zeros(n, dtype=COMPUTE_DTYPE)
    monitor = None if s.monitor is None else stages[s.monitor[0]][1].mean[s.monitor[1]]
    point = 0
    for i in range(n_steps * s.k):
        v_in[...] = x
        u = v_in
        for k, layer in enumerate(layers):
            noise = None
            if layer.noise is not None:
                if i % s.k == 0:
                    read.interval(k, u)
                noise = read.substep(k)
            hidden = st.hidden[i][:, None] if layer.relu else None
            u = layer_substep(layer, u, stages[k], hidden, i == 0, target[k], noise)
        z_sde = normals.draw() if sde else None
        if i % (s.every * s.k) == 0:
            aux_channel(trace_aux, z_sde[0] if sde else None, st.c[i] * aux_scale, s.trigger_level, monitor)
            record_trace(traces, point, x, st.probe[i], trace_aux)
            point += 1
        integrator_substep(x, u, st.a[i], st.b[i], s, dx, (st.c[i] * sqrt_h) * z_sde if sde else None)
    if n_steps % s.every == 0:
        record_trace(traces, point, x, st.probe[-1], trace_aux)
    return x.T
