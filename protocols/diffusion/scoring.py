"""Scoring of a sampling run: the step that follows the closed-loop batches.

``sample`` holds one scorer, chosen by its model. Ring (:class:`RingScorer`): the
seed's histogram KL per coordinate and pooled (the authors' form), radial statistics,
angular uniformity, 2-D histogram distance and MMD of the analog samples and of the
software baseline, against fresh ring points. Digits, any conditional model
(:class:`DigitsScorer`): the latents' histogram KL against posterior draws of the real
digits' latents (what the score net was trained on; the shipped ``digits`` model); the
latents are decoded in software and through the deconvolution decoder programmed on the
bench's own macros (:mod:`~protocols.diffusion.rram_decoder`, run through the board), and
the classifier stored with the VAE scores each condition. Every KL comes with its
sampling floor (:func:`task_floor`): the KL of as many fresh reference samples.

Metrics cover every sample of the run: they are read back from the recorded
``final``, ``software`` (and ``condition``) streams, so a resumed run scores the
batches of the earlier session too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.metrics import (
    HIST2D_RANGE,
    KLFloor,
    coordinate_kl,
    histogram2d_distance,
    kl_floor,
    mmd_rbf,
    pooled_kl,
    ring_statistics,
)
from protocols.engine.datasets import Spec, Stream

if TYPE_CHECKING:
    from protocols.diffusion.weights import TrainedModel
    from protocols.engine.protocol import Protocol as Run

log = logging.getLogger(__name__)

REFERENCE_POINTS = 10_000   # fresh ring points the samples are compared with
REFERENCE_SEED = 1          # their seed (the same for every run, so runs compare)
MMD_POINTS = 2000           # points per side of the MMD (its cost grows as the square)
#: Range of the 2-D histogram distance per task, data units on both axes (100 bins each): the
#: seed's [-1, 1] for the ring (radius 0.7); the digits latents (divided by 8) reach about ±1.5.
HIST2D_RANGES = {"ring": HIST2D_RANGE, "digits": (-2.0, 2.0)}


@lru_cache(maxsize=1)
def digit_classifier() -> Any:
    """The classifier trained on the real digits (fitted once per process, a few seconds)."""
    from protocols.diffusion.tasks import DigitClassifier

    return DigitClassifier()


def ring_reference() -> np.ndarray:
    """Fresh ring points (REFERENCE_POINTS, 2), always the same."""
    from protocols.diffusion.tasks import ring_samples

    return ring_samples(REFERENCE_POINTS, np.random.default_rng(REFERENCE_SEED))


POSTERIOR_DRAWS = 20        # latent draws per real digit in its reference (as the score net was trained)


@lru_cache(maxsize=1)
def digit_posteriors() -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation (N, 2) of every real digit of the shipped VAE's
    classes, in diffusion data units: the distribution the digits score net was trained on
    (``protocols.diffusion.training.pipelines.train_digits``: posterior draws, divided by the
    latent scale)."""
    from protocols.diffusion.tasks import load_digit_images
    from protocols.diffusion.vae import load_vae

    vae = load_vae()
    mu, logvar = vae.encode(load_digit_images(vae.meta.get("classes") or None).images)
    return vae.to_diffusion(mu), vae.to_diffusion(np.exp(0.5 * logvar))


