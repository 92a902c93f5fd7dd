"""Training of the conditional task's VAE in PyTorch (the ``train`` extra).

A dense VAE (pixels -> 32 ReLU -> mean, log-variance of a 2-D latent; latent -> 32
ReLU -> pixels, sigmoid), trained full-batch with Adam on the Bernoulli
reconstruction loss plus the KL term. The latent scale for diffusion is chosen so
that 99 % of the encoded means lie within [-1, 1] after division (rounded up to 0.5).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from protocols.diffusion.vae import VAE


@dataclass
class VAEConfig:
    """VAE training settings.

    hidden: width of the hidden layers; latent_dim: latent size (2); steps: full-batch
    Adam steps; lr: learning rate; kl_weight: weight of the KL term (1 = ELBO);
    seed: RNG seed; threads: torch CPU threads.
    """

    hidden: int = 32
    latent_dim: int = 2
    steps: int = 3000
    lr: float = 5e-3
    kl_weight: float = 1.0
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        bad = [k for k, ok in {"hidden": self.hidden >= 1, "latent_dim": self.latent_dim >= 1,
                               "steps": self.steps >= 1, "lr": self.lr > 0,
                               "kl_weight": self.kl_weight >= 0}.items() if not ok]
        if bad:
            raise ValueError(f"{', '.join(bad)}: out of range in {self}")

    def as_dict(self) -> dict:
        """Plain dict for the model's json."""
        return asdict(self)


class _TorchVAE(nn.Module):
    def __init__(self, pixels: int, cfg: VAEConfig) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(pixels, cfg.hidden), nn.ReLU(),
                                 nn.Linear(cfg.hidden, 2 * cfg.latent_dim))
        self.dec = nn.Sequential(nn.Linear(cfg.latent_dim, cfg.hidden), nn.ReLU(),
                                 nn.Linear(cfg.hidden, pixels))
        self.latent_dim = cfg.latent_dim

    def loss(self, x: torch.Tensor, kl_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.enc(x)
        mu, logvar = out[:, : self.latent_dim], out[:, self.latent_dim :]
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.dec(z)
        rec = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp()) / len(x)
        return rec + kl_weight * kl, rec

    @staticmethod
    def _layers(seq: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(m.weight.detach().double().numpy().T.copy(), m.bias.detach().double().numpy().copy())
                for m in seq if isinstance(m, nn.Linear)]


def latent_scale_for(means: np.ndarray) -> float:
    """Divisor putting 99 % of latent coordinates within [-1, 1], rounded up to 0.5."""
    q = float(np.quantile(np.abs(means), 0.99))
    return max(0.5, float(np.ceil(2.0 * q) / 2.0))


def train_vae(images: np.ndarray, image_shape: tuple[int, int], cfg: VAEConfig) -> VAE:
    """Train on ``images`` (N, H*W), pixels in [0, 1]; returns the numpy VAE.

    The result's meta holds the config, final reconstruction loss (nats per image) and
    training time (s).
    """
    x_np = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    if x_np.min() < 0 or x_np.max() > 1:
        raise ValueError("images: pixel values must lie in [0, 1]")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        torch.manual_seed(cfg.seed)
        model = _TorchVAE(x_np.shape[1], cfg)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        x = torch.from_numpy(x_np)
        start = time.perf_counter()
        for _ in range(cfg.steps):
            loss, rec = model.loss(x, cfg.kl_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(old_threads)
    enc, dec = _TorchVAE._layers(model.enc), _TorchVAE._layers(model.dec)
    vae = VAE(enc, dec, 1.0, tuple(image_shape))
    mu, _ = vae.encode(x_np)
    vae.latent_scale = latent_scale_for(mu)
    vae.meta = {"config": cfg.as_dict(), "metrics": {
        "reconstruction_nats_per_image": float(rec.detach()), "train_seconds": seconds}}
    return vae
