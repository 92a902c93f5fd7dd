"""The digital baseline, measured on this machine: the probability-flow Euler sampler in numpy and in torch (CPU).

Both run the seed's step counts (the model's ``sampling.n_steps``: 10,000 ring, 5,000
conditional) with the same network and time grid as
:func:`~protocols.diffusion.samplers.sample_probability_flow`, the time and condition
embeddings computed once (as a tuned digital implementation would). Each is timed twice
(:func:`analysis.speed_energy.measure_software`: warm-up, best of ``repeats``):

* throughput: a batch of ``batch`` samples at once, time per sample = batch time / batch;
* latency: one sample alone (batch of 1), the time a single request waits.

torch is optional (the ``train`` extra): without it the torch rows are absent and the
result says so. numpy runs on one core (these matrices are far too small for BLAS
threads), and so does torch (one intra-op thread: with more, spin-waiting threads made it
slower on this shared machine). The cores are recorded with the result for the energy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analysis.speed_energy import SoftwareBaseline, measure_software
from protocols.diffusion.samplers import sample_probability_flow, time_grid
from protocols.diffusion.weights import TrainedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigitalTiming:
    """One implementation on this machine: ``throughput`` (batched) and ``latency`` (batch of 1)
    per-sample timings (s), and the CPU cores it kept busy."""

    name: str
    throughput: SoftwareBaseline
    latency: SoftwareBaseline
    cores: int


def _labels(model: TrainedModel, n: int) -> np.ndarray | None:
    return np.arange(n) % model.net.n_classes if model.net.conditional else None


def numpy_sampler(model: TrainedModel, steps: int) -> Callable[[int], object]:
    """``run(n)``: n samples with the numpy probability-flow Euler sampler."""
    net = model.net

    def run(n: int) -> object:
        x0 = np.random.default_rng(1).standard_normal((n, net.dim))
        return sample_probability_flow(net, model.sampling_sde, x0, steps, model.sampling.t_end,
                                       cond=_labels(model, n))
    return run


def torch_sampler(model: TrainedModel, steps: int) -> Callable[[int], object] | None:
    """``run(n)``: the same sampler in torch (float32, CPU, inference mode); None without torch."""
    try:
        import torch
    except ModuleNotFoundError:
        return None
    net = model.net
    grid = time_grid(steps, t_end=model.sampling.t_end)
    # x <- x - (-beta/2) (x + score) dt: one python float per step, no tensor indexing in the loop
    coef = (-0.5 * model.sampling_sde.beta(grid)[:-1] * (grid[:-1] - grid[1:])).tolist()
    temb = torch.tensor(net.time_embedding(grid), dtype=torch.float32)
    w = {k: torch.tensor(getattr(net, k), dtype=torch.float32) for k in ("w1", "b1", "w2", "b2", "w3", "b3")}
    amp = float(net.amplitude)

    def run(n: int) -> object:
        # one thread: 2 x 14 matrices gain nothing from intra-op threads, and on a shared
        # machine the threads' spin-waits make it many times slower
        torch.set_num_threads(1)
        cond = _labels(model, n)
        cemb = torch.tensor(net.condition_embedding(cond, n), dtype=torch.float32)
        x = torch.tensor(np.random.default_rng(1).standard_normal((n, net.dim)), dtype=torch.float32)
        with torch.inference_mode():
            b1 = w["b1"] + cemb
            b2 = w["b2"] + cemb
            for k in range(steps):
                e = temb[k]
                h1 = torch.relu(torch.addmm(b1 + e, x, w["w1"]))
                h2 = torch.relu(torch.addmm(b2 + e, h1, w["w2"]))
                score = amp * torch.addmm(w["b3"], h2, w["w3"])
                x = x - coef[k] * (x + score)
        return x
    return run


def measure(model: TrainedModel, *, batch: int = 1000, repeats: int = 3, latency_repeats: int = 2,
            steps: int | None = None, torch_enabled: bool = True) -> list[DigitalTiming]:
    """Time every available implementation of ``model``'s sampler (throughput and latency).

    steps: Euler steps per sample (default the model's own: 10,000 ring, 5,000 conditional).
    """
    steps = int(steps or model.sampling.n_steps)
    found = [("numpy", numpy_sampler(model, steps), 1)]
    if torch_enabled:
        run = torch_sampler(model, steps)
        if run is None:
            log.info("torch not installed: the torch baseline is skipped")
        else:
            found.append(("torch", run, 1))
    return [DigitalTiming(name, measure_software(run, batch, steps, repeats),
                          measure_software(run, 1, steps, latency_repeats), cores)
            for name, run, cores in found]
