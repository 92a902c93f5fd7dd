"""Quality metrics of generated samples (numpy only).

- :func:`histogram_kl`: the seed's metric, KL divergence between 1-D histograms
  (50 bins over [-4, 4], density-normalised, epsilon 1e-10 added), generated || reference;
  :func:`coordinate_kl` applies it to each coordinate, :func:`pooled_kl` to every
  coordinate pooled into one histogram (the authors' form); :func:`kl_scores` gives both.
- :func:`kl_floor`: the sampling floor of those KLs, the KL of fresh reference samples of
  the same size against the same reference (median and spread over draws);
  :func:`with_floor` writes a KL with its floor ("0.041 (floor 0.012 ± 0.003)").
- :func:`histogram2d_distance`: the seed's L2 distance between 2-D histograms
  (100 x 100 bins over [-1, 1]^2, each normalised by its sample count).
- :func:`mmd_rbf`: maximum mean discrepancy with a Gaussian kernel.
- :func:`ring_statistics`: radius, radial spread and angular uniformity for the ring.
- :func:`per_class_accuracy`: fraction of each condition's outputs classified as it.
All sample arrays are (N, D) in data units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

KL_BINS = 50
KL_RANGE = (-4.0, 4.0)
KL_EPSILON = 1e-10
#: Draws of fresh reference samples behind a sampling floor, and their seed (fixed: a run's
#: floor is reproducible, the same for every run of one task and size).
KL_FLOOR_DRAWS = 20
KL_FLOOR_SEED = 20240408
#: Columns of :func:`kl_scores` and :class:`KLFloor` for 2-D samples: each coordinate, their
#: mean, the pooled histogram.
KL_COLUMNS = ("x", "y", "mean", "pooled")
HIST2D_BINS = 100
HIST2D_RANGE = (-1.0, 1.0)
SECTOR_DEG = 30.0


def _finite(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.size == 0:
        raise ValueError(f"{name}: empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return a


def histogram_kl(
    generated: np.ndarray, reference: np.ndarray, bins: int = KL_BINS,
    value_range: tuple[float, float] = KL_RANGE, epsilon: float = KL_EPSILON,
) -> float:
    """KL(generated || reference) of 1-D histograms, as the seed computes it (nats).

    Both inputs are flattened. Values outside ``value_range`` fall out of both
    histograms (as in ``numpy.histogram``). bins >= 1; epsilon > 0 is added to each
    normalised bin so empty bins stay finite.
    """
    g = _finite("generated", generated).ravel()
    r = _finite("reference", reference).ravel()
    if bins < 1 or not epsilon > 0:
        raise ValueError(f"bins, epsilon: need bins >= 1 and epsilon > 0, got {bins}, {epsilon}")
    hg, _ = np.histogram(g, bins=bins, range=value_range, density=True)
    hr, _ = np.histogram(r, bins=bins, range=value_range, density=True)
    if hg.sum() == 0 or hr.sum() == 0 or not (np.isfinite(hg).all() and np.isfinite(hr).all()):
        raise ValueError(f"generated, reference: no value inside {value_range}")
    p = hg / hg.sum() + epsilon
    q = hr / hr.sum() + epsilon
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def coordinate_kl(generated: np.ndarray, reference: np.ndarray, **kwargs: float) -> np.ndarray:
    """:func:`histogram_kl` of each coordinate (column); returns shape (D,)."""
    g = _finite("generated", generated)
    r = _finite("reference", reference)
    if g.ndim != 2 or r.ndim != 2 or g.shape[1] != r.shape[1]:
        raise ValueError(f"generated, reference: need (N, D) and (M, D), got {g.shape}, {r.shape}")
    return np.array([histogram_kl(g[:, d], r[:, d], **kwargs) for d in range(g.shape[1])])


def pooled_kl(generated: np.ndarray, reference: np.ndarray, **kwargs: float) -> float:
    """:func:`histogram_kl` of every coordinate pooled into one histogram: the authors' form.

    Their ``cal_KL`` (repository yangjc97/memristor-sde-diffusion, ``conditional/my_utils.py``;
    ``../shared/reference/seed-facts.md``, "From the authors' code", quality metrics) flattens the
    (N, 2) generated and reference arrays before ``np.histogram(..., bins=50, range=(-4, 4),
    density=True)``, adds 1e-10 to each normalised histogram and takes ``scipy.stats.entropy``
    (generated || reference): one histogram over both coordinates, the same bins, range and
    epsilon as :func:`histogram_kl`. (N, D) and (M, D) in; nats out.
    """
    g = _finite("generated", generated)
    r = _finite("reference", reference)
    if g.ndim != 2 or r.ndim != 2 or g.shape[1] != r.shape[1]:
        raise ValueError(f"generated, reference: need (N, D) and (M, D), got {g.shape}, {r.shape}")
    return histogram_kl(g, r, **kwargs)


def kl_scores(generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Every histogram KL of ``generated`` (N, D) against ``reference`` (M, D), nats: (D + 2,)
    = per coordinate (:func:`coordinate_kl`), their mean, pooled (:func:`pooled_kl`); for 2-D
    samples the columns :data:`KL_COLUMNS`."""
    per = coordinate_kl(generated, reference)
    return np.concatenate([per, [per.mean(), pooled_kl(generated, reference)]])


