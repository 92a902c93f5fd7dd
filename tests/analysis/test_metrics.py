"""Sample-quality metrics: the seed's histogram KL and 2-D histogram distance, MMD,
ring statistics and per-class accuracy."""

import numpy as np
import pytest
from scipy.stats import entropy

from analysis.metrics import (
    coordinate_kl,
    histogram2d_distance,
    histogram_kl,
    mmd_rbf,
    per_class_accuracy,
    ring_statistics,
)


def ring(n, seed, radius=0.7, std=0.04):
    rng = np.random.default_rng(seed)
    r = radius + std * rng.standard_normal(n)
    phi = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi)])


def test_histogram_kl_equals_the_seed_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 3000), rng.normal(0.3, 1.2, 3000)
    ha = np.histogram(a, bins=50, range=(-4, 4), density=True)[0]
    hb = np.histogram(b, bins=50, range=(-4, 4), density=True)[0]
    seed_value = entropy(ha / ha.sum() + 1e-10, hb / hb.sum() + 1e-10)
    assert histogram_kl(a, b) == pytest.approx(seed_value, rel=1e-12)


def test_histogram_kl_is_small_for_same_distribution_and_large_for_different():
    same = coordinate_kl(ring(1000, 1), ring(10000, 2))
    shifted = coordinate_kl(ring(1000, 1) + [0.5, 0.0], ring(10000, 2))
    assert np.all(same < 0.05)
    assert shifted[0] > 10 * same[0]


def test_histogram2d_distance_is_zero_for_identical_samples_and_grows_with_mismatch():
    a = ring(2000, 3)
    assert histogram2d_distance(a, a) == 0.0
    assert histogram2d_distance(a, ring(2000, 4)) < histogram2d_distance(a, ring(2000, 4, radius=0.4))


def test_mmd_separates_distributions():
    a, b = ring(500, 5), ring(500, 6)
    assert mmd_rbf(a, b) < 0.01
    assert mmd_rbf(a, ring(500, 7, radius=0.3)) > 10 * mmd_rbf(a, b)


def test_ring_statistics_recover_radius_spread_and_uniform_angles():
    s = ring_statistics(ring(20000, 8))
    assert s.mean_radius == pytest.approx(0.7, abs=0.002)
    assert s.radial_std == pytest.approx(0.04, abs=0.002)
    assert s.max_sector_ratio < 1.1
    assert sum(s.sector_counts) == 20000 and len(s.sector_counts) == 12


def test_ring_statistics_flag_a_clumped_angle_distribution():
    pts = ring(1000, 9)
    half = pts[pts[:, 1] > 0]                # upper half only: 6 of 12 sectors
    assert ring_statistics(half).max_sector_ratio > 1.5


def test_per_class_accuracy_counts_each_condition_separately():
    acc = per_class_accuracy(np.array([0, 0, 1, 7, 7, 1]), np.array([0, 0, 1, 1, 2, 2]), [0, 1, 7])
    assert acc == {0: 1.0, 1: 0.5, 7: 0.5}


def test_bad_inputs_are_refused_with_the_argument_name():
    with pytest.raises(ValueError, match="generated"):
        histogram_kl(np.array([np.nan]), np.zeros(3))
    with pytest.raises(ValueError, match="sector_deg"):
        ring_statistics(ring(10, 0), sector_deg=7)
    with pytest.raises(ValueError, match="conditions"):
        per_class_accuracy(np.array([0]), np.array([0]), [0, 1])
