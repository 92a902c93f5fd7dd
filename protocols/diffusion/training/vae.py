"""Training of the conditional task's convolutional VAE in PyTorch (the ``train`` extra).

The network of :mod:`protocols.diffusion.conv_vae` (the authors' ``convVAE``, sized to the
bench's macros), trained with Adam on mini-batches: the Bernoulli reconstruction loss plus
the KL term (weight 0.5) against the prior N(0, prior_std^2 I). Its latents are divided by 8 for
diffusion (``LATENT_DIVISOR``, the authors' divisor). The classifier that scores decoded
images (:class:`~protocols.diffusion.conv_vae.ImageClassifier`) is fitted here too.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from protocols.diffusion.conv_vae import LATENT_DIVISOR, ConvVAE, ImageClassifier

#: Largest decoder channel count: a transposed convolution's crossbar takes 4 inputs per
#: channel (the 2x2 window), and 4 x 7 rows leave 4 of a macro's 32 rows for the bias.
MAX_DECODER_CHANNELS = 7


@dataclass
class VAEConfig:
    """Convolutional VAE settings.

    enc_channels: channels of the two encoder convolutions; enc_hidden: width of the
    encoder's dense layer; dec_channels: channels after the decoder's dense layer and after
    its first transposed convolution (each 1..7, they must fit a macro); latent_dim: 2;
    prior_std: standard deviation of the latent prior (VAE units); steps: Adam steps;
    batch: images per step (the whole set when smaller); lr: learning rate; kl_weight:
    weight of the KL term (1 = ELBO; 0.5 keeps the posteriors tight enough that 98 % of
    the digits' posterior draws decode to their class, 97 % at 1); seed; threads: torch CPU
    threads (1: a second thread only waits on a busy 2-core machine).
    """

    enc_channels: tuple[int, int] = (8, 16)
    enc_hidden: int = 32
    dec_channels: tuple[int, int] = (6, 6)
    latent_dim: int = 2
    prior_std: float = 4.0
    steps: int = 3000
    batch: int = 512
    lr: float = 3e-3
    kl_weight: float = 0.5
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        self.enc_channels, self.dec_channels = tuple(self.enc_channels), tuple(self.dec_channels)
        checks = {"enc_channels": len(self.enc_channels) == 2 and min(self.enc_channels) >= 1,
                  "dec_channels": len(self.dec_channels) == 2
                  and all(1 <= c <= MAX_DECODER_CHANNELS for c in self.dec_channels),
                  "enc_hidden": self.enc_hidden >= 1, "latent_dim": self.latent_dim >= 1,
                  "prior_std": self.prior_std > 0, "steps": self.steps >= 1, "batch": self.batch >= 1,
                  "lr": self.lr > 0, "kl_weight": self.kl_weight >= 0, "threads": self.threads >= 1}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"{', '.join(bad)}: out of range in {self}")

    def as_dict(self) -> dict:
        """Plain dict for the model's json."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class _TorchConvVAE(nn.Module):
    def __init__(self, side: int, cfg: VAEConfig) -> None:
        super().__init__()
        (c1, c2), (d0, d1), q = cfg.enc_channels, cfg.dec_channels, side // 4
        self.q, self.d0, self.latent_dim = q, d0, cfg.latent_dim
        self.conv0, self.conv1 = nn.Conv2d(1, c1, 3, 2, 1), nn.Conv2d(c1, c2, 3, 2, 1)
        self.fc, self.out = nn.Linear(c2 * q * q, cfg.enc_hidden), nn.Linear(cfg.enc_hidden, 2 * cfg.latent_dim)
        self.dec_fc = nn.Linear(cfg.latent_dim, d0 * q * q)
        self.deconv0 = nn.ConvTranspose2d(d0, d1, 3, 2, 1, output_padding=1)
        self.deconv1 = nn.ConvTranspose2d(d1, 1, 3, 2, 1, output_padding=1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.conv1(torch.relu(self.conv0(x))))
        out = self.out(torch.relu(self.fc(h.flatten(1))))
        return out[:, : self.latent_dim], out[:, self.latent_dim :]

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.dec_fc(z)).view(-1, self.d0, self.q, self.q)
        return self.deconv1(torch.relu(self.deconv0(h)))

    def loss(self, x: torch.Tensor, kl_weight: float, prior_var: float) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.decode_logits(z)
        rec = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
        kl = 0.5 * torch.sum((logvar.exp() + mu**2) / prior_var - 1 - logvar + math.log(prior_var)) / len(x)
        return rec + kl_weight * kl, rec

    def params_numpy(self) -> dict[str, np.ndarray]:
        def a(t: torch.Tensor) -> np.ndarray:
            return t.detach().double().numpy().copy()

        return {"enc_conv0_w": a(self.conv0.weight), "enc_conv0_b": a(self.conv0.bias),
                "enc_conv1_w": a(self.conv1.weight), "enc_conv1_b": a(self.conv1.bias),
                "enc_fc_w": a(self.fc.weight).T.copy(), "enc_fc_b": a(self.fc.bias),
                "enc_out_w": a(self.out.weight).T.copy(), "enc_out_b": a(self.out.bias),
                "dec_fc_w": a(self.dec_fc.weight).T.copy(), "dec_fc_b": a(self.dec_fc.bias),
                "dec_deconv0_w": a(self.deconv0.weight), "dec_deconv0_b": a(self.deconv0.bias),
                "dec_deconv1_w": a(self.deconv1.weight), "dec_deconv1_b": a(self.deconv1.bias)}