@dataclass(frozen=True)
class KLFloor:
    """Sampling floor of the histogram KLs: ``values`` (draws, D + 2) the :func:`kl_scores` of
    ``draws`` independent sets of ``samples`` fresh reference samples against the reference;
    ``hist2d`` (draws,) the :func:`histogram2d_distance` of the same sets (2-D samples; empty
    otherwise).

    A generator as good as the reference distribution itself scores about ``median`` with
    ``samples`` samples; a KL within a few ``spread`` of it is at the floor.
    """

    samples: int
    values: np.ndarray
    hist2d: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def median(self) -> np.ndarray:
        """(D + 2,) median over the draws, nats."""
        return np.median(self.values, axis=0)

    @property
    def spread(self) -> np.ndarray:
        """(D + 2,) standard deviation over the draws, nats (0 for a single draw)."""
        return np.std(self.values, axis=0, ddof=1) if len(self.values) > 1 else np.zeros(self.values.shape[1])

    @property
    def hist2d_floor(self) -> np.ndarray:
        """(2,) median and standard deviation over the draws of the 2-D histogram distance (NaN
        without 2-D draws; standard deviation 0 for a single draw)."""
        h = self.hist2d
        if not len(h):
            return np.full(2, np.nan)
        return np.array([np.median(h), np.std(h, ddof=1) if len(h) > 1 else 0.0])


def kl_floor(reference: np.ndarray, draw: Callable[[int, np.random.Generator], np.ndarray], samples: int,
             draws: int = KL_FLOOR_DRAWS, seed: int = KL_FLOOR_SEED,
             hist2d_range: tuple[float, float] = HIST2D_RANGE) -> KLFloor:
    """The KL of ``samples`` fresh reference samples against ``reference`` (M, D), ``draws`` times,
    and (D = 2) their 2-D histogram distance over ``hist2d_range`` (data units, both axes).

    draw(n, rng) returns n fresh samples (n, D) of the reference distribution (the task's own
    sampler, or a resample of a finite reference set); the generator is seeded with ``seed``,
    so the floor is reproducible. samples >= 1, draws >= 1.
    """
    if samples < 1 or draws < 1:
        raise ValueError(f"samples, draws: need >= 1, got {samples}, {draws}")
    rng = np.random.default_rng(seed)
    sets = [draw(samples, rng) for _ in range(draws)]
    hist2d = (np.array([histogram2d_distance(s, reference, value_range=hist2d_range) for s in sets])
              if reference.ndim == 2 and reference.shape[1] == 2 else np.zeros(0))
    return KLFloor(int(samples), np.array([kl_scores(s, reference) for s in sets]), hist2d)


def with_floor(value: float, floor: float | None, spread: float | None) -> str:
    """A KL with its sampling floor: ``"0.041 (floor 0.012 ± 0.003)"``; ``"(floor unknown)"``
    when there is none (a file written before floors were recorded)."""
    known = floor is not None and np.isfinite(floor)
    shown = f"{value:.3g}" if value is not None and np.isfinite(value) else "-"
    if not known:
        return f"{shown} (floor unknown)"
    spread_text = f" ± {spread:.2g}" if spread is not None and np.isfinite(spread) else ""
    return f"{shown} (floor {floor:.3g}{spread_text})"


def histogram2d_distance(
    generated: np.ndarray, reference: np.ndarray, bins: int = HIST2D_BINS,
    value_range: tuple[float, float] = HIST2D_RANGE,
) -> float:
    """L2 distance between 2-D histograms normalised by sample count (seed's calDistance)."""
    g = _finite("generated", generated)
    r = _finite("reference", reference)
    if g.ndim != 2 or r.ndim != 2 or g.shape[1] != 2 or r.shape[1] != 2:
        raise ValueError(f"generated, reference: need (N, 2) arrays, got {g.shape}, {r.shape}")
    rng2 = [list(value_range), list(value_range)]
    hg = np.histogram2d(g[:, 0], g[:, 1], bins=bins, range=rng2)[0] / len(g)
    hr = np.histogram2d(r[:, 0], r[:, 1], bins=bins, range=rng2)[0] / len(r)
    return float(np.sqrt(np.sum((hg - hr) ** 2)))


