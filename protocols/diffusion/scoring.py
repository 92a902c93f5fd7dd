"""Scoring of a sampling run: the steps that follow the closed-loop batches.

A mixin of the ``sample`` protocol. Ring: the seed's histogram KL per coordinate,
radial statistics, angular uniformity, 2-D histogram distance and MMD of the analog
samples and of the software baseline, against fresh ring points. Digits: the latents
are decoded in software and through the decoder on simulated RRAM, and a classifier
trained on the real digits scores each condition.

Metrics cover every sample of the run: they are read back from the recorded
``final``, ``software`` (and ``condition``) streams, so a resumed run scores the
batches of the earlier session too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from analysis.metrics import coordinate_kl, histogram2d_distance, mmd_rbf, ring_statistics
from protocols.engine.datasets import Spec, Stream
from protocols.engine.protocol import Step

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


class SampleScoring:
    """Reads back the samples of every batch, then decodes (digits) and scores them."""

    def collected(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Analog and software samples (N, 2) of every batch recorded in the run, and each
        one's class (-1 for an unconditional model)."""
        final, software = self.recorded("final"), self.recorded("software")
        if len(final) == 0:
            raise RuntimeError("no batch recorded in this run: nothing to score")
        cond = self.recorded("condition").astype(int) if self.conditional else np.full(len(final), -1)
        return final, software, cond

    # -- declared data ----------------------------------------------------------------
    def metric_specs(self) -> list[Spec]:
        if self.conditional:
            k = self.model.net.n_classes
            return [
                Stream("images_rram", units="", shape=(PIXELS,), dtype="f4",
                       long_name="analog latents decoded by the RRAM decoder, pixels in [0, 1]"),
                Stream("images_software", units="", shape=(PIXELS,), dtype="f4",
                       long_name="analog latents decoded in software"),
                Stream("images_baseline", units="", shape=(PIXELS,), dtype="f4",
                       long_name="software-baseline latents decoded in software"),
                Stream("accuracy", units="", shape=(3, k), long_name="fraction classified as its condition; rows: "
                       "analog + RRAM decoder, analog + software decoder, software baseline"),
            ]
        return [Stream("kl", units="", shape=(2, 2),
                       long_name="histogram KL per coordinate (x, y); rows: analog, software")] + [
            Stream(name, units="", shape=(2,), long_name=f"{name.replace('_', ' ')}; analog, software")
            for name in RING_SCALARS]

    def scoring_steps(self) -> Iterator[Step]:
        if self.conditional:
            yield Step("decode and classify", self.decode_and_classify, estimate=10.0)
        else:
            yield Step("ring metrics", self.score_ring, estimate=1.0)

    # -- steps --------------------------------------------------------------------------
    def score_ring(self) -> None:
        final, software, _ = self.collected()
        reference = ring_reference()
        a, s = ring_scores(final, reference), ring_scores(software, reference)
        self.record("kl", np.vstack([a["kl"], s["kl"]]))
        for name in RING_SCALARS:
            self.record(name, np.array([a[name], s[name]]))
        log.info("ring: KL analog %s software %s, radius %.3f / %.3f", np.round(a["kl"], 4),
                 np.round(s["kl"], 4), a["mean_radius"], s["mean_radius"])

    def decode_and_classify(self) -> None:
        from protocols.diffusion.simulated_decoder import AnalogDecoder

        final, software, cond = self.collected()
        vae = self.vae()
        decoder = AnalogDecoder.program(vae, self.placed.x_scale, seed=self.p.decoder_seed)
        images = {"images_rram": decoder.decode(final, self.rng), "images_software": vae.decode_diffusion(final),
                  "images_baseline": vae.decode_diffusion(software)}
        for name, values in images.items():
            self.record_rows(name, values)
        clf = digit_classifier()
        classes = vae.meta.get("classes") or self.model.meta.get("config", {}).get("classes")
        rows = [list(clf.accuracy_per_class(images[n], cond, classes).values()) for n in images]
        self.record("accuracy", np.array(rows))
        log.info("digits accuracy per class (rram, software decoder, baseline): %s", np.round(rows, 3).tolist())

    def vae(self) -> Any:
        from protocols.diffusion.vae import VAE, load_vae

        if self.p.model == "digits":
            return load_vae()
        base = Path(self.p.model)
        return VAE.load(base.with_name(base.stem + "-vae.npz"))