def digit_latents(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` fresh latents (n, 2) of the digits task: a real digit drawn at random (every class
    pooled, as the samples are), then a draw from its posterior."""
    mu, sigma = digit_posteriors()
    pick = rng.integers(len(mu), size=n)
    return mu[pick] + sigma[pick] * rng.standard_normal((n, mu.shape[1]))


@lru_cache(maxsize=2)
def task_reference(task: str) -> np.ndarray:
    """Reference points (N, 2) in data units, always the same: fresh ring points
    (:func:`ring_reference`), or ``POSTERIOR_DRAWS`` posterior draws of each real digit's latent
    (:func:`digit_posteriors`, every class pooled, as the samples are)."""
    if task == "ring":
        return ring_reference()
    mu, sigma = digit_posteriors()
    noise = np.random.default_rng(REFERENCE_SEED).standard_normal((POSTERIOR_DRAWS, *mu.shape))
    return (mu[None] + sigma[None] * noise).reshape(-1, mu.shape[1])


@lru_cache(maxsize=16)
def task_floor(task: str, samples: int) -> KLFloor:
    """Sampling floor of the task's KLs and 2-D histogram distance at ``samples`` samples, against
    :func:`task_reference`: the scores of fresh samples of the task's own sampler (ring:
    ``ring_samples``; digits: :func:`digit_latents`). Fixed seed (``analysis.metrics.KL_FLOOR_SEED``):
    the same floor for every run of one task and size."""
    from protocols.diffusion.tasks import ring_samples

    return kl_floor(task_reference(task), ring_samples if task == "ring" else digit_latents, samples,
                    hist2d_range=HIST2D_RANGES[task])


def hist2d(task: str, samples: np.ndarray) -> float:
    """The 2-D histogram distance of ``samples`` (N, 2) against :func:`task_reference`, over the
    task's range (:data:`HIST2D_RANGES`); samples outside it fall out, as in the seed's code."""
    return histogram2d_distance(samples, task_reference(task), value_range=HIST2D_RANGES[task])


def kl_specs() -> list[Spec]:
    """The KL streams every scorer records beside its per-coordinate ``kl`` (2, 2)."""
    return [Stream("kl_pooled", units="", shape=(2,),
                   long_name="histogram KL of both coordinates pooled (the authors' form); analog, software"),
            Stream("kl_floor", units="", shape=(4,), long_name="sampling floor of the KL: median over draws of "
                   "fresh reference samples, as many as the run's; columns x, y, mean of x and y, pooled"),
            Stream("kl_floor_spread", units="", shape=(4,),
                   long_name="standard deviation of the floor's draws; columns x, y, mean of x and y, pooled"),
            Stream("hist2d_distance", units="", shape=(2,),
                   long_name="2-D histogram distance (L2, 100 x 100 bins, the seed's calDistance); analog, software"),
            Stream("hist2d_floor", units="", shape=(2,), long_name="sampling floor of the 2-D histogram distance: "
                   "median and standard deviation over draws of fresh reference samples, as many as the run's")]


def record_kl(run: Run, task: str, final: np.ndarray, software: np.ndarray) -> dict[str, np.ndarray]:
    """Per-coordinate and pooled KL and the 2-D histogram distance of the analog samples and of the
    baseline, and their floors at that size, recorded (``kl``, ``kl_pooled``, ``kl_floor``,
    ``kl_floor_spread``, ``hist2d_distance``, ``hist2d_floor``) and returned."""
    reference = task_reference(task)
    floor = task_floor(task, len(final))
    values = {"kl": np.vstack([coordinate_kl(final, reference), coordinate_kl(software, reference)]),
              "kl_pooled": np.array([pooled_kl(final, reference), pooled_kl(software, reference)]),
              "kl_floor": floor.median, "kl_floor_spread": floor.spread,
              "hist2d_distance": np.array([hist2d(task, final), hist2d(task, software)]),
              "hist2d_floor": floor.hist2d_floor}
    for name, value in values.items():
        run.record(name, value)
    log.info("%s: KL x, y, pooled, hist2d analog %s software %s; floor at %d samples %s ± %s", task,
             np.round([*values["kl"][0], values["kl_pooled"][0], values["hist2d_distance"][0]], 4).tolist(),
             np.round([*values["kl"][1], values["kl_pooled"][1], values["hist2d_distance"][1]], 4).tolist(), len(final),
             np.round([*floor.median[[0, 1, 3]], floor.hist2d_floor[0]], 4).tolist(),
             np.round([*floor.spread[[0, 1, 3]], floor.hist2d_floor[1]], 4).tolist())
    return values


def kl_outcome(run: Run) -> dict[str, tuple[Any, str]]:
    """KL (mean over x and y, and pooled; nats) and 2-D histogram distance of the analog samples and
    of the baseline, each with its sampling floor (median and spread over draws); dimensionless."""
    kl, pooled = run.recorded("kl")[-1], run.recorded("kl_pooled")[-1]
    floor, spread = run.recorded("kl_floor")[-1], run.recorded("kl_floor_spread")[-1]
    distance, distance_floor = run.recorded("hist2d_distance")[-1], run.recorded("hist2d_floor")[-1]
    return {"kl_analog": (float(kl[0].mean()), ""), "kl_software": (float(kl[1].mean()), ""),
            "kl_floor": (float(floor[2]), ""), "kl_floor_spread": (float(spread[2]), ""),
            "kl_pooled_analog": (float(pooled[0]), ""), "kl_pooled_software": (float(pooled[1]), ""),
            "kl_pooled_floor": (float(floor[3]), ""), "kl_pooled_floor_spread": (float(spread[3]), ""),
            "hist2d_analog": (float(distance[0]), ""), "hist2d_software": (float(distance[1]), ""),
            "hist2d_floor": (float(distance_floor[0]), ""), "hist2d_floor_spread": (float(distance_floor[1]), "")}


def ring_scores(samples: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Every ring metric but the KLs and 2-D histogram distance (:func:`record_kl`) of ``samples``
    (N, 2) against ``reference`` (M, 2), data units."""
    stats = ring_statistics(samples)
    return {"mean_radius": stats.mean_radius,
            "radial_std": stats.radial_std, "max_sector_ratio": stats.max_sector_ratio,
            "mmd": mmd_rbf(samples[:MMD_POINTS], reference[:MMD_POINTS])}


RING_SCALARS = ("mean_radius", "radial_std", "max_sector_ratio", "mmd")


def collected(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Analog and software samples (N, 2) of every batch recorded in the run."""
    final, software = run.recorded("final"), run.recorded("software")
    if len(final) == 0:
        raise RuntimeError("no batch recorded in this run: nothing to score")
    return final, software


class RingScorer:
    """The ring's metrics of the analog samples and of the software baseline, side by side."""

    name = "ring metrics"   # the step
    estimate = 1.0          # s

    def specs(self) -> list[Spec]:
        return [Stream("kl", units="", shape=(2, 2),
                       long_name="histogram KL per coordinate (x, y); rows: analog, software"), *kl_specs()] + [
            Stream(name, units="", shape=(2,), long_name=f"{name.replace('_', ' ')}; analog, software")
            for name in RING_SCALARS]

    def score(self, run: Run) -> None:
        final, software = collected(run)
        reference = ring_reference()
        a, s = ring_scores(final, reference), ring_scores(software, reference)
        record_kl(run, "ring", final, software)
        for name in RING_SCALARS:
            run.record(name, np.array([a[name], s[name]]))
        log.info("ring: radius %.3f / %.3f", a["mean_radius"], s["mean_radius"])

    @staticmethod
    def outcome(run: Run) -> dict[str, tuple[Any, str]]:
        """KL (mean over x and y, pooled; each with its sampling floor), mean radius and MMD of
        the analog samples and of the baseline."""
        radius, mmd = run.recorded("mean_radius")[-1], run.recorded("mmd")[-1]
        return {**kl_outcome(run),
                "mean_radius_analog": (float(radius[0]), ""), "mean_radius_software": (float(radius[1]), ""),
                "mmd_analog": (float(mmd[0]), ""), "mmd_software": (float(mmd[1]), "")}


class DigitsScorer:
    """Latents of a conditional model decoded to images and classified per condition.

    model: the sampled model; model_name: the ``model`` parameter (its VAE is the shipped
    one for ``digits``, else ``<model>-vae.npz`` beside it); decoder: returns the VAE
    decoder as programmed on the bench's macros (:mod:`~protocols.diffusion.rram_decoder`),
    which decodes the analog latents through the board (EVAL_LAYER); decoder_seed: seed of
    its read noise. The classifier is the one stored with the VAE (digits: all ten digits;
    letters: every upper-case letter of the user's EMNIST files), or the digit classifier
    for VAE files without one.
    """

    name = "decode on the bench and classify"   # the step
    estimate = 10.0                              # s

    def __init__(self, model: TrainedModel, model_name: str, decoder: Callable[[], Any], decoder_seed: int) -> None:
        self.model, self.model_name, self.decoder, self.decoder_seed = model, model_name, decoder, decoder_seed
        self._vae: Any = None

    def specs(self) -> list[Spec]:
        k, pixels = self.model.net.n_classes, self.vae().pixels
        return [
            Stream("images_rram_decoder", units="", shape=(pixels,), dtype="f4",
                   long_name="analog latents decoded by the deconvolution decoder on the bench's RRAM macros, "
                   "pixels in [0, 1]"),
            Stream("images_software", units="", shape=(pixels,), dtype="f4",
                   long_name="analog latents decoded in software"),
            Stream("images_baseline", units="", shape=(pixels,), dtype="f4",
                   long_name="software-baseline latents decoded in software"),
            Stream("accuracy", units="", shape=(3, k), long_name="fraction classified as its condition; rows: "
                   "analog + RRAM decoder on the bench, analog + software decoder, software baseline"),
            Stream("decoder_clipped_latents", units="", dtype="i4",
                   long_name="analog latents beyond the decoder's DAC range, clipped to it"),
            *self.map_specs(),
        ] + ([Stream("kl", units="", shape=(2, 2), long_name="latents' histogram KL per coordinate (x, y) against "
                     "posterior draws of the real digits' latents (every class pooled); rows: analog, software"),
              *kl_specs()] if self.latent_kl else [])

    def score(self, run: Run) -> None:
        final, software = collected(run)
        cond = run.recorded("condition").astype(int)
        vae = self.vae()
        rram, clipped = self.decoder().decode(run.bench.macro_controller, final, seed=self.decoder_seed)
        images = {"images_rram_decoder": rram,
                  "images_software": vae.decode_diffusion(final), "images_baseline": vae.decode_diffusion(software)}
        for name, values in images.items():
            run.record_rows(name, values)
        run.record("decoder_clipped_latents", clipped)
        self.record_maps(run, final, cond)
        clf = vae.classifier if getattr(vae, "classifier", None) is not None else digit_classifier()
        classes = vae.meta.get("classes") or self.model.meta.get("config", {}).get("classes")
        rows = [list(clf.accuracy_per_class(images[n], cond, classes).values()) for n in images]
        run.record("accuracy", np.array(rows))
        if self.latent_kl:
            record_kl(run, "digits", final, software)
        log.info("accuracy per class (RRAM decoder on the bench, software decoder, baseline): %s",
                 np.round(rows, 3).tolist())

    def map_specs(self) -> list[Spec]:
        """Fig. 4c: each decoder layer's output maps of one analog latent per class, as the board read them."""
        layers = getattr(self.vae(), "decoder_layers", None)
        if layers is None:   # a dense VAE of an older model file: no maps to show
            return []
        return [Stream(f"decoder_maps_{k}", units="V", shape=tuple(layer.out_shape), dtype="f4",
                       long_name=f"decoder layer {k}'s output maps (channels, rows, columns) for the first analog "
                       "latent of each class, read by the board's ADC (the last layer: pixel logits)")
                for k, layer in enumerate(layers(diffusion=True))]

    def record_maps(self, run: Run, final: np.ndarray, cond: np.ndarray) -> None:
        if not self.map_specs():
            return
        first = [int(np.flatnonzero(cond == c)[0]) for c in np.unique(cond)]
        maps, _ = self.decoder().layer_maps(run.bench.macro_controller, final[first], seed=self.decoder_seed + 1)
        for k, m in enumerate(maps):
            run.record_rows(f"decoder_maps_{k}", m.reshape(len(first), *m.shape[1:]))

    @property
    def latent_kl(self) -> bool:
        """Whether the latents' KL is scored: the shipped digits models, whose VAE encodes the
        reference latents (:func:`task_reference`)."""
        from protocols.diffusion.weights import SHIPPED_DIGITS

        return self.model_name in SHIPPED_DIGITS

    def outcome(self, run: Run) -> dict[str, tuple[Any, str]]:
        """Mean over classes of the fraction classified as its condition, per decoding; the
        latents' KL with its floor (the shipped digits model)."""
        accuracy = run.recorded("accuracy")[-1]
        names = ("accuracy_rram_decoder", "accuracy_software_decoder", "accuracy_baseline")
        out = {name: (float(np.mean(row)), "") for name, row in zip(names, accuracy, strict=True)}
        return {**out, **(kl_outcome(run) if self.latent_kl else {})}

    def vae(self) -> Any:
        """The model's VAE (convolutional, or dense for files before it), read once."""
        if self._vae is None:
            self._vae = model_vae(self.model_name)
        return self._vae


def model_vae(model_name: str) -> Any:
    """The VAE of a conditional model: the shipped one for the shipped digits models, else
    ``<model>-vae.npz`` beside the model file (ValueError naming it when it cannot be read)."""
    import zipfile

    from protocols.characterization.files import load_error
    from protocols.diffusion.conv_vae import load_vae, read_vae
    from protocols.diffusion.weights import SHIPPED_DIGITS

    if model_name in SHIPPED_DIGITS:
        return load_vae()
    base = Path(model_name)
    path = base.with_name(base.stem + "-vae.npz")
    try:
        return read_vae(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"model={model_name!r}: its VAE {path} cannot be read ({load_error(exc)})") from None
