"""The conditional task's convolutional VAE, numpy inference (training: ``training/vae.py``).

As the authors' ``convVAE``, sized to the bench's macros:

- encoder (software only): two convolutions 3x3, stride 2, padding 1 (1 -> c1 -> c2
  channels, ReLU), a dense ReLU layer, then the mean and log-variance of a 2-D latent;
- decoder (on RRAM): a dense layer from the latent to ``d0`` channels of ``S/4 x S/4``
  (ReLU), a transposed convolution 3x3, stride 2 to ``d1`` channels of ``S/2 x S/2``
  (ReLU), a second to one channel of ``S x S`` (linear), the sigmoid on the host. Each
  decoder layer is one crossbar matrix (:mod:`~protocols.diffusion.deconv`): dense
  ``(2, d0 S^2/16)``, then ``(4 d0, 4 d1)`` and ``(4 d1, 4)`` applied to every pixel's
  2x2 window; ``4 d + bias rows`` must fit a macro's 32 rows, so d0, d1 <= 7.

Image side ``S``: any multiple of 4 (8 for scikit-learn's digits, 12 for EMNIST letters
prepared as the authors do, 28 for EMNIST as stored). The latent prior has standard
deviation ``prior_std`` (4 by default) so the latents spread over about +-8, and the
diffusion model works on ``latent / latent_scale`` with ``latent_scale = 8``, the authors'
divisor.

:class:`ImageClassifier` (multinomial logistic regression in numpy, trained with the VAE
and stored in its file) scores decoded images.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protocols.diffusion.deconv import UnrolledLayer, conv2d, deconv_matrix, run_layers
from protocols.diffusion.vae import VAE
from protocols.diffusion.weights import load_arrays, save_arrays, shipped_path

#: The authors' divisor from VAE latent to diffusion data units.
LATENT_DIVISOR = 8.0
ENCODER_KEYS = ("enc_conv0_w", "enc_conv0_b", "enc_conv1_w", "enc_conv1_b", "enc_fc_w", "enc_fc_b",
                "enc_out_w", "enc_out_b")
DECODER_KEYS = ("dec_fc_w", "dec_fc_b", "dec_deconv0_w", "dec_deconv0_b", "dec_deconv1_w", "dec_deconv1_b")


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))      # overflow-free logistic


def class_code(name: int | str) -> int:
    """Integer code of a class: a digit is itself, a letter its code point."""
    if isinstance(name, str):
        if len(name) != 1 or name not in string.ascii_letters:
            raise ValueError(f"class {name!r}: a digit or one letter")
        return ord(name)
    return int(name)


@dataclass
class ImageClassifier:
    """Softmax regression on pixels: ``codes[argmax(images @ w + b)]``.

    w: (pixels, K); b: (K,); codes: (K,) class codes (:func:`class_code`).
    """

    w: np.ndarray
    b: np.ndarray
    codes: np.ndarray

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class code of each image; images (N, pixels) in [0, 1]."""
        images = np.asarray(images, dtype=float)
        if images.ndim != 2 or images.shape[1] != self.w.shape[0]:
            raise ValueError(f"images: expected shape (N, {self.w.shape[0]}), got {images.shape}")
        return self.codes[np.argmax(images @ self.w + self.b, axis=1)]

    def accuracy_per_class(self, images: np.ndarray, labels: np.ndarray, classes: Sequence) -> dict:
        """Per condition: fraction of its images classified as its class (digit or letter).

        labels: condition index per image; classes: the class of each index.
        """
        from analysis.metrics import per_class_accuracy

        codes = [class_code(c) for c in classes]
        acc = per_class_accuracy(self.predict(images), labels, codes)
        return {c: acc[k] for c, k in zip(classes, codes, strict=True)}


