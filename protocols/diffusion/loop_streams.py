"""DAC streams of one closed-loop sample: time embedding, condition, gains a, b, c.

The loop integrates ``RC dx_v/dtau = a x_v + b y_v + c xi`` (``docs/circuit-model.md``);
this module chooses the streams so that it integrates the trained model's sampler,
with diffusion time running backwards with physical time, ``t = 1 - tau / T``
(``docs/diffusion-on-rram.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from protocols.diffusion.mapping import MappedNetwork
from protocols.diffusion.weights import TrainedModel


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class LoopStreams:
    """DAC streams of one closed-loop sample and its time mapping.

    dt: hold time of each stream value (s); embedding (P, H) V; condition (H,) V;
    a, b (P,) gains; c (P,) V noise gain; duration: run time (s); t_span: T, the
    physical time of unit diffusion time (s), t = 1 - tau / T; n_steps: fine steps.
    """

    dt: float
    embedding: np.ndarray
    condition: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    duration: float
    t_span: float
    n_steps: int

    def as_args(self) -> tuple:
        """Arguments of ``set_streams(dt, embedding, condition, a, b, c)``."""
        return self.dt, self.embedding, self.condition, self.a, self.b, self.c


def loop_streams(mapped: MappedNetwork, model: TrainedModel, *, n_steps: int, dt_step: float, rc: float,
                 sde: bool, cond: int | None = None, stream_points: int | None = None) -> LoopStreams:
    """Gains and embeddings so the loop integrates the sampler of ``model``.

    n_steps: fine simulation steps per sample (>= 1); dt_step: the board's fine step (s);
    rc: integrator time constant (s); sde: reverse SDE (noise) or probability-flow ODE;
    cond: class index (conditional models); stream_points: DAC values per sample (default
    one per fine step, which makes the ideal loop the software Euler sampler exactly).

    Time mapping: the run lasts ``duration = n_steps dt_step``; diffusion time runs from
    1 to ``t_end`` over it, ``t = 1 - tau / T`` with ``T = duration / (1 - t_end)``. In
    volts (x_v = s_x x, y_v = s_y u, score = A u) the probability-flow ODE
    ``dx/dt = -beta (x + score) / 2`` becomes ``RC dx_v/dtau = a x_v + b y_v`` with
    ``a = RC beta / (2 T)``, ``b = a A s_x / s_y``; the reverse SDE has ``a`` the same,
    ``b = RC beta A s_x / (T s_y)`` and noise gain ``c = s_x sqrt(beta RC / T)`` (V).
    """
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps}")
    dt_step, rc = _positive("dt_step", dt_step), _positive("rc", rc)
    points = int(n_steps) if stream_points is None else int(stream_points)
    if not 1 <= points <= 0xFFFF:
        raise ValueError(f"stream_points must be in 1..65535, got {points}")
    duration = n_steps * dt_step
    t_end = model.sampling.t_end
    t_span = duration / (1.0 - t_end)
    dt = duration / points
    tau = np.arange(points) * dt
    t = 1.0 - tau / t_span
    beta = model.sampling_sde.beta(t)
    amp, ratio = mapped.net.amplitude, mapped.x_scale / mapped.y_scale
    a = rc * beta / (2.0 * t_span)
    if sde:
        b = rc * beta * amp * ratio / t_span
        c = mapped.x_scale * np.sqrt(beta * rc / t_span)
    else:
        b, c = a * amp * ratio, np.zeros(points)
    embedding = mapped.net.time_embedding(t) * mapped.h_scale
    condition = mapped.hidden_volts(1.0, cond)[1]
    for name, v in (("embedding", embedding), ("condition", condition), ("c", c)):
        if np.max(np.abs(v)) > mapped.config.v_dac:
            raise ValueError(f"{name} stream reaches {np.max(np.abs(v)):.3g} V, beyond the DAC range "
                             f"±{mapped.config.v_dac} V")
    return LoopStreams(dt, embedding, condition, a, b, c, duration, t_span, int(n_steps))
