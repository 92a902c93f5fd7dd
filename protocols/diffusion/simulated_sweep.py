"""One point of the noise sweep: a full simulated program-and-sample experiment.

:func:`run_point` is what a Dask worker runs (``protocols/diffusion/noise_sweep.py`` submits
it), and what the serial path calls in process. It is a plain function of a
picklable :class:`SweepPoint`, imports only numpy-level code, opens no bench and
writes no file: it builds its own :class:`~instruments.sim.world.SimWorld`.

Noise levels are multiples of the device model's defaults (``docs/device-model.md``):

* **write noise** ``m_w``: the cycle-to-cycle pulse noise ``pulse_c2c`` and the
  relaxation after programming (``relax_sigma0``, ``relax_sigma_rel``,
  ``relax_drift_rel``) times ``m_w``; the network is write-verified, left to relax
  for ``settle`` seconds, then used;
* **read noise** ``m_r``: the read noise on every conductance while the network
  computes, ``CircuitParams.read_noise_scale = m_r`` (``docs/circuit-model.md``), passed
  through :func:`protocols.diffusion.analog.world_sample` (the one place the sweep couples to
  the loop's read noise).

Quality is the seed's metric: the 1-D histogram KL of each coordinate (50 bins over
[-4, 4]) against the task's reference (fresh ring points; for the conditional digits models,
posterior draws of the real digits' latents, ``protocols.diffusion.scoring.task_reference``),
and ``kl_mean`` their mean (per coordinate); ``kl_pooled`` is the authors' form, both
coordinates in one histogram (``analysis.metrics.pooled_kl``); ``hist2d_distance`` the seed's
2-D histogram distance over the task's range. A conditional model samples its classes in equal
shares (one loop run per class) and ``accuracy`` is the fraction of its latents, decoded by the
shipped VAE in software, that the VAE's classifier labels as their class (lost samples count as
wrong; NaN for the ring, whose ``mean_radius`` and ``radial_std`` are NaN for the digits).
``kl_mean_software`` is the same for the model's noise-free numpy Euler sampler from the
same initial states (same step count): the baseline each world's analog samples are compared
with, since at 200 samples the histogram KL carries a finite-sample floor and the two models
differ before any noise. Samples that diverge or leave [-4, 4] fall out of the histograms, so ``lost_fraction``
records how many did; a coordinate with no sample left scores :func:`kl_ceiling`, the
metric's value for all mass in one bin the ring never reaches, so that broken worlds rank
worst in the medians instead of dropping out.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, replace

import numpy as np

log = logging.getLogger("rrambench.noise_sweep")

#: Fresh ring points the samples are compared with (as the software baseline does).
REFERENCE_POINTS = 10_000
#: Metrics a point returns, in the order of the run file's ``metrics`` stream.
METRICS = ("kl_x", "kl_y", "kl_mean", "kl_pooled", "hist2d_distance", "mean_radius", "radial_std",
           "programming_rms_error", "saturated_fraction", "lost_fraction", "kl_mean_software", "accuracy",
           "worker_seconds")
#: Units of each metric (SI; "" for dimensionless or data units).
METRIC_UNITS = {"programming_rms_error": "S", "worker_seconds": "s"}
#: Macros of each point's world: the network's three plus spares to move layers off stuck cells.
N_MACROS = 8


@dataclass(frozen=True)
class SweepPoint:
    """One experiment of the grid.

    model: shipped model name ("ring", "digits" noise-trained; "ring-plain", "digits-plain"); read_noise,
    write_noise: multipliers (>= 0) of the device model's defaults; samples: sampled
    trajectories (>= 1); n_steps: loop fine steps per sample (>= 1); settle: time between
    programming and sampling (s, >= 0); seed: world and initial-state seed (>= 0), the
    same for every point of one simulated world (common random numbers: noise levels and
    models are compared on the same devices and initial states); world: index of that
    world in its sweep (>= 0; recorded, the seed alone decides the result).
    """

    model: str
    read_noise: float
    write_noise: float
    samples: int
    n_steps: int
    settle: float
    seed: int
    world: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.read_noise) and self.read_noise >= 0):
            raise ValueError(f"read_noise must be a multiplier >= 0, got {self.read_noise!r}")
        if not (np.isfinite(self.write_noise) and self.write_noise >= 0):
            raise ValueError(f"write_noise must be a multiplier >= 0, got {self.write_noise!r}")
        if self.samples < 1 or self.n_steps < 1 or self.seed < 0 or self.world < 0:
            raise ValueError(f"samples, n_steps must be >= 1 and seed, world >= 0, got {self.samples}, "
                             f"{self.n_steps}, {self.seed}, {self.world}")
        if not (np.isfinite(self.settle) and self.settle >= 0):
            raise ValueError(f"settle must be a time >= 0 s, got {self.settle!r}")


def scaled_device(write_noise: float):
    """Default ``DeviceParams`` with programming noise and relaxation times ``write_noise``."""
    from instruments.sim.device_params import DeviceParams

    p = DeviceParams()
    return replace(p, pulse_c2c=p.pulse_c2c * write_noise, relax_sigma0=p.relax_sigma0 * write_noise,
                   relax_sigma_rel=p.relax_sigma_rel * write_noise,
                   relax_drift_rel=p.relax_drift_rel * write_noise)


@functools.lru_cache(maxsize=8)
def mapped_model(name: str):
    """(model, mapped network) of a shipped model; cached per worker process (the
    mapping's activation survey is the same for every point)."""
    from protocols.diffusion.mapping import map_score_net
    from protocols.diffusion.weights import load_shipped

    model = load_shipped(name)
    return model, map_score_net(model)


def world_seeds(seed: int, worlds: int) -> list[int]:
    """One independent seed per simulated world, spawned from the run's ``seed`` (>= 0)."""
    return [int(child.generate_state(1, dtype=np.uint32)[0])
            for child in np.random.SeedSequence(seed).spawn(worlds)]


def kl_ceiling(reference: np.ndarray) -> float:
    """The histogram KL of samples all in the outermost bin of [-4, 4] (nats): what a
    coordinate scores when no sample is left inside the histogram range."""
    from analysis.metrics import KL_BINS, KL_RANGE, histogram_kl

    edge = KL_RANGE[1] - 0.5 * (KL_RANGE[1] - KL_RANGE[0]) / KL_BINS
    return histogram_kl(np.array([edge]), reference)


def sample_quality(final: np.ndarray, reference: np.ndarray, task: str = "ring") -> dict[str, float]:
    """Per-coordinate KL (nats), their mean, the pooled KL (values outside the range fall out, as in the
    authors' code), 2-D histogram distance over the task's range, radius statistics (ring; NaN for
    the digits) and the fraction of samples lost (non-finite or outside the KL range) of ``final`` (N, 2)."""
    from analysis.metrics import KL_RANGE, histogram2d_distance, histogram_kl, pooled_kl, ring_statistics
    from protocols.diffusion.scoring import HIST2D_RANGES

    finite = np.all(np.isfinite(final), axis=1)
    kept = final[finite]
    inside = finite.copy()
    inside[finite] = np.all((kept >= KL_RANGE[0]) & (kept <= KL_RANGE[1]), axis=1)
    kl = []
    for d in range(final.shape[1]):
        column = kept[:, d]
        in_range = column[(column >= KL_RANGE[0]) & (column <= KL_RANGE[1])]
        kl.append(histogram_kl(in_range, reference[:, d]) if in_range.size else kl_ceiling(reference[:, d]))
    nan = float("nan")
    radius = spread = distance = nan
    if kept.size:
        distance = float(histogram2d_distance(kept, reference, value_range=HIST2D_RANGES[task]))
        if task == "ring":
            stats = ring_statistics(kept)
            radius, spread = stats.mean_radius, stats.radial_std
    values = kept.ravel()
    any_inside = np.any((values >= KL_RANGE[0]) & (values <= KL_RANGE[1]))
    pooled = pooled_kl(kept, reference) if any_inside else kl_ceiling(reference)
    return {"kl_x": float(kl[0]), "kl_y": float(kl[1]), "kl_mean": float(np.mean(kl)), "kl_pooled": float(pooled),
            "hist2d_distance": distance,
            "mean_radius": radius, "radial_std": spread, "lost_fraction": float(1.0 - np.mean(inside))}


def decoded_accuracy(model_name: str, final: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes of the fraction of latents ``final`` (N, 2) that decode (the model's VAE, in
    software) to an image its classifier labels as the latent's class ``labels`` (N,); a latent
    that diverged counts as wrong."""
    from protocols.diffusion.conv_vae import class_code
    from protocols.diffusion.scoring import model_vae

    vae = model_vae(model_name)
    classes = [class_code(c) for c in vae.meta["classes"]]
    finite = np.all(np.isfinite(final), axis=1)
    predicted = np.full(len(final), -1)
    if finite.any():
        predicted[finite] = vae.classifier.predict(vae.decode_diffusion(final[finite]))
    codes = np.asarray(classes)[labels]
    return float(np.mean([np.mean(predicted[labels == c] == codes[labels == c]) for c in np.unique(labels)]))


def run_point(point: SweepPoint) -> dict[str, object]:
    """Program the model's network into a fresh simulated world and sample it.

    Returns ``{"point": point, "metrics": {name: float}, "final": (samples, 2) array}``;
    metric names and units: :data:`METRICS`, :data:`METRIC_UNITS`. ``programming_rms_error``
    is the RMS error of the programmed weights G+ - G- (S) when sampling starts.
    """
    from instruments.sim.direct import DirectArrayAccess
    from instruments.sim.world import SimWorld
    from protocols.diffusion.analog import initial_noise, program_network, world_sample
    from protocols.diffusion.samplers import sample_probability_flow
    from protocols.diffusion.tasks import ring_samples

    start = time.perf_counter()
    model, mapped = mapped_model(point.model)
    world = SimWorld(params=scaled_device(point.write_noise), seed=point.seed, n_macros=N_MACROS)
    outcome = program_network(DirectArrayAccess(world), mapped, shape=world.shape, now=world.clock.now,
                              sleep=world.clock.sleep)
    mapped = outcome.mapped  # layers moved off stuck cells, if any
    world.clock.sleep(point.settle)
    macro, row, col, target = mapped.cells()
    weight_error = [(gp - gn) - (tp - tn) for (gp, gn), (tp, tn) in
                    zip(mapped.split(world.conductance()[macro, row, col]), mapped.split(target), strict=True)]
    rng = np.random.default_rng(point.seed)
    x0 = initial_noise(rng, point.samples, mapped.net.dim)
    # a conditional model: its classes in equal shares (as many as fit), one loop run per class
    labels = (np.arange(point.samples) * model.net.n_classes // point.samples if model.net.conditional
              else np.zeros(point.samples, int))
    final, saturated = np.empty_like(x0), np.zeros(point.samples, bool)
    for c in np.unique(labels):
        rows = labels == c
        result = world_sample(world, mapped, model, x0[rows], sde=False, rng=rng, n_steps=point.n_steps,
                              read_noise_scale=point.read_noise, cond=int(c) if model.net.conditional else None)
        final[rows] = result.final
        if result.saturated is not None:
            saturated[rows] = result.saturated
    task = "digits" if model.net.conditional else "ring"
    if task == "ring":
        reference = ring_samples(REFERENCE_POINTS, np.random.default_rng(point.seed + 1))
    else:
        from protocols.diffusion.scoring import task_reference

        reference = task_reference("digits")
    software = sample_probability_flow(model.net, model.sampling_sde, x0, point.n_steps, model.sampling.t_end,
                                       cond=labels if model.net.conditional else None).final
    metrics = {
        **sample_quality(final, reference, task),
        "kl_mean_software": sample_quality(software, reference, task)["kl_mean"],
        "accuracy": decoded_accuracy(point.model, final, labels) if model.net.conditional else float("nan"),
        "programming_rms_error": float(np.sqrt(np.mean(np.concatenate([e.ravel() for e in weight_error]) ** 2))),
        "saturated_fraction": float(np.mean(saturated)),
        "worker_seconds": time.perf_counter() - start,
    }
    log.info("%s read x%g write x%g world %d: KL %.3g", point.model, point.read_noise, point.write_noise,
             point.world, metrics["kl_mean"])
    return {"point": point, "metrics": metrics, "final": final.astype(np.float32)}
