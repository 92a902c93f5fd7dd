"""Software baseline of the shipped models (numpy only, no torch): the ring model
draws the ring, the digits model draws decodable digits of the asked class, and the
noise-trained ring model tolerates weight errors better than the plain one."""

import numpy as np
import pytest

from analysis.metrics import coordinate_kl, ring_statistics
from protocols.diffusion.evaluate import digits_samples, perturbed
from protocols.diffusion.samplers import sample_probability_flow
from protocols.diffusion.tasks import DIGIT_CLASSES, DigitClassifier, ring_samples
from protocols.diffusion.vae import load_vae
from protocols.diffusion.weights import SHIPPED, load_shipped, shipped_path


@pytest.fixture(scope="module")
def ring_model():
    return load_shipped("ring")


@pytest.fixture(scope="module")
def ring_baseline(ring_model):
    x0 = np.random.default_rng(10).standard_normal((1000, 2))
    return sample_probability_flow(ring_model.net, ring_model.sampling_sde, x0,
                                   ring_model.sampling.n_steps, ring_model.sampling.t_end).final


def test_shipped_files_are_small_and_carry_config_and_metrics():
    for name in SHIPPED:
        npz = shipped_path(name)
        assert npz.stat().st_size < 200_000
        assert npz.with_suffix(".json").stat().st_size < 200_000


def test_shipped_ring_model_is_the_seed_network(ring_model):
    net = ring_model.net
    assert (net.dim, net.hidden, net.amplitude, net.conditional) == (2, 14, 5.0, False)
    assert ring_model.sampling.n_steps == 10_000 and ring_model.sampling.beta_scale == 2.0
    assert ring_model.meta["config"]["noise_injection"] is True


def test_ring_baseline_has_the_ring_radius_and_uniform_angles(ring_baseline):
    stats = ring_statistics(ring_baseline)
    assert abs(stats.mean_radius - 0.7) < 0.05
    assert stats.max_sector_ratio < 1.5


def test_ring_baseline_kl_is_low_against_fresh_ring_data(ring_baseline):
    reference = ring_samples(10_000, np.random.default_rng(11))
    assert np.all(coordinate_kl(ring_baseline, reference) < 0.1)


def test_noise_trained_ring_model_suffers_less_from_weight_errors_than_the_plain_one():
    reference = ring_samples(10_000, np.random.default_rng(12))
    x0 = np.random.default_rng(13).standard_normal((600, 2))
    kl = {}
    for name in ("ring", "ring-plain"):
        model = load_shipped(name)
        rng = np.random.default_rng(14)
        values = []
        for _ in range(4):
            net = perturbed(model.net, 0.2, rng)
            final = sample_probability_flow(net, model.sampling_sde, x0, 2000).final
            values.append(coordinate_kl(final, reference).mean())
        kl[name] = np.mean(values)
    assert kl["ring"] < kl["ring-plain"]


def test_conditional_digits_decode_to_their_class():
    model = load_shipped("digits")
    vae = load_vae()
    x, labels = digits_samples(model, n_per_class=200, seed=3)
    acc = DigitClassifier().accuracy_per_class(vae.decode_diffusion(x), labels, DIGIT_CLASSES)
    assert min(acc.values()) > 0.8, acc


def test_vae_latents_of_the_task_classes_sit_in_about_unit_range():
    """Divided by 8, the authors' divisor (a fixed number now, no longer fitted to [-1, 1]): the
    prior's standard deviation 4 puts 99 % of the encoded digits within +-1.25."""
    from protocols.diffusion.tasks import load_digit_images

    vae = load_vae()
    mu, _ = vae.encode(load_digit_images(DIGIT_CLASSES).images)
    assert vae.latent_scale == 8.0
    assert np.quantile(np.abs(vae.to_diffusion(mu)), 0.99) <= 1.25


def test_unknown_shipped_model_name_lists_the_choices():
    with pytest.raises(ValueError, match="ring-plain"):
        load_shipped("moon")
