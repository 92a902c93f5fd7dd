"""Scoring of a sampling run: the step that follows the closed-loop batches.

``sample`` holds one scorer, chosen by its model. Ring (:class:`RingScorer`): the
seed's histogram KL per coordinate, radial statistics, angular uniformity, 2-D
histogram distance and MMD of the analog samples and of the software baseline,
against fresh ring points. Digits, any conditional model (:class:`DigitsScorer`): the
latents are decoded in software and through the decoder on simulated RRAM (a simulated
array on every bench, hardware included: its outputs say "simulated"), and a classifier
trained on the real digits scores each condition.

Metrics cover every sample of the run: they are read back from the recorded
``final``, ``software`` (and ``condition``) streams, so a resumed run scores the
batches of the earlier session too.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.metrics import coordinate_kl, histogram2d_distance, mmd_rbf, ring_statistics
from protocols.engine.datasets import Spec, Stream

if TYPE_CHECKING:
    from protocols.diffusion.weights import TrainedModel
    from protocols.engine.protocol import Protocol as Run

log = logging.getLogger(__name__)

REFERENCE_POINTS = 10_000   # fresh ring points the samples are compared with
REFERENCE_SEED = 1          # their seed (the same for every run, so runs compare)
MMD_POINTS = 2000           # points per side of the MMD (its cost grows as the square)
PIXELS = 64


@lru_cache(maxsize=1)
def digit_classifier() -> Any:
    """The classifier trained on the real digits (fitted once per process, a few seconds)."""
    from protocols.diffusion.tasks import DigitClassifier

    return DigitClassifier()


def ring_reference() -> np.ndarray:
    """Fresh ring points (REFERENCE_POINTS, 2), always the same."""
    from protocols.diffusion.tasks import ring_samples

    return ring_samples(REFERENCE_POINTS, np.random.default_rng(REFERENCE_SEED))


def ring_scores(samples: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Every ring metric of ``samples`` (N, 2) against ``reference`` (M, 2), data units."""
    stats = ring_statistics(samples)
    return {"kl": coordinate_kl(samples, reference), "mean_radius": stats.mean_radius,
            "radial_std": stats.radial_std, "max_sector_ratio": stats.max_sector_ratio,
            "hist2d_distance": histogram2d_distance(samples, reference),
            "mmd": mmd_rbf(samples[:MMD_POINTS], reference[:MMD_POINTS])}


RING_SCALARS = ("mean_radius", "radial_std", "max_sector_ratio", "hist2d_distance", "mmd")


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
                       long_name="histogram KL per coordinate (x, y); rows: analog, software")] + [
            Stream(name, units="", shape=(2,), long_name=f"{name.replace('_', ' ')}; analog, software")
            for name in RING_SCALARS]

    def score(self, run: Run) -> None:
        final, software = collected(run)
        reference = ring_reference()
        a, s = ring_scores(final, reference), ring_scores(software, reference)
        run.record("kl", np.vstack([a["kl"], s["kl"]]))
        for name in RING_SCALARS:
            run.record(name, np.array([a[name], s[name]]))
        log.info("ring: KL analog %s software %s, radius %.3f / %.3f", np.round(a["kl"], 4),
                 np.round(s["kl"], 4), a["mean_radius"], s["mean_radius"])

    @staticmethod
    def outcome(run: Run) -> dict[str, tuple[Any, str]]:
        """KL (mean over x and y), mean radius and MMD of the analog samples and of the baseline."""
        kl, radius, mmd = run.recorded("kl")[-1], run.recorded("mean_radius")[-1], run.recorded("mmd")[-1]
        return {"kl_analog": (float(kl[0].mean()), ""), "kl_software": (float(kl[1].mean()), ""),
                "mean_radius_analog": (float(radius[0]), ""), "mean_radius_software": (float(radius[1]), ""),
                "mmd_analog": (float(mmd[0]), ""), "mmd_software": (float(mmd[1]), "")}


class DigitsScorer:
    """Latents of a conditional model decoded to images and classified per condition.

    model: the sampled model; model_name: the ``model`` parameter (its VAE is the shipped
    one for ``digits``, else ``<model>-vae.npz`` beside it); x_scale: integrator volts
    per data unit (the simulated RRAM decoder takes the latents at that scale);
    decoder_seed: seed of that decoder. The decoder's array has the device parameters of
    the bench config's ``[sim] device`` file (the model's defaults without one).
    """

    name = "decode and classify"   # the step
    estimate = 10.0                # s
    #: What it simulates on every bench (``Protocol.simulated_parts``).
    SIMULATED = ("decoder: the VAE decoder on a simulated RRAM array (images_simulated_rram, accuracy row 0; "
                 "device parameters of the bench config's [sim] device, seed decoder_seed)")

    def __init__(self, model: TrainedModel, model_name: str, x_scale: float, decoder_seed: int) -> None:
        self.model, self.model_name, self.x_scale, self.decoder_seed = model, model_name, x_scale, decoder_seed

    def specs(self) -> list[Spec]:
        k = self.model.net.n_classes
        return [
            Stream("images_simulated_rram", units="", shape=(PIXELS,), dtype="f4",
                   long_name="analog latents decoded by the decoder on simulated RRAM, pixels in [0, 1]"),
            Stream("images_software", units="", shape=(PIXELS,), dtype="f4",
                   long_name="analog latents decoded in software"),
            Stream("images_baseline", units="", shape=(PIXELS,), dtype="f4",
                   long_name="software-baseline latents decoded in software"),
            Stream("accuracy", units="", shape=(3, k), long_name="fraction classified as its condition; rows: "
                   "analog + simulated RRAM decoder, analog + software decoder, software baseline"),
        ]

    def score(self, run: Run) -> None:
        from protocols.diffusion.simulated_decoder import AnalogDecoder

        final, software = collected(run)
        cond = run.recorded("condition").astype(int)
        vae = self.vae()
        params = run.bench.config.device_params() if run.bench is not None else None
        decoder = AnalogDecoder.program(vae, self.x_scale, seed=self.decoder_seed, params=params)
        images = {"images_simulated_rram": decoder.decode(final, run.rng),
                  "images_software": vae.decode_diffusion(final), "images_baseline": vae.decode_diffusion(software)}
        for name, values in images.items():
            run.record_rows(name, values)
        clf = digit_classifier()
        classes = vae.meta.get("classes") or self.model.meta.get("config", {}).get("classes")
        rows = [list(clf.accuracy_per_class(images[n], cond, classes).values()) for n in images]
        run.record("accuracy", np.array(rows))
        log.info("digits accuracy per class (simulated RRAM decoder, software decoder, baseline): %s",
                 np.round(rows, 3).tolist())

    @staticmethod
    def outcome(run: Run) -> dict[str, tuple[Any, str]]:
        """Mean over classes of the fraction classified as its condition, per decoding."""
        accuracy = run.recorded("accuracy")[-1]
        names = ("accuracy_simulated_rram", "accuracy_software_decoder", "accuracy_baseline")
        return {name: (float(np.mean(row)), "") for name, row in zip(names, accuracy, strict=True)}

    def vae(self) -> Any:
        from protocols.diffusion.vae import VAE, load_vae

        if self.model_name == "digits":
            return load_vae()
        base = Path(self.model_name)
        return VAE.load(base.with_name(base.stem + "-vae.npz"))
