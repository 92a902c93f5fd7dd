"""Training of the score network in PyTorch (the ``train`` extra), as the seed trains it.

Denoising score matching on the VP-SDE: t ~ U(1e-5, 1), x_t = m(t) x_0 + s(t) z,
loss = mean((s_theta(x_t, t) s(t) + z)^2) + w * (activation penalty). The penalty is
the mean over the batch of the summed excess of hidden activations above 1.5 (the
level where the hardware amplifiers saturate); the seed sums the activations above
1.5 with a tiny weight, we penalise the excess so the weight means something.

Noise-injection training: every forward pass multiplies each weight and bias by
(1 + e), e ~ N(0, 0.1^2), values with |e| >= 0.2 redrawn uniformly in (-0.2, 0.2).
Class and time embeddings are DAC voltages, not conductances: no noise on them.
Adam (lr 2e-4, weight decay), gradient-norm clip 0.1, EMA 0.95 of the weights
(the EMA weights are the result), batch 512. Everything seeded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from protocols.diffusion.model import HIDDEN, ScoreNet
from protocols.diffusion.sde import BETA_MAX, BETA_MIN

log = logging.getLogger(__name__)

T_EPS = 1e-5    # smallest diffusion time drawn in training (seed)


@dataclass
class TrainConfig:
    """Hyper-parameters of score-network training (defaults: the seed's ring run).

    epochs: passes over the data set (>= 1); batch_size: samples per step;
    lr: Adam learning rate; weight_decay: Adam L2 weight; grad_clip: max gradient norm;
    ema: EMA decay per step in [0, 1); noise_std / noise_limit: relative weight noise
    of noise-injection training (noise_std 0 trains without noise); saturation_level:
    hidden activation (network units, ~ V on the bench) above which the penalty acts;
    saturation_weight: weight of that penalty; amplitude: output scale; beta_min,
    beta_max: training schedule; seed: RNG seed; threads: torch CPU threads.
    """

    epochs: int = 1500
    batch_size: int = 512
    lr: float = 2e-4
    weight_decay: float = 3e-5
    grad_clip: float = 0.1
    ema: float = 0.95
    noise_std: float = 0.1
    noise_limit: float = 0.2
    saturation_level: float = 1.5
    saturation_weight: float = 0.01
    amplitude: float = 5.0
    hidden: int = HIDDEN
    beta_min: float = BETA_MIN
    beta_max: float = BETA_MAX
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0, "weight_decay": self.weight_decay >= 0,
            "grad_clip": self.grad_clip > 0, "ema": 0 <= self.ema < 1,
            "noise_std": self.noise_std >= 0, "noise_limit": self.noise_limit > 0,
            "saturation_weight": self.saturation_weight >= 0, "amplitude": self.amplitude > 0,
            "threads": self.threads >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"{', '.join(bad)}: out of range in {self}")

    def as_dict(self) -> dict:
        """Plain dict for the model's json."""
        return asdict(self)


def multiplicative_noise(p: torch.Tensor, std: float, limit: float) -> torch.Tensor:
    """p * (1 + e), e ~ N(0, std^2); |e| >= limit redrawn uniform in (-limit, limit)."""
    e = torch.randn_like(p) * std
    far = e.abs() >= limit
    e = torch.where(far, (torch.rand_like(p) * 2.0 - 1.0) * limit, e)
    return p * (1.0 + e)


class TorchScoreNet(nn.Module):
    """Torch twin of :class:`ScoreNet` (same layout, same forward), for training."""

    def __init__(self, init: ScoreNet) -> None:
        super().__init__()
        f32 = torch.float32
        self.layers = nn.ParameterList(
            [nn.Parameter(torch.tensor(a, dtype=f32))
             for a in (init.w1, init.b1, init.w2, init.b2, init.w3, init.b3)]
        )
        self.register_buffer("frequencies", torch.tensor(init.frequencies, dtype=f32))
        self.amplitude = float(init.amplitude)
        self.class_embedding = (
            None if init.class_embedding is None
            else nn.Parameter(torch.tensor(init.class_embedding, dtype=f32))
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
        noise_std: float = 0.0, noise_limit: float = 0.2,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score (N, D) and both hidden activations (N, hidden)."""
        params = list(self.layers)
        if noise_std > 0:
            params = [multiplicative_noise(p, noise_std, noise_limit) for p in params]
        w1, b1, w2, b2, w3, b3 = params
        arg = 2.0 * torch.pi * t[:, None] * self.frequencies
        extra = torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)
        if self.class_embedding is not None:
            extra = extra + self.class_embedding[labels]
        h1 = torch.relu(x @ w1 + b1 + extra)
        h2 = torch.relu(h1 @ w2 + b2 + extra)
        return self.amplitude * (h2 @ w3 + b3), h1, h2

    def to_numpy(self) -> ScoreNet:
        """The current parameters as a numpy :class:`ScoreNet`."""
        arrays = [p.detach().double().numpy().copy() for p in self.layers]
        emb = None if self.class_embedding is None else (
            self.class_embedding.detach().double().numpy().copy())
        return ScoreNet(*arrays, self.frequencies.double().numpy().copy(), self.amplitude, emb)


def _marginal(t: torch.Tensor, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    log_m = -0.25 * t**2 * (cfg.beta_max - cfg.beta_min) - 0.5 * t * cfg.beta_min
    return torch.exp(log_m), torch.sqrt(-torch.expm1(2.0 * log_m))


def score_matching_loss(
    model: TorchScoreNet, x0: torch.Tensor, labels: torch.Tensor | None,
    cfg: TrainConfig, noise: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, denoising part) on one batch; ``noise`` enables weight noise."""
    t = torch.rand(x0.shape[0]) * (1.0 - T_EPS) + T_EPS
    z = torch.randn_like(x0)
    m, s = _marginal(t, cfg)
    xt = m[:, None] * x0 + s[:, None] * z
    std = cfg.noise_std if noise else 0.0
    score, h1, h2 = model(xt, t, labels, std, cfg.noise_limit)
    dsm = ((score * s[:, None] + z) ** 2).mean()
    excess = torch.relu(h1 - cfg.saturation_level).sum(1) + torch.relu(h2 - cfg.saturation_level).sum(1)
    return dsm + cfg.saturation_weight * excess.mean(), dsm


@dataclass
class TrainResult:
    """Trained network (EMA weights), loss per epoch (denoising part, mean) and time (s)."""

    net: ScoreNet
    epoch_loss: np.ndarray
    seconds: float


def train_score_net(
    data: np.ndarray, cfg: TrainConfig, labels: np.ndarray | None = None,
    n_classes: int = 0, progress: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train a score network on ``data`` (N, D) in data units.

    labels: condition index per sample (N,) for a conditional model with ``n_classes``.
    progress: called as progress(epoch, epochs, loss) after each epoch.
    """
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 2 or len(data) == 0:
        raise ValueError(f"data: expected a non-empty (N, D) array, got {data.shape}")
    if (labels is None) != (n_classes == 0):
        raise ValueError("labels, n_classes: give both for a conditional model, neither otherwise")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(data, cfg, labels, n_classes, progress)
    finally:
        torch.set_num_threads(old_threads)


def _train(data, cfg, labels, n_classes, progress) -> TrainResult:
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    init = ScoreNet.random(rng, dim=data.shape[1], hidden=cfg.hidden,
                           amplitude=cfg.amplitude, n_classes=n_classes)
    model = TorchScoreNet(init)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    shadow = [p.detach().clone() for p in model.parameters()]
    x_all = torch.from_numpy(data)
    y_all = None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.int64))
    noise = cfg.noise_std > 0
    losses = np.empty(cfg.epochs)
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = torch.from_numpy(rng.permutation(len(data)))
        total, batches = 0.0, 0
        for idx in torch.split(order, cfg.batch_size):
            loss, dsm = score_matching_loss(
                model, x_all[idx], None if y_all is None else y_all[idx], cfg, noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            with torch.no_grad():
                for s, p in zip(shadow, model.parameters(), strict=True):
                    s.mul_(cfg.ema).add_(p.detach(), alpha=1.0 - cfg.ema)
            total += dsm.item()
            batches += 1
        losses[epoch] = total / batches
        if progress is not None:
            progress(epoch + 1, cfg.epochs, losses[epoch])
    seconds = time.perf_counter() - start
    with torch.no_grad():
        for s, p in zip(shadow, model.parameters(), strict=True):
            p.copy_(s)
    log.info("trained %d epochs in %.1f s, final loss %.4f", cfg.epochs, seconds, losses[-1])
    return TrainResult(model.to_numpy(), losses, seconds)
