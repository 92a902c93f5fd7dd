"""Speed and energy per sample of a shipped model: the analog estimate next to the software baseline.

Maps the model as the bench would (:func:`~protocols.diffusion.mapping.map_score_net`),
takes the row voltages along software probability-flow trajectories and costs the loop
with :mod:`analysis.speed_energy` (``docs/speed-energy.md``)::

    python -m protocols.diffusion.speed_energy [--model ring|ring-plain|digits] [--samples N]
"""

from __future__ import annotations

import numpy as np

from analysis.speed_energy import (
    AnalogEstimate,
    Assumptions,
    LayerLoad,
    SoftwareBaseline,
    analog_estimate,
    measure_software,
    summary,
)
from instruments.macro_controller_wire import LOOP_DT_STEP
from protocols.diffusion.analog import N_STEPS
from protocols.diffusion.mapping import map_score_net
from protocols.diffusion.samplers import sample_probability_flow
from protocols.diffusion.weights import load_shipped


def model_comparison(name: str = "ring", samples: int = 1000, repeats: int = 3,
                     assumptions: Assumptions | None = None) -> tuple[AnalogEstimate, SoftwareBaseline]:
    """Map the shipped model ``name`` and compare: analog estimate vs measured software baseline.

    Row voltages are taken along software probability-flow trajectories of the mapped
    network (mean over 200 trajectories and 41 time slices); the loop runs the default
    board's fine steps (``N_STEPS`` of ``LOOP_DT_STEP``).
    """
    model = load_shipped(name)
    mapped = map_score_net(model)
    net = model.net
    rng = np.random.default_rng(0)

    def labels(n: int) -> np.ndarray | None:
        return np.arange(n) % net.n_classes if net.conditional else None

    res = sample_probability_flow(net, model.sampling_sde, rng.standard_normal((200, net.dim)), 200,
                                  model.sampling.t_end, cond=labels(200),
                                  snapshot_times=np.linspace(1.0, model.sampling.t_end, 41))
    x = np.concatenate(list(res.snapshots))
    h = [np.concatenate(parts) for parts in zip(*(net.hidden_activations(s, t, labels(200)) for s, t in
                                                 zip(res.snapshots, res.times, strict=True)), strict=True)]
    inputs = (x * mapped.x_scale, h[0] * mapped.h_scale, h[1] * mapped.h_scale)
    loads = []
    for pair, v in zip(mapped.pairs, inputs, strict=True):
        v2 = np.concatenate([np.mean(v ** 2, axis=0), np.full(pair.n_bias, mapped.v_bias ** 2)])
        loads.append(LayerLoad(pair.g_pos, pair.g_neg, v2))
    dac = net.hidden * (2 if net.conditional else 1) + 3 + 1 + net.dim  # embeddings, a b c, v_bias, x0
    analog = analog_estimate(loads, duration=N_STEPS * LOOP_DT_STEP, dim=net.dim, dac_channels=dac,
                             assumptions=assumptions)
    steps = model.sampling.n_steps

    def batch(n: int) -> object:
        x0 = np.random.default_rng(1).standard_normal((n, net.dim))
        return sample_probability_flow(net, model.sampling_sde, x0, steps, model.sampling.t_end, cond=labels(n))

    return analog, measure_software(batch, samples, steps, repeats)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Analog vs software time and energy per sample.")
    parser.add_argument("--model", default="ring", help="shipped model (ring, ring-plain, digits)")
    parser.add_argument("--samples", type=int, default=1000, help="software batch size")
    args = parser.parse_args()
    est, soft = model_comparison(args.model, args.samples)
    print(summary(est, soft))
