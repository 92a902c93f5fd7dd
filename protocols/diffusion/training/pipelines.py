"""End-to-end training of the shipped models (needs torch): data, training, software
baseline metrics, files. ``rrambench train`` calls these.

- ring: 10,000 ring points, score network with noise injection (or without, for
  ``ring-plain``); metrics of the PF-ODE baseline (10,000 steps, beta x2).
- digits: VAE on three digit classes, then the conditional score network on the
  scaled latents (20 posterior draws per image); metrics of decoded PF-ODE samples
  (5,000 steps, beta x2; the seed's x1.5 is surveyed too) scored by the digit classifier.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from instruments import __version__
from protocols.diffusion.evaluate import digits_metrics, ring_metrics
from protocols.diffusion.samplers import STEPS_DIGITS, STEPS_RING, T_END
from protocols.diffusion.sde import BETA_SCALE_CONDITIONAL, BETA_SCALE_DIGITS, BETA_SCALE_RING, VPSDE
from protocols.diffusion.tasks import DIGIT_CLASSES, load_digit_images, ring_samples
from protocols.diffusion.training.score_net import TrainConfig, train_score_net
from protocols.diffusion.training.vae import VAEConfig, train_vae
from protocols.diffusion.weights import SamplingConfig, TrainedModel

log = logging.getLogger(__name__)

Progress = Callable[[int, int, float], None]
RING_POINTS = 10_000        # size of the ring training set (seed)
POSTERIOR_DRAWS = 20        # latent draws per training image for the digits score net
CLASS_SURVEY = (
    "digit triplets compared by 5-NN cross-validated accuracy on the 2-D VAE latent means "
    "(seed 0, 2000 VAE steps): (0,1,7) 0.996, (0,3,4) 0.994, (0,1,4) 0.993, "
    "(0,4,7) 0.978, (0,1,6) 0.978; (0,1,7) also decodes to 100% correctly classified "
    "reconstructions, so it was chosen"
)


def _provenance() -> dict:
    return {"rrambench": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def train_ring(out: str | Path, epochs: int = 4000, noise: bool = True, seed: int = 0,
               progress: Progress | None = None, eval_samples: int = 1000) -> TrainedModel:
    """Train and evaluate a ring model; writes ``out.npz`` + ``out.json``.

    epochs: passes over 10,000 ring points (20 steps each); noise: noise-injection
    training on/off; eval_samples: samples of the software-baseline evaluation.
    """
    cfg = TrainConfig(epochs=epochs, seed=seed, noise_std=0.1 if noise else 0.0)
    data = ring_samples(RING_POINTS, np.random.default_rng(seed))
    result = train_score_net(data, cfg, progress=progress)
    model = TrainedModel(result.net, VPSDE(cfg.beta_min, cfg.beta_max),
                         SamplingConfig(BETA_SCALE_RING, STEPS_RING, T_END))
    metrics = ring_metrics(model, n=eval_samples, seed=seed + 100, weight_noise=0.1)
    metrics.update(final_loss=float(result.epoch_loss[-1]), train_seconds=result.seconds,
                   loss_first_epoch=float(result.epoch_loss[0]))
    model.meta = {
        "task": "ring", "config": {"task": "ring", "data_points": RING_POINTS,
                                   "noise_injection": noise, **cfg.as_dict()},
        "metrics": metrics, "provenance": _provenance(),
    }
    model.save(out)
    log.info("ring model written to %s: %s", out, metrics)
    return model


def vae_path_for(out: str | Path) -> Path:
    """Where the digits VAE goes next to the score network ``out`` (``<out>-vae``)."""
    base = Path(out)
    base = base.with_suffix("") if base.suffix == ".npz" else base
    return base.with_name(base.name + "-vae.npz")


def train_digits(out: str | Path, epochs: int = 2000, seed: int = 0,
                 progress: Progress | None = None, vae_steps: int = 3000,
                 eval_per_class: int = 500) -> TrainedModel:
    """Train VAE and conditional score network; writes ``out`` and ``<out>-vae`` pairs.

    epochs: passes over the latent training set (~10,800 points); vae_steps: full-batch
    VAE steps; eval_per_class: samples per class of the software-baseline evaluation.
    """
    digits = load_digit_images(DIGIT_CLASSES)
    vae = train_vae(digits.images, digits.shape, VAEConfig(steps=vae_steps, seed=seed))
    mu, logvar = vae.encode(digits.images)
    knn = float(cross_val_score(KNeighborsClassifier(5), mu, digits.labels, cv=5).mean())
    rng = np.random.default_rng(seed)
    draws = mu[None] + np.exp(0.5 * logvar)[None] * rng.standard_normal((POSTERIOR_DRAWS, *mu.shape))
    latents = vae.to_diffusion(draws.reshape(-1, mu.shape[1]))
    labels = np.tile(digits.labels, POSTERIOR_DRAWS)

    cfg = TrainConfig(epochs=epochs, seed=seed, weight_decay=1e-4)
    result = train_score_net(latents, cfg, labels=labels, n_classes=len(DIGIT_CLASSES),
                             progress=progress)
    model = TrainedModel(result.net, VPSDE(cfg.beta_min, cfg.beta_max),
                         SamplingConfig(BETA_SCALE_DIGITS, STEPS_DIGITS, T_END))
    metrics = digits_metrics(model, vae, DIGIT_CLASSES, n_per_class=eval_per_class, seed=seed + 100)
    survey = {}
    for scale in (BETA_SCALE_CONDITIONAL, BETA_SCALE_DIGITS):
        trial = replace(model, sampling=replace(model.sampling, beta_scale=scale))
        survey[str(scale)] = digits_metrics(trial, vae, DIGIT_CLASSES, n_per_class=200,
                                            seed=seed + 200)["accuracy_mean"]
    metrics["accuracy_by_beta_scale"] = survey
    metrics.update(final_loss=float(result.epoch_loss[-1]), train_seconds=result.seconds,
                   loss_first_epoch=float(result.epoch_loss[0]))
    model.meta = {
        "task": "digits",
        "config": {"task": "digits", "classes": list(DIGIT_CLASSES),
                   "posterior_draws": POSTERIOR_DRAWS, "latent_scale": vae.latent_scale,
                   "class_embedding": "learned table, one vector per class (init: random "
                                      "projection N(0,1)); constant DAC voltages per sample",
                   "vae": vae_path_for(out).name, **cfg.as_dict()},
        "metrics": metrics, "provenance": _provenance(),
    }
    vae.meta.update(task="digits", classes=list(DIGIT_CLASSES), class_choice=CLASS_SURVEY,
                    provenance=_provenance())
    vae.meta["metrics"]["latent_knn_accuracy"] = knn
    vae.save(vae_path_for(out))
    model.save(out)
    log.info("digits models written to %s: %s", out, metrics)
    return model