def mmd_rbf(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Squared MMD (biased estimate, >= 0) with kernel exp(-|a-b|^2 / (2 h^2)).

    bandwidth h in data units (> 0); None uses the median pairwise distance of the
    pooled samples. Memory grows as (N + M)^2: subsample beyond a few thousand points.
    """
    x = _finite("x", x)
    y = _finite("y", y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x, y: need (N, D) and (M, D), got {x.shape}, {y.shape}")
    z = np.vstack([x, y])
    sq = np.sum(z**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    if bandwidth is None:
        bandwidth = float(np.sqrt(np.median(d2[np.triu_indices(len(z), k=1)])))
    if not bandwidth > 0:
        raise ValueError(f"bandwidth: must be > 0, got {bandwidth}")
    k = np.exp(-d2 / (2.0 * bandwidth**2))
    n = len(x)
    value = k[:n, :n].mean() + k[n:, n:].mean() - 2.0 * k[:n, n:].mean()
    return float(max(value, 0.0))


@dataclass(frozen=True)
class RingStats:
    """Ring statistics: mean radius and radial std (data units); the share of samples
    in the fullest angular sector and that share over the uniform share (1 = uniform)."""

    mean_radius: float
    radial_std: float
    max_sector_share: float
    max_sector_ratio: float
    sector_counts: tuple[int, ...]


def ring_statistics(
    samples: np.ndarray, center: Sequence[float] = (0.0, 0.0), sector_deg: float = SECTOR_DEG
) -> RingStats:
    """Radial and angular statistics of 2-D samples around ``center`` (data units).

    sector_deg: width of the angular sectors in degrees; must divide 360.
    """
    s = _finite("samples", samples)
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"samples: need (N, 2), got {s.shape}")
    n_sectors = 360.0 / sector_deg
    if sector_deg <= 0 or abs(n_sectors - round(n_sectors)) > 1e-9:
        raise ValueError(f"sector_deg: must divide 360, got {sector_deg}")
    n_sectors = int(round(n_sectors))
    d = s - np.asarray(center, dtype=float)
    r = np.hypot(d[:, 0], d[:, 1])
    phi = np.mod(np.arctan2(d[:, 1], d[:, 0]), 2.0 * np.pi)
    counts = np.bincount(
        np.minimum((phi / (2.0 * np.pi) * n_sectors).astype(int), n_sectors - 1),
        minlength=n_sectors,
    )
    share = counts.max() / len(s)
    return RingStats(float(r.mean()), float(r.std()), float(share), float(share * n_sectors),
                     tuple(int(c) for c in counts))


def per_class_accuracy(
    predicted: np.ndarray, conditions: np.ndarray, classes: Sequence
) -> dict:
    """Per condition k: fraction of outputs generated for k that were predicted as classes[k].

    predicted: class predicted for each output; conditions: condition index 0..K-1 of each.
    """
    predicted = np.asarray(predicted)
    conditions = np.asarray(conditions)
    if predicted.shape != conditions.shape:
        raise ValueError(f"predicted, conditions: shapes {predicted.shape} != {conditions.shape}")
    out = {}
    for k, cls in enumerate(classes):
        mask = conditions == k
        if not mask.any():
            raise ValueError(f"conditions: no output for condition {k} ({cls})")
        out[cls] = float(np.mean(predicted[mask] == cls))
    return out


def grouped_quartiles(values: np.ndarray, where: np.ndarray, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Median and quartiles of ``values`` (n,) grouped by grid cell ``where`` (n, len(shape)).

    Returns ``{"median", "q25", "q75"}``, each an array of ``shape``: NaN where no value fell
    (or all its values are NaN); NaN values are left out. Used over simulated worlds, where
    the median and interquartile range are robust to the odd broken world.
    """
    values = np.asarray(values, float).ravel()
    where = np.asarray(where, int).reshape(len(values), len(shape))
    out = {k: np.full(shape, np.nan) for k in ("median", "q25", "q75")}
    if not len(values):
        return out
    flat = np.ravel_multi_index(tuple(where.T), shape)
    for cell in np.unique(flat):
        v = values[flat == cell]
        v = v[~np.isnan(v)]
        if v.size:
            index = np.unravel_index(cell, shape)
            out["q25"][index], out["median"][index], out["q75"][index] = np.percentile(v, (25, 50, 75))
    return out


def nearest_default(levels: Sequence[float]) -> int:
    """Index of the noise multiplier nearest the device model's default 1x: where a noise
    sweep's ``grid=axes`` holds one noise while it sweeps the other (writer and reader agree)."""
    return int(np.argmin(np.abs(np.asarray(levels, float) - 1.0)))