def train_vae(images: np.ndarray, image_shape: tuple[int, int], cfg: VAEConfig) -> ConvVAE:
    """Train on ``images`` (N, S*S), pixels in [0, 1], S a multiple of 4; returns the numpy VAE
    (no classifier yet: :func:`fit_classifier`).

    The result's meta holds the config, the final reconstruction loss (nats per image, on the
    whole set) and the training time (s).
    """
    side = int(image_shape[0])
    if tuple(image_shape) != (side, side) or side % 4:
        raise ValueError(f"image_shape: square with a side divisible by 4, got {image_shape}")
    x_np = np.asarray(images, dtype=np.float32).reshape(len(images), 1, side, side)
    if x_np.min() < 0 or x_np.max() > 1:
        raise ValueError("images: pixel values must lie in [0, 1]")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        model = _TorchConvVAE(side, cfg)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        x = torch.from_numpy(x_np)
        batch = min(cfg.batch, len(x))
        prior_var = cfg.prior_std**2
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=gen)
        at = 0
        for _ in range(cfg.steps):
            if at + batch > len(x):
                order, at = torch.randperm(len(x), generator=gen), 0
            loss, _ = model.loss(x[order[at : at + batch]], cfg.kl_weight, prior_var)
            at += batch
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            _, rec = model.loss(x, cfg.kl_weight, prior_var)
    finally:
        torch.set_num_threads(old_threads)
    vae = ConvVAE(model.params_numpy(), LATENT_DIVISOR, (side, side))
    vae.meta = {"config": cfg.as_dict(), "metrics": {
        "reconstruction_nats_per_image": float(rec), "train_seconds": seconds}}
    return vae


def fit_classifier(images: np.ndarray, codes: np.ndarray, seed: int = 0) -> tuple[ImageClassifier, float]:
    """Multinomial logistic regression on pixels; returns the classifier and its training accuracy.

    images: (N, pixels) in [0, 1]; codes: (N,) class codes (a digit, or a letter's code point).
    """
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
    model.fit(np.asarray(images, dtype=float), np.asarray(codes))
    clf = ImageClassifier(model.coef_.T.copy(), model.intercept_.copy(), model.classes_.astype(np.int64))
    if len(model.classes_) == 2:       # sklearn keeps one column for two classes: make it a softmax pair
        clf = ImageClassifier(np.hstack([-clf.w / 2, clf.w / 2]), np.array([-clf.b[0] / 2, clf.b[0] / 2]),
                              clf.codes)
    return clf, float(model.score(images, codes))
