"""End-to-end training of the shipped models (needs torch): data, training, software
baseline metrics, files. ``rrambench train`` calls these.

- ring: 10,000 ring points, score network with noise injection (or without, for
  ``ring-plain``); metrics of the PF-ODE baseline (10,000 steps, beta x2).
- digits: the convolutional VAE on three digit classes of scikit-learn's 8x8 digits, then
  the conditional score network on the latents divided by 8 (posterior draws of every
  image), with noise injection (or without, for ``digits-plain``, which reuses the shipped
  digits VAE so both score networks learn the same latent distribution); metrics of decoded
  PF-ODE samples (5,000 steps, beta x2; the seed's x1.5 is surveyed too) scored by a
  classifier of all ten digits (stored in the VAE file).
- letters: the same on EMNIST letters H, K, U (the authors' task) from the user's local
  EMNIST files, 12x12 as the authors prepare them; the classifier knows every upper-case
  letter in the files.
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
from protocols.diffusion.conv_vae import ConvVAE, load_vae
from protocols.diffusion.emnist import letters_task
from protocols.diffusion.evaluate import digits_metrics, ring_metrics
from protocols.diffusion.samplers import STEPS_DIGITS, STEPS_RING, T_END
from protocols.diffusion.sde import BETA_SCALE_CONDITIONAL, BETA_SCALE_DIGITS, BETA_SCALE_RING, VPSDE
from protocols.diffusion.tasks import DIGIT_CLASSES, LabelledImages, load_digit_images, ring_samples
from protocols.diffusion.training.score_net import TrainConfig, train_score_net
from protocols.diffusion.training.vae import VAEConfig, fit_classifier, train_vae
from protocols.diffusion.weights import SamplingConfig, TrainedModel, shipped_path

log = logging.getLogger(__name__)

Progress = Callable[[int, int, float], None]
RING_POINTS = 10_000        # size of the ring training set (seed)
POSTERIOR_DRAWS = 20        # latent draws per training image for the digits score net
LATENT_POINTS = 10_800      # latent points of a conditional score net's training set (digits: 537 x 20)
REFERENCE_LATENTS = 2000    # encoded training images stored with the VAE (the decoder's voltage scales)
VAE_STEPS = 2000            # Adam steps of the VAE (batch 64)
CLASS_SURVEY = (
    "digit triplets compared by 5-NN cross-validated accuracy on the 2-D latent means of the "
    "first, dense VAE (seed 0, 2000 VAE steps): (0,1,7) 0.996, (0,3,4) 0.994, (0,1,4) 0.993, "
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
                 progress: Progress | None = None, vae_steps: int = VAE_STEPS,
                 eval_per_class: int = 500, noise: bool = True) -> TrainedModel:
    """Train VAE and conditional score network; writes ``out`` and ``<out>-vae`` pairs.

    epochs: passes over the latent training set (~10,800 points); vae_steps: VAE Adam steps;
    eval_per_class: samples per class of the software-baseline evaluation; noise: noise-injection
    training. Without it the shipped digits VAE is reused and no VAE is written: the plain score
    network learns the same latents as the shipped noise-aware one, so the two compare paired.
    """
    digits = load_digit_images(DIGIT_CLASSES)
    everything = load_digit_images(None)
    vae = None if noise else load_vae()
    return train_conditional("digits", digits, (everything.images, everything.labels), out, epochs=epochs,
                             seed=seed, progress=progress, vae_steps=vae_steps, eval_per_class=eval_per_class,
                             notes={"class_choice": CLASS_SURVEY}, noise_injection=noise, vae=vae)


def train_letters(out: str | Path, emnist: str | Path | tuple, epochs: int = 2000, seed: int = 0,
                  progress: Progress | None = None, vae_steps: int = VAE_STEPS, eval_per_class: int = 500,
                  split: str = "byclass") -> TrainedModel:
    """The authors' conditional task: EMNIST letters H, K, U; writes ``out`` and ``<out>-vae`` pairs.

    emnist: the folder of the local EMNIST files, or what
    :func:`~protocols.diffusion.emnist.letters_task` read from it.
    The classifier that scores decoded images knows every upper-case letter the files hold,
    so a decoded H counts only if it looks like an H among all of them.
    """
    data, classifier_data, found = emnist if isinstance(emnist, tuple) else letters_task(emnist, split=split)
    return train_conditional("letters", data, classifier_data, out, epochs=epochs, seed=seed, progress=progress,
                             vae_steps=vae_steps, eval_per_class=eval_per_class,
                             notes={"emnist_split": split, "train_images": int(len(data.images)),
                                    "classifier_letters": found})


def train_conditional(task: str, data: LabelledImages, classifier_data: tuple[np.ndarray, np.ndarray],
                      out: str | Path, *, epochs: int, seed: int, progress: Progress | None, vae_steps: int,
                      eval_per_class: int, notes: dict | None = None, noise_injection: bool = True,
                      vae: ConvVAE | None = None) -> TrainedModel:
    """Convolutional VAE on ``data``, classifier on ``classifier_data`` (images, class codes),
    conditional score network on the latents divided by 8; writes ``out`` and ``<out>-vae``.

    noise_injection: noise-injection training of the score network; vae: an existing VAE (with its
    classifier) to train the score network on instead of a new one: then no VAE file is
    written and the model names that VAE's file."""
    if vae is None:
        vae = train_vae(data.images, data.shape, VAEConfig(steps=vae_steps, batch=64, seed=seed))
        clf, clf_accuracy = fit_classifier(*classifier_data, seed=seed)
        vae.classifier = clf
        vae_file = vae_path_for(out)
    else:
        clf, clf_accuracy = vae.classifier, vae.meta["metrics"]["classifier_train_accuracy"]
        vae_file = None
    mu, logvar = vae.encode(data.images)
    rng = np.random.default_rng(seed)
    vae.reference = vae.to_diffusion(mu[rng.permutation(len(mu))[:REFERENCE_LATENTS]])
    folds = int(min(5, np.bincount(data.labels).min()))
    knn = float(cross_val_score(KNeighborsClassifier(min(5, len(mu) - len(mu) // folds)), mu, data.labels,
                                cv=folds).mean()) if folds >= 2 else float("nan")
    draws = max(1, round(LATENT_POINTS / len(mu)))
    pick = rng.permutation(len(mu))[: LATENT_POINTS // draws] if len(mu) * draws > 2 * LATENT_POINTS \
        else np.arange(len(mu))
    noise = rng.standard_normal((draws, len(pick), mu.shape[1]))
    latents = vae.to_diffusion((mu[pick][None] + np.exp(0.5 * logvar[pick])[None] * noise).reshape(-1, mu.shape[1]))
    labels = np.tile(data.labels[pick], draws)

    cfg = TrainConfig(epochs=epochs, seed=seed, weight_decay=1e-4, noise_std=0.1 if noise_injection else 0.0)
    result = train_score_net(latents, cfg, labels=labels, n_classes=len(data.classes), progress=progress)
    model = TrainedModel(result.net, VPSDE(cfg.beta_min, cfg.beta_max),
                         SamplingConfig(BETA_SCALE_DIGITS, STEPS_DIGITS, T_END))
    metrics = digits_metrics(model, vae, data.classes, n_per_class=eval_per_class, seed=seed + 100, classifier=clf)
    survey = {}
    for scale in (BETA_SCALE_CONDITIONAL, BETA_SCALE_DIGITS):
        trial = replace(model, sampling=replace(model.sampling, beta_scale=scale))
        survey[str(scale)] = digits_metrics(trial, vae, data.classes, n_per_class=min(200, eval_per_class),
                                            seed=seed + 200, classifier=clf)["accuracy_mean"]
    metrics["accuracy_by_beta_scale"] = survey
    metrics["classifier_train_accuracy"] = clf_accuracy
    metrics.update(final_loss=float(result.epoch_loss[-1]), train_seconds=result.seconds,
                   loss_first_epoch=float(result.epoch_loss[0]))
    classes = list(data.classes)
    model.meta = {
        "task": task,
        "config": {"task": task, "classes": classes, "posterior_draws": draws, "latent_points": int(len(latents)),
                   "latent_scale": vae.latent_scale,
                   "class_embedding": "learned table, one vector per class (init: random "
                                      "projection N(0,1)); constant DAC voltages per sample",
                   "vae": (vae_file or shipped_path("digits-vae")).name, "noise_injection": noise_injection,
                   **cfg.as_dict()},
        "metrics": metrics, "provenance": _provenance(),
    }
    if vae_file is not None:
        vae.meta.update(task=task, classes=classes, provenance=_provenance(), **(notes or {}))
        vae.meta["metrics"].update(latent_knn_accuracy=knn, classifier_train_accuracy=clf_accuracy)
        vae.meta["classifier"] = (f"multinomial logistic regression on the pixels of {len(clf.codes)} classes "
                                  f"({len(classifier_data[0])} images); a decoded image counts when it is "
                                  "classified as its condition's class")
        vae.save(vae_file)
    model.save(out)
    log.info("%s models written to %s: %s", task, out, metrics)
    return model
