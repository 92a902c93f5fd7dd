"""The mapped score network programmed into simulated RRAM and sampled on the analog loop
(in process, through ``world.loop``; the bench path is tested in tests/protocols/test_sample.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from analysis.metrics import coordinate_kl, ring_statistics
from instruments.sim.device_params import DeviceParams
from instruments.sim.direct import DirectArrayAccess
from instruments.sim.world import SimWorld
from protocols.characterization.write_verify_algorithm import write_verify
from protocols.diffusion.analog import initial_noise, program_network, scaled_noise, world_sample
from protocols.diffusion.mapping import map_score_net
from protocols.diffusion.samplers import sample_probability_flow, sample_reverse_sde
from protocols.diffusion.scoring import ring_reference
from protocols.diffusion.weights import load_shipped


@pytest.fixture(scope="module")
def ring():
    model = load_shipped("ring")
    return model, map_score_net(model)


def _program(world, mapped):
    return program_network(DirectArrayAccess(world), mapped, shape=world.shape, now=world.clock.now,
                           sleep=world.clock.sleep)


def test_ideal_loop_is_the_software_euler_sampler(ring):
    """Exact target conductances, no read noise: the loop reproduces the numpy Euler sampler
    with the same number of steps (the streams are one value per step)."""
    model, mapped = ring
    world = SimWorld(params=DeviceParams(stuck_fraction=0.0), seed=0)   # set_conductance cannot move stuck cells
    world.loop.params = replace(world.loop.params, model="ideal")     # the parts: test_analog_circuit.py
    macro, row, col, target = mapped.cells()
    world.set_conductance(macro, row, col, target)
    x0 = initial_noise(np.random.default_rng(1), 200)
    analog = world_sample(world, mapped, model, x0, sde=False, rng=np.random.default_rng(2), n_steps=500,
                          read_noise_scale=0.0).final
    software = sample_probability_flow(model.net, model.sampling_sde, x0, 500).final
    assert np.percentile(np.abs(analog - software), 99) < 5e-3


def test_reference_first_programming_removes_the_write_verify_bias_from_the_weights(ring):
    """Cells reached from above stop high in their band; programming the active cell against
    its measured reference leaves the pair difference unbiased (naive: biased toward zero)."""
    _, mapped = ring
    world = SimWorld(seed=2)
    outcome = _program(world, mapped)
    placed = outcome.mapped
    g = placed.gather({m: world.conductance(m) for m in range(8)})
    partner, active = placed.partners()
    target = placed.cells()[3]
    ours = ((g - g[partner]) - (target - target[partner]))[active]
    naive_world = SimWorld(seed=2)
    macro, row, col, _ = placed.cells()
    write_verify(DirectArrayAccess(naive_world), macro, row, col, target)
    g_naive = placed.gather({m: naive_world.conductance(m) for m in range(8)})
    naive = ((g_naive - g_naive[partner]) - (target - target[partner]))[active]
    assert np.mean(naive) < -0.1e-6, "all-at-once: the reference cells stop high, weights shrink"
    assert abs(np.mean(ours)) < 0.5 * abs(np.mean(naive))
    assert np.sqrt(np.mean(ours**2)) < 0.35e-6


def test_layers_move_off_stuck_cells_and_every_pair_lands_near_its_target(ring):
    """World seed 0 has stuck cells in the default regions: the layers are relocated,
    no region holds a stuck cell, and the programmed weights follow the targets."""
    _, mapped = ring
    world = SimWorld(seed=0)
    outcome = _program(world, mapped)
    assert outcome.stuck, "the seed-0 world has stuck cells where the default mapping puts the network"
    placed = outcome.mapped
    macro, row, col, target = placed.cells()
    assert not {(int(m), int(r), int(c)) for m, r, c in zip(macro, row, col, strict=True)} & outcome.stuck
    g = placed.gather({m: world.conductance(m) for m in range(8)})
    partner, active = placed.partners()
    err = (g - g[partner]) - (target - target[partner])
    assert np.percentile(np.abs(err), 99) < 1e-6
    columns = outcome.pulse_columns()
    assert len(columns["macro"]) == sum(r.pulse_log.arrays()["cell"].size for _, r in outcome.rounds) > 0


@pytest.mark.parametrize("world_seed", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_ring_on_the_analog_loop_meets_the_acceptance(ring, world_seed):
    """Mean radius within 0.05 of 0.7; per-coordinate histogram KL within 1.5x the software
    baseline's (same initial noise) + 0.02; no 30-degree sector above 1.5x its share."""
    model, mapped = ring
    world = SimWorld(seed=world_seed)
    placed = _program(world, mapped).mapped
    x0 = initial_noise(np.random.default_rng(10 + world_seed), 2000)
    analog = world_sample(world, placed, model, x0, sde=False, rng=np.random.default_rng(world_seed)).final
    # the baseline with the loop's 1,500 steps: its metrics equal those at the seed's 10,000 to 1e-3
    software = sample_probability_flow(model.net, model.sampling_sde, x0, 1500).final
    reference = ring_reference()
    kl_a, kl_s = coordinate_kl(analog, reference), coordinate_kl(software, reference)
    stats = ring_statistics(analog)
    assert abs(stats.mean_radius - 0.7) < 0.05
    assert np.all(kl_a <= 1.5 * kl_s + 0.02), (kl_a, kl_s)
    assert stats.max_sector_ratio <= 1.5


