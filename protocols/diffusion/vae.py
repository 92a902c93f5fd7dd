"""The dense VAE of the conditional task's first version, numpy inference.

The task now uses the convolutional VAE (:mod:`~protocols.diffusion.conv_vae`); this one
reads VAE files written before it (``read_vae`` tells them apart), and its decoder runs on
the bench the same way (:meth:`VAE.decoder_layers`: dense layers only).

Encoder: pixels -> dense ReLU layers -> mean and log-variance of a 2-D latent.
Decoder: latent -> dense ReLU layers -> pixels through a sigmoid (values in [0, 1]).
All layers are dense (a transposed convolution is a structured dense layer, so a
dense decoder maps onto a crossbar macro directly); weights in crossbar layout
(inputs, outputs), ``y = x @ w + b``.

The diffusion model works on ``latent / latent_scale`` (the seed divides by 8), with
``latent_scale`` chosen at training so the encoded classes sit in about [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protocols.diffusion.weights import load_arrays, save_arrays


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))      # overflow-free logistic


def _dense_stack(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """ReLU after every layer but the last (left linear)."""
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x


@dataclass
class VAE:
    """Dense VAE with a ``latent_dim``-dimensional latent.

    encoder: layers (w, b) ending in 2 * latent_dim outputs (mean, then log-variance).
    decoder: layers (w, b) from latent_dim to the pixel count; sigmoid on the output.
    latent_scale: divisor from VAE latent to diffusion data units (> 0).
    image_shape: (H, W) of one image; meta: training config and metrics.
    """

    encoder: list[tuple[np.ndarray, np.ndarray]]
    decoder: list[tuple[np.ndarray, np.ndarray]]
    latent_scale: float
    image_shape: tuple[int, int]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.latent_scale > 0:
            raise ValueError(f"latent_scale: must be > 0, got {self.latent_scale}")
        pixels = self.image_shape[0] * self.image_shape[1]
        if self.encoder[0][0].shape[0] != pixels or self.decoder[-1][0].shape[1] != pixels:
            raise ValueError(f"image_shape: {self.image_shape} does not match the layer sizes")
        if self.encoder[-1][0].shape[1] != 2 * self.latent_dim:
            raise ValueError("encoder: last layer must give mean and log-variance")

    @property
    def latent_dim(self) -> int:
        """Dimension of the latent (2)."""
        return int(self.decoder[0][0].shape[0])

    @property
    def pixels(self) -> int:
        """Pixels per image (H * W)."""
        return int(self.image_shape[0] * self.image_shape[1])

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and log-variance, each (N, latent_dim), in VAE latent units.

        images: (N, H*W) or (N, H, W), pixels in [0, 1].
        """
        x = np.asarray(images, dtype=float).reshape(len(images), -1)
        if x.shape[1] != self.pixels:
            raise ValueError(f"images: {x.shape[1]} pixels per image, expected {self.pixels}")
        out = _dense_stack(x, self.encoder)
        return out[:, : self.latent_dim], out[:, self.latent_dim :]

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Images (N, H*W), pixels in [0, 1], from VAE latents z (N, latent_dim)."""
        z = np.asarray(z, dtype=float)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z: expected shape (N, {self.latent_dim}), got {z.shape}")
        return _sigmoid(_dense_stack(z, self.decoder))

    def decoder_layers(self, diffusion: bool = False) -> list:
        """The decoder as crossbar multiplies (dense layers; ReLU but the last); diffusion: the
        first layer takes diffusion data units (its weights times latent_scale)."""
        from protocols.diffusion.deconv import UnrolledLayer

        last = len(self.decoder) - 1
        return [UnrolledLayer("dense", w * (self.latent_scale if diffusion and k == 0 else 1.0), b, k < last,
                              (w.shape[0],), (w.shape[1],)) for k, (w, b) in enumerate(self.decoder)]

    def to_diffusion(self, z: np.ndarray) -> np.ndarray:
        """VAE latents -> diffusion data units (divide by ``latent_scale``)."""
        return np.asarray(z, dtype=float) / self.latent_scale

    def decode_diffusion(self, x: np.ndarray) -> np.ndarray:
        """Images from diffusion samples (N, latent_dim) in diffusion data units."""
        return self.decode(np.asarray(x, dtype=float) * self.latent_scale)

    # -------------------------------------------------------------- on disk
    def arrays(self) -> dict[str, np.ndarray]:
        """Named arrays: enc_w0, enc_b0, ..., dec_w0, ..., latent_scale, image_shape."""
        out: dict[str, np.ndarray] = {}
        for prefix, layers in (("enc", self.encoder), ("dec", self.decoder)):
            for i, (w, b) in enumerate(layers):
                out[f"{prefix}_w{i}"] = np.asarray(w, dtype=float)
                out[f"{prefix}_b{i}"] = np.asarray(b, dtype=float)
        out["latent_scale"] = np.asarray(self.latent_scale, dtype=float)
        out["image_shape"] = np.asarray(self.image_shape, dtype=np.int64)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> VAE:
        """Inverse of :meth:`arrays`."""
        def layers(prefix: str) -> list[tuple[np.ndarray, np.ndarray]]:
            out = []
            while f"{prefix}_w{len(out)}" in arrays:
                i = len(out)
                out.append((np.asarray(arrays[f"{prefix}_w{i}"], dtype=float),
                            np.asarray(arrays[f"{prefix}_b{i}"], dtype=float)))
            if not out:
                raise KeyError(f"VAE arrays: no {prefix}_w0")
            return out

        shape = tuple(int(v) for v in arrays["image_shape"])
        return cls(layers("enc"), layers("dec"), float(arrays["latent_scale"]), shape, meta or {})

    def save(self, path: str | Path) -> Path:
        """Write ``path.npz`` + ``path.json``."""
        meta = dict(self.meta)
        meta.setdefault("kind", "vae")
        return save_arrays(path, self.arrays(), meta)

    @classmethod
    def load(cls, path: str | Path) -> VAE:
        """Read a VAE file pair."""
        arrays, meta = load_arrays(path)
        return cls.from_arrays(arrays, meta)


def load_vae(name: str = "digits-vae") -> Any:
    """The shipped VAE of the digits task (convolutional: :func:`protocols.diffusion.conv_vae.load_vae`)."""
    from protocols.diffusion.conv_vae import load_vae as load

    return load(name)
