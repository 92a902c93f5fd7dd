"""Samplers of the software baseline: Euler probability-flow ODE and Euler-Maruyama
reverse SDE, vectorised over samples.

Both integrate diffusion time backwards on a uniform grid from ``t_start`` (1) to
``t_end`` (1e-4 in the seed) in ``n_steps`` steps; the score is evaluated at the
left end of each step (the time the step starts from), as the seed does. The reverse
SDE returns the noise-free mean of its last step, also as the seed does.

``score`` is either a :class:`~protocols.diffusion.model.ScoreNet` (fast path: the
time embedding of every step is computed once) or any callable ``score(x, t)``
giving the score (N, D) at scalar time ``t``, e.g. an exact analytic score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from protocols.diffusion.model import ScoreNet
from protocols.diffusion.sde import VPSDE

ScoreFn = Callable[[np.ndarray, float], np.ndarray]

T_START = 1.0       # diffusion time where sampling starts
T_END = 1e-4        # diffusion time where the seed stops
STEPS_RING = 10_000     # Euler steps of the seed, unconditional ring
STEPS_DIGITS = 5_000    # Euler steps of the seed, conditional task


@dataclass
class SampleResult:
    """Outcome of one sampling run.

    final: (N, D) samples at ``t_end``; times: (K,) diffusion times of the
    snapshots; snapshots: (K, N, D) states at those times (the first is the
    initial noise, the last the final samples).
    """

    final: np.ndarray
    times: np.ndarray
    snapshots: np.ndarray


def time_grid(n_steps: int, t_start: float = T_START, t_end: float = T_END) -> np.ndarray:
    """Uniform grid of ``n_steps + 1`` diffusion times from ``t_start`` down to ``t_end``.

    n_steps: >= 1; t_start > t_end > 0 (dimensionless diffusion time).
    """
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps: must be an integer >= 1, got {n_steps}")
    if not 0.0 < t_end < t_start:
        raise ValueError(f"t_end, t_start: need 0 < t_end < t_start, got {t_end}, {t_start}")
    return np.linspace(t_start, t_end, int(n_steps) + 1)


def _score_stepper(
    score: ScoreNet | ScoreFn, grid: np.ndarray, n: int, cond: np.ndarray | int | None
) -> Callable[[np.ndarray, int], np.ndarray]:
    """Score at grid point k for the current states, with the embeddings precomputed."""
    if isinstance(score, ScoreNet):
        temb = score.time_embedding(grid)                    # (K+1, hidden)
        cemb = score.condition_embedding(cond, n)            # (n or 1, hidden)
        return lambda x, k: score.forward_fast(x, temb[k] + cemb)
    if cond is not None:
        raise ValueError("cond: only a ScoreNet takes a class label; bind it into the callable")
    return lambda x, k: score(x, float(grid[k]))


def _snapshot_steps(grid: np.ndarray, snapshot_times: Sequence[float] | None) -> np.ndarray:
    """Grid indices at which to keep the state (nearest grid times), always incl. both ends."""
    wanted = [] if snapshot_times is None else list(snapshot_times)
    idx = {0, len(grid) - 1}
    for t in wanted:
        if not grid[-1] <= t <= grid[0]:
            raise ValueError(f"snapshot_times: {t} outside [{grid[-1]}, {grid[0]}]")
        idx.add(int(np.argmin(np.abs(grid - t))))
    return np.array(sorted(idx))


def _check_init(x_init: np.ndarray) -> np.ndarray:
    x = np.array(x_init, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"x_init: expected shape (N, D), got {x.shape}")
    return x


def sample_probability_flow(
    score: ScoreNet | ScoreFn,
    sde: VPSDE,
    x_init: np.ndarray,
    n_steps: int = STEPS_RING,
    t_end: float = T_END,
    cond: np.ndarray | int | None = None,
    snapshot_times: Sequence[float] | None = None,
    t_start: float = T_START,
) -> SampleResult:
    """Integrate the probability-flow ODE backwards with explicit Euler steps.

    x_init: (N, D) initial states at ``t_start`` (usually N(0, I) noise), data units.
    n_steps: number of Euler steps (>= 1); t_end: final diffusion time (> 0).
    cond: class labels (conditional ScoreNet only).
    snapshot_times: diffusion times at which to keep the states (nearest grid point).
    """
    x = _check_init(x_init)
    grid = time_grid(n_steps, t_start, t_end)
    dt = grid[:-1] - grid[1:]                      # positive step sizes
    neg_half_beta = -0.5 * sde.beta(grid)
    score_at = _score_stepper(score, grid, x.shape[0], cond)
    keep = _snapshot_steps(grid, snapshot_times)
    keep_after = set(keep[1:].tolist())
    snaps = [x.copy()]
    for k in range(len(dt)):
        drift = neg_half_beta[k] * (x + score_at(x, k))
        x = x - drift * dt[k]
        if k + 1 in keep_after:
            snaps.append(x.copy())
    return SampleResult(x, grid[keep], np.stack(snaps))


def sample_reverse_sde(
    score: ScoreNet | ScoreFn,
    sde: VPSDE,
    x_init: np.ndarray,
    rng: np.random.Generator,
    n_steps: int = STEPS_RING,
    t_end: float = T_END,
    cond: np.ndarray | int | None = None,
    snapshot_times: Sequence[float] | None = None,
    t_start: float = T_START,
) -> SampleResult:
    """Integrate the reverse-time SDE backwards with Euler-Maruyama steps.

    Arguments as :func:`sample_probability_flow`; ``rng`` draws the Wiener increments.
    The last step adds no noise (the seed returns the step's mean).
    """
    x = _check_init(x_init)
    grid = time_grid(n_steps, t_start, t_end)
    dt = grid[:-1] - grid[1:]
    beta = sde.beta(grid)
    score_at = _score_stepper(score, grid, x.shape[0], cond)
    keep = _snapshot_steps(grid, snapshot_times)
    keep_after = set(keep[1:].tolist())
    snaps = [x.copy()]
    last = len(dt) - 1
    for k in range(len(dt)):
        drift = -beta[k] * (0.5 * x + score_at(x, k))
        x = x - drift * dt[k]
        if k < last:
            x = x + np.sqrt(beta[k] * dt[k]) * rng.standard_normal(x.shape)
        if k + 1 in keep_after:
            snaps.append(x.copy())
    return SampleResult(x, grid[keep], np.stack(snaps))
