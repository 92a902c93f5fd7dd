"""Closed-loop integrators: fixed-step Euler(-Maruyama) over many trajectories at once.

The integrator voltages x (n_traj, D) V obey (``docs/circuit-model.md``)::

    RC dx/dtau = a(tau) x + b(tau) y(x, tau) + c(tau) xi(tau)

with y the analog network's output (V), a, b dimensionless gains and c (V) the noise
gain, all held by DACs; xi is unit white noise in the normalised time s = tau / RC.
One step of h = dt / RC::

    x <- x + h (a x + b y) + c sqrt(h) z,      z ~ N(0, 1) per trajectory and integrator

then the op-amp rails bound x to [-x_rail, +x_rail]. Euler, not Heun: the network costs
one evaluation per step (Heun two), the step is fine (h << 1, global error ~ h / 2 of the
decay), and with additive noise Euler-Maruyama already has strong order 1.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from instruments.sim.analog_network import COMPUTE_DTYPE, BlockNetwork, CompiledLayer


class NormalSource:
    """Standard normals into a reused (n, k) float32 buffer: the normal quantiles of 2^16
    equiprobable levels, indexed by the bit generator's raw 64-bit words (four per word).

    About 2.5 times faster than Box-Muller on float32 uniforms and 4.5 times faster than
    ``Generator.standard_normal`` (ziggurat): a normal costs one table look-up. Every level
    has probability 2^-16, so the law is the Gaussian's to 16 bits of probability; the
    table is scaled to unit variance exactly (the noise power is the model's), and the
    tails are cut at 4.325 sigma (a draw beyond it has probability 1.5e-5 in a Gaussian).
    What the loop sees of a normal is a sum over many steps or cells, which is Gaussian
    whatever the single draw's tail.
    """

    def __init__(self, rng: np.random.Generator, n: int, k: int) -> None:
        self._bits = rng.bit_generator
        self._levels = normal_levels()
        self._size = n * k
        self._out = np.empty(self._size, dtype=COMPUTE_DTYPE)
        self._shape = (k, n)

    def draw(self) -> np.ndarray:
        """Fresh normals of shape (k, n); the buffer is overwritten by the next call."""
        levels = self._bits.random_raw(-(-self._size // 4)).view(np.uint16)[: self._size]
        np.take(self._levels, levels, out=self._out)
        return self._out.reshape(self._shape)


@functools.cache
def normal_levels() -> np.ndarray:
    """:class:`NormalSource`'s table: the 2^16 midpoint quantiles of N(0, 1), scaled to unit
    variance, float32, indexed by a 16-bit word.

    Made on first use from the standard library's exact inverse CDF (~45 ms, half the
    levels and their mirror images): importing ``scipy.special`` for it cost every process
    that opens the simulated bench ~180 ms and ~13 MB.
    """
    half = 1 << 15
    inverse = statistics.NormalDist().inv_cdf
    upper = np.array([inverse((half + i + 0.5) / (2 * half)) for i in range(half)])
    levels = np.concatenate([-upper[::-1], upper])
    return (levels / np.sqrt(np.mean(levels**2))).astype(COMPUTE_DTYPE)


@dataclass(frozen=True)
class StepStreams:
    """DAC values held during each fine step (zero-order hold), n_steps rows.

    a, b: (n_steps,) dimensionless gains; c: (n_steps,) V noise gain;
    hidden: (n_steps, H) V summed into every ReLU layer's pre-activation (time plus
    condition embedding); probe: (n_steps,) V, the embedding DAC shown on the trace.
    """

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    hidden: np.ndarray
    probe: np.ndarray

    @property
    def n_steps(self) -> int:
        return self.a.shape[0]


@dataclass(frozen=True)
class LoopSettings:
    """Numerical and electrical settings of one closed-loop run.

    h: fine step over RC (dimensionless, 0 < h <= 0.1); every: trace decimation in steps
    (>= 1); v_rail, x_rail: activation and integrator rails (V); trigger_level: trigger
    output level (V) on the last trace channel in ODE mode; chunk: trajectories per
    cache-sized block (>= 1); monitor: (layer, node) whose output the last trace channel
    carries instead (the board's monitor output), or None.
    """

    h: float
    every: int
    v_rail: float
    x_rail: float
    trigger_level: float
    chunk: int
    monitor: tuple[int, int] | None = None


def n_trace_points(n_steps: int, every: int) -> int:
    """Trace samples of a run: t = 0, every, 2 every, ... up to n_steps (inclusive)."""
    return n_steps // every + 1


def integrate(net: Sequence[CompiledLayer], x0: np.ndarray, streams: StepStreams,
              settings: LoopSettings, sde: bool, noise: bool,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the closed loop from ``x0`` (N, D) V.

    Returns end values (N, D) V, traces (N, D + 2, P) float32 V (integrators, embedding
    probe, monitor output: the monitored node, or noise/trigger) and a (N,) bool flag of trajectories that touched the
    integrator rail at a trace sample.
    """
    n_traj, dim = x0.shape
    n_points = n_trace_points(streams.n_steps, settings.every)
    end = np.empty_like(x0, dtype=float)
    traces = np.empty((n_traj, dim + 2, n_points), dtype=COMPUTE_DTYPE)
    for start in range(0, n_traj, settings.chunk):
        block = slice(start, min(start + settings.chunk, n_traj))
        end[block] = _integrate_block(net, x0[block], streams, settings, sde, noise, rng,
                                      traces[block])
    saturated = np.any(np.abs(traces[:, :dim, :]) >= settings.x_rail, axis=(1, 2))
    return end, traces, saturated


def _integrate_block(net: Sequence[CompiledLayer], x0: np.ndarray, streams: StepStreams,
                     s: LoopSettings, sde: bool, noise: bool, rng: np.random.Generator,
                     traces: np.ndarray) -> np.ndarray:
    """Integrate one block of trajectories in place of ``traces``; returns its end values."""
    n, dim = x0.shape
    x = np.array(x0.T, dtype=float)               # feature-major (D, n)
    block = BlockNetwork(net, n, noise, s.v_rail)
    hidden_layers = [k for k, layer in enumerate(net) if layer.relu]
    n_net_noise = sum(block.noise_widths)
    n_normals = n_net_noise + (dim if sde else 0)
    normals = NormalSource(rng, n, n_normals) if n_normals else None
    sqrt_h = math.sqrt(s.h)
    aux_scale = 1.0 / sqrt_h                     # held noise voltage = c z / sqrt(h)
    dx = np.empty_like(x)
    trace_aux = np.zeros(n, dtype=COMPUTE_DTYPE)
    monitor = None if s.monitor is None else block.output(s.monitor[0])[s.monitor[1]]
    point = 0
    for k in range(streams.n_steps):
        z_all = normals.draw() if normals is not None else None
        for index in hidden_layers:
            block.set_offset(index, streams.hidden[k])
        y = block.forward(x, z_all)
        # Euler(-Maruyama) step of RC dx/dtau = a x + b y + c xi
        np.multiply(x, s.h * streams.a[k], out=dx)
        dx += (s.h * streams.b[k]) * y
        if sde:
            z_sde = z_all[n_net_noise:n_normals]
            dx += (streams.c[k] * sqrt_h) * z_sde
        if k % s.every == 0:
            aux_channel(trace_aux, z_sde[0] if sde else None, streams.c[k] * aux_scale, s.trigger_level, monitor)
            record_trace(traces, point, x, streams.probe[k], trace_aux)
            point += 1
        x += dx
        np.clip(x, -s.x_rail, s.x_rail, out=x)
    if streams.n_steps % s.every == 0:
        record_trace(traces, point, x, streams.probe[-1], trace_aux)
    return x.T


def aux_channel(out: np.ndarray, z: np.ndarray | None, scale: float, trigger_level: float,
                monitor: np.ndarray | None = None) -> None:
    """The last trace channel, the board's monitor output, into ``out``: the monitored node's
    voltage ``monitor`` (n,) V when one is selected, else its default source, the held noise
    voltage ``scale z`` (SDE, ``z`` the integrator-0 normals) or the trigger level (ODE, ``z`` None)."""
    if monitor is not None:
        out[...] = monitor
    elif z is not None:
        np.multiply(z, scale, out=out)
    else:
        out.fill(trigger_level)


def record_trace(traces: np.ndarray, point: int, x: np.ndarray, probe: float, aux: np.ndarray) -> None:
    """Write trace sample ``point``: integrators x (D, n), the probed DAC, the monitor output."""
    dim = x.shape[0]
    traces[:, :dim, point] = x.T
    traces[:, dim, point] = probe
    traces[:, dim + 1, point] = aux
