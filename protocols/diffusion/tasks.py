"""Data of the two tasks: the ring (unconditional) and three handwritten-digit classes
(conditional, through a VAE latent), plus the digit classifier that scores decoded
images.

EMNIST cannot be fetched offline, so the conditional task uses scikit-learn's bundled
8x8 handwritten digits; ``emnist.py`` reads local EMNIST files for the seed's letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.metrics import per_class_accuracy

RING_RADIUS = 0.7       # data units, seed's ring radius
RING_RADIAL_STD = 0.04  # data units, seed's radial standard deviation

# Digits 0, 1 and 7: chosen because their 2-D VAE latents form three well separated
# clusters (see data/models/digits-vae.json, "class_choice"), so a class is a region
# of the latent plane the conditional sampler can reach without crossing another.
DIGIT_CLASSES = (0, 1, 7)
DIGIT_SHAPE = (8, 8)
DIGIT_MAX = 16.0        # scikit-learn's digit pixels are integers 0..16


def ring_samples(
    n: int, rng: np.random.Generator,
    radius: float = RING_RADIUS, radial_std: float = RING_RADIAL_STD,
) -> np.ndarray:
    """``n`` points (n, 2) on a ring: uniform angle, radius ~ N(radius, radial_std^2).

    radius: mean radius in data units (> 0); radial_std: spread in data units (>= 0).
    """
    if n < 0:
        raise ValueError(f"n: must be >= 0, got {n}")
    if not radius > 0 or radial_std < 0:
        raise ValueError(f"radius, radial_std: need radius > 0, radial_std >= 0, got "
                         f"{radius}, {radial_std}")
    r = radius + radial_std * rng.standard_normal(n)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi)])


@dataclass
class LabelledImages:
    """Images (N, H*W) with pixel values in [0, 1], labels (N,) 0..K-1, the original
    class of each label (e.g. digits (0, 1, 7)) and the image shape (H, W)."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple
    shape: tuple[int, int]


def load_digit_images(classes: Sequence[int] | None = DIGIT_CLASSES) -> LabelledImages:
    """scikit-learn's handwritten digits, pixels scaled to [0, 1].

    classes: digits to keep (labels become their index in this list);
    None keeps all ten with labels equal to the digit.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    images = data.data / DIGIT_MAX
    target = data.target
    if classes is None:
        return LabelledImages(images, target.copy(), tuple(range(10)), DIGIT_SHAPE)
    classes = tuple(int(c) for c in classes)
    bad = [c for c in classes if not 0 <= c <= 9]
    if bad or len(set(classes)) != len(classes):
        raise ValueError(f"classes: need distinct digits 0..9, got {classes}")
    keep = np.isin(target, classes)
    lookup = np.full(10, -1)
    lookup[list(classes)] = np.arange(len(classes))  # digit -> condition index
    labels = lookup[target[keep]]
    return LabelledImages(images[keep], labels, classes, DIGIT_SHAPE)


class DigitClassifier:
    """Logistic regression on the pixels of the real digits (all ten classes).

    Fitted at construction from the bundled dataset (well under a second); it scores
    decoded images: :meth:`accuracy_per_class` is the fraction of images generated for
    each condition that it labels as that digit.
    """

    def __init__(self, seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression

        data = load_digit_images(None)
        self._model = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
        self._model.fit(data.images, data.labels)
        self.train_accuracy = float(self._model.score(data.images, data.labels))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Digit (0..9) of each image; images (N, 64) with pixels in [0, 1]."""
        images = np.asarray(images, dtype=float)
        if images.ndim != 2 or images.shape[1] != DIGIT_SHAPE[0] * DIGIT_SHAPE[1]:
            raise ValueError(f"images: expected shape (N, 64), got {images.shape}")
        return self._model.predict(images)

    def accuracy_per_class(
        self, images: np.ndarray, labels: np.ndarray, classes: Sequence[int] = DIGIT_CLASSES
    ) -> dict[int, float]:
        """Per condition: fraction of its images classified as its digit.

        labels: condition index per image (0..len(classes)-1); classes: digit of each index.
        """
        return per_class_accuracy(self.predict(images), labels, [int(c) for c in classes])