@pytest.mark.slow
def test_reverse_sde_on_the_loop_matches_the_software_sde(ring):
    """With injected noise the loop samples the reverse SDE: same radius and spread as the
    numpy Euler-Maruyama sampler (different noise draws, so compared in distribution)."""
    model, mapped = ring
    world = SimWorld(seed=1)
    placed = _program(world, mapped).mapped
    x0 = initial_noise(np.random.default_rng(3), 2000)
    analog = world_sample(world, placed, model, x0, sde=True, rng=np.random.default_rng(4)).final
    software = sample_reverse_sde(model.net, model.sampling_sde, x0, np.random.default_rng(5), 1500).final
    a, s = ring_statistics(analog), ring_statistics(software)
    assert abs(a.mean_radius - s.mean_radius) < 0.02
    assert abs(a.radial_std - s.radial_std) < 0.2 * s.radial_std
    reference = ring_reference()
    assert np.all(coordinate_kl(analog, reference) <= 1.5 * coordinate_kl(software, reference) + 0.02)


@pytest.mark.slow
@pytest.mark.xfail(strict=False, raises=AssertionError, reason=(
    "open: not robust to the worlds drawn. Over 36 worlds (seeds 100-111, 200-211, 300-311) the noise-aware "
    "model's KL was lower in 18 of 36 with write-verify's confirmations riding in its pulse batches and 19 of 36 "
    "with them in batches of their own (2026-12-03); the twelve-world medians, noise-aware against plain, were "
    "0.045/0.041, 0.071/0.045, 0.035/0.047 and 0.048/0.058, 0.061/0.051, 0.039/0.057: the seeds this test uses "
    "passed before by luck. docs/diffusion-on-rram.md: no advantage at 1x either"))
def test_noise_aware_training_helps_at_twice_the_read_and_write_noise():
    """With read and write noise at 2x the default, the noise-trained ring model samples
    closer to the ring than the plain-trained one: lower median histogram KL over 12
    programmed worlds, and lower KL in at least half of them."""
    params, config = scaled_noise(DeviceParams(), None, 2.0)
    reference = ring_reference()
    kl = {}
    for name in ("ring", "ring-plain"):
        model = load_shipped(name)
        mapped = map_score_net(model)
        values = []
        for seed in range(100, 112):
            world = SimWorld(params=params, seed=seed)
            placed = program_network(DirectArrayAccess(world), mapped, config, shape=world.shape,
                                     now=world.clock.now, sleep=world.clock.sleep).mapped
            x0 = initial_noise(np.random.default_rng(1000 + seed), 1000)
            out = world_sample(world, placed, model, x0, sde=False, rng=np.random.default_rng(seed),
                               read_noise_scale=2.0, n_steps=500).final
            values.append(coordinate_kl(out, reference).mean())
        kl[name] = np.array(values)
    assert np.median(kl["ring"]) < np.median(kl["ring-plain"])
    assert np.mean(kl["ring"] < kl["ring-plain"]) >= 0.5
