"""Software-baseline evaluation of trained models (numpy only; no torch).

These numbers go into each shipped model's json and are what the analog runs are
compared with: the ring's histogram KL per coordinate, radius and angular
uniformity; the digits' per-class accuracy of decoded samples.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from analysis.metrics import coordinate_kl, histogram2d_distance, mmd_rbf, ring_statistics
from protocols.diffusion.model import ScoreNet
from protocols.diffusion.samplers import sample_probability_flow
from protocols.diffusion.tasks import DigitClassifier, ring_samples
from protocols.diffusion.weights import TrainedModel

REFERENCE_POINTS = 10_000   # fresh ring points the samples are compared with
SATURATION_LEVEL = 1.5      # hidden activation where the bench's amplifiers saturate


def perturbed(net: ScoreNet, rel_std: float, rng: np.random.Generator) -> ScoreNet:
    """Copy of ``net`` with every weight and bias times (1 + e), e ~ N(0, rel_std^2).

    A static (programming-error-like) perturbation; embeddings are left exact.
    rel_std: relative standard deviation, >= 0.
    """
    if rel_std < 0:
        raise ValueError(f"rel_std: must be >= 0, got {rel_std}")
    names = ("w1", "b1", "w2", "b2", "w3", "b3")
    noisy = {k: getattr(net, k) * (1.0 + rel_std * rng.standard_normal(getattr(net, k).shape))
             for k in names}
    return replace(net, **noisy)


def saturated_fraction(model: TrainedModel, snapshots: np.ndarray, times: np.ndarray,
                       cond: np.ndarray | None = None) -> float:
    """Fraction of hidden activations above the saturation level along a trajectory."""
    above, total = 0, 0
    for x, t in zip(snapshots, times, strict=True):
        for h in model.net.hidden_activations(x, t, cond):
            above += int(np.sum(h > SATURATION_LEVEL))
            total += h.size
    return above / total


def ring_metrics(
    model: TrainedModel, n: int = 1000, seed: int = 0, n_steps: int | None = None,
    weight_noise: float = 0.0, noise_draws: int = 3,
) -> dict:
    """Software baseline of a ring model: PF-ODE from N(0, I) noise drawn with ``seed``.

    n: samples; n_steps: Euler steps (None: the model's sampling setting);
    weight_noise: if > 0, also the mean KL over ``noise_draws`` statically perturbed copies.
    """
    rng = np.random.default_rng(seed)
    x_init = rng.standard_normal((n, model.net.dim))
    steps = n_steps or model.sampling.n_steps
    res = sample_probability_flow(model.net, model.sampling_sde, x_init, steps,
                                  model.sampling.t_end,
                                  snapshot_times=np.linspace(1.0, model.sampling.t_end, 11))
    reference = ring_samples(REFERENCE_POINTS, np.random.default_rng(seed + 1))
    floor = ring_samples(n, np.random.default_rng(seed + 2))
    stats = ring_statistics(res.final)
    out = {
        "n_samples": n, "n_steps": steps, "seed": seed,
        "kl_xy": coordinate_kl(res.final, reference).tolist(),
        "kl_xy_fresh_data": coordinate_kl(floor, reference).tolist(),
        "mean_radius": stats.mean_radius, "radial_std": stats.radial_std,
        "max_sector_ratio": stats.max_sector_ratio,
        "hist2d_distance": histogram2d_distance(res.final, reference),
        "mmd": mmd_rbf(res.final, reference[:2000]),
        "saturated_fraction": saturated_fraction(model, res.snapshots, res.times),
    }
    if weight_noise > 0:
        kls = []
        for _ in range(noise_draws):
            noisy = replace(model, net=perturbed(model.net, weight_noise, rng))
            r = sample_probability_flow(noisy.net, model.sampling_sde, x_init, steps,
                                        model.sampling.t_end)
            kls.append(float(np.mean(coordinate_kl(r.final, reference))))
        out["weight_noise"] = weight_noise
        out["kl_mean_with_weight_noise"] = float(np.mean(kls))
    return out


def digits_samples(
    model: TrainedModel, n_per_class: int, seed: int = 0, n_steps: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Conditional PF-ODE samples (diffusion units) and their condition index."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(model.net.n_classes), n_per_class)
    x_init = rng.standard_normal((len(labels), model.net.dim))
    steps = n_steps or model.sampling.n_steps
    res = sample_probability_flow(model.net, model.sampling_sde, x_init, steps,
                                  model.sampling.t_end, cond=labels)
    return res.final, labels


def digits_metrics(
    model: TrainedModel, vae: Any, classes: tuple, n_per_class: int = 500, seed: int = 0,
    n_steps: int | None = None, classifier: Any = None,
) -> dict:
    """Per-class accuracy of decoded conditional samples.

    classes: class (digit or letter) of each condition index; n_per_class: samples per
    condition; classifier: scores the decoded images (default: the digit classifier).
    """
    clf = classifier or DigitClassifier()
    x, labels = digits_samples(model, n_per_class, seed, n_steps)
    acc = clf.accuracy_per_class(vae.decode_diffusion(x), labels, classes)
    return {
        "n_per_class": n_per_class, "seed": seed, "n_steps": n_steps or model.sampling.n_steps,
        "accuracy_per_class": {str(k): v for k, v in acc.items()},
        "accuracy_mean": float(np.mean(list(acc.values()))),
        "classifier_train_accuracy": getattr(clf, "train_accuracy", None),
    }