@dataclass
class ConvVAE:
    """Convolutional VAE; ``params`` holds the named arrays (:data:`ENCODER_KEYS`,
    :data:`DECODER_KEYS`). latent_scale: divisor to diffusion data units (> 0);
    image_shape: (S, S); classifier: the decoded images' scorer, or None; reference: encoded
    means of (up to 2000 of) the training images, (M, 2) diffusion units, or None (they set
    the decoder's voltage scales on the bench); meta: training config, classes, metrics."""

    params: dict[str, np.ndarray]
    latent_scale: float
    image_shape: tuple[int, int]
    classifier: ImageClassifier | None = None
    reference: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [k for k in (*ENCODER_KEYS, *DECODER_KEYS) if k not in self.params]
        if missing:
            raise ValueError(f"ConvVAE: arrays missing: {', '.join(missing)}")
        if not self.latent_scale > 0:
            raise ValueError(f"latent_scale: must be > 0, got {self.latent_scale}")
        side = self.image_shape[0]
        if self.image_shape != (side, side) or side % 4:
            raise ValueError(f"image_shape: square with a side divisible by 4, got {self.image_shape}")
        self.decoder_layers()        # the shapes chain

    @property
    def latent_dim(self) -> int:
        return int(self.params["dec_fc_w"].shape[0])

    @property
    def pixels(self) -> int:
        return int(self.image_shape[0] * self.image_shape[1])

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and log-variance, each (N, latent_dim), VAE latent units; images
        (N, S*S) or (N, S, S), pixels in [0, 1]."""
        p = self.params
        x = np.asarray(images, dtype=float).reshape(len(images), 1, *self.image_shape)
        for k in range(2):
            x = np.maximum(conv2d(x, p[f"enc_conv{k}_w"], p[f"enc_conv{k}_b"]), 0.0)
        h = np.maximum(x.reshape(len(x), -1) @ p["enc_fc_w"] + p["enc_fc_b"], 0.0)
        out = h @ p["enc_out_w"] + p["enc_out_b"]
        return out[:, : self.latent_dim], out[:, self.latent_dim :]

    def decoder_layers(self, diffusion: bool = False) -> list[UnrolledLayer]:
        """The decoder as crossbar multiplies: dense, deconv, deconv (the last linear).

        diffusion: the first layer takes diffusion data units (its weights times latent_scale).
        """
        p = self.params
        side = self.image_shape[0]
        w0 = p["dec_fc_w"] * (self.latent_scale if diffusion else 1.0)
        d0 = w0.shape[1] // (side // 4) ** 2
        d1 = p["dec_deconv0_w"].shape[1]
        return [
            UnrolledLayer("dense", w0, p["dec_fc_b"], True, (self.latent_dim,), (d0, side // 4, side // 4)),
            UnrolledLayer("deconv", deconv_matrix(p["dec_deconv0_w"]), np.repeat(p["dec_deconv0_b"], 4), True,
                          (d0, side // 4, side // 4), (d1, side // 2, side // 2)),
            UnrolledLayer("deconv", deconv_matrix(p["dec_deconv1_w"]), np.repeat(p["dec_deconv1_b"], 4), False,
                          (d1, side // 2, side // 2), (1, side, side)),
        ]

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Images (N, S*S), pixels in [0, 1], from VAE latents z (N, latent_dim)."""
        z = np.asarray(z, dtype=float)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z: expected shape (N, {self.latent_dim}), got {z.shape}")
        return _sigmoid(run_layers(self.decoder_layers(), z))

    def feature_maps(self, x: np.ndarray) -> list[np.ndarray]:
        """The decoder's maps for diffusion latents ``x`` (N, 2), layer by layer: (N, d0, S/4, S/4),
        (N, d1, S/2, S/2) after their ReLU, then the image (N, 1, S, S) after the sigmoid."""
        maps, out = np.asarray(x, dtype=float), []
        for layer in self.decoder_layers(diffusion=True):
            maps = layer.forward(maps)
            out.append(maps)
        out[-1] = _sigmoid(out[-1])
        return out

    def to_diffusion(self, z: np.ndarray) -> np.ndarray:
        """VAE latents -> diffusion data units (divide by ``latent_scale``)."""
        return np.asarray(z, dtype=float) / self.latent_scale

    def decode_diffusion(self, x: np.ndarray) -> np.ndarray:
        """Images from diffusion samples (N, latent_dim) in diffusion data units."""
        return self.decode(np.asarray(x, dtype=float) * self.latent_scale)

    # -------------------------------------------------------------- on disk
    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: np.asarray(v, dtype=float) for k, v in self.params.items()}
        out["latent_scale"] = np.asarray(self.latent_scale, dtype=float)
        out["image_shape"] = np.asarray(self.image_shape, dtype=np.int64)
        if self.classifier is not None:
            out.update(clf_w=self.classifier.w, clf_b=self.classifier.b,
                       clf_codes=np.asarray(self.classifier.codes, dtype=np.int64))
        if self.reference is not None:
            out["reference_latents"] = np.asarray(self.reference, dtype=float)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> ConvVAE:
        params = {k: np.asarray(arrays[k], dtype=float) for k in (*ENCODER_KEYS, *DECODER_KEYS) if k in arrays}
        clf = None
        if "clf_w" in arrays:
            clf = ImageClassifier(np.asarray(arrays["clf_w"], float), np.asarray(arrays["clf_b"], float),
                                  np.asarray(arrays["clf_codes"], np.int64))
        shape = tuple(int(v) for v in arrays["image_shape"])
        ref = np.asarray(arrays["reference_latents"], float) if "reference_latents" in arrays else None
        return cls(params, float(arrays["latent_scale"]), shape, clf, ref, meta or {})

    def save(self, path: str | Path) -> Path:
        """Write ``path.npz`` + ``path.json``."""
        meta = dict(self.meta)
        meta["kind"] = "conv-vae"
        return save_arrays(path, self.arrays(), meta)


def read_vae(path: str | Path) -> VAE | ConvVAE:
    """A VAE file pair, convolutional or dense (files written before the convolutional VAE)."""
    arrays, meta = load_arrays(path)
    if "dec_fc_w" in arrays:
        return ConvVAE.from_arrays(arrays, meta)
    return VAE.from_arrays(arrays, meta)


def load_vae(name: str = "digits-vae") -> VAE | ConvVAE:
    """The shipped VAE of the digits task."""
    return read_vae(shipped_path(name))


def reference_latents(vae: Any) -> np.ndarray:
    """Encoded means of the training images (M, 2), diffusion units: those ``vae`` carries, else
    (dense VAEs of the 8x8 digits) those of the digits of its classes."""
    ref = getattr(vae, "reference", None)
    if ref is not None:
        return ref
    if vae.image_shape != (8, 8):
        raise ValueError(f"this VAE ({vae.image_shape[0]}x{vae.image_shape[1]} images) carries no reference latents")
    from protocols.diffusion.tasks import load_digit_images

    images = load_digit_images(vae.meta.get("classes") or None).images
    return vae.to_diffusion(vae.encode(images)[0])


def classifier_of(vae: Any) -> Any:
    """The scorer of ``vae``'s decoded images: its own classifier, else the digit classifier
    (dense VAEs of the 8x8 digits, written before classifiers were stored)."""
    clf = getattr(vae, "classifier", None)
    if clf is not None:
        return clf
    if vae.image_shape != (8, 8):
        raise ValueError(f"this VAE ({vae.image_shape[0]}x{vae.image_shape[1]} images) carries no classifier")
    from protocols.diffusion.tasks import DigitClassifier

    return DigitClassifier()
