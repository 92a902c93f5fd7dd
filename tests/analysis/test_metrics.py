"""Sample-quality metrics: the seed's histogram KL (per coordinate and pooled, with its
sampling floor) and 2-D histogram distance, MMD, ring statistics and per-class accuracy."""

import numpy as np
import pytest
from scipy.stats import entropy

from analysis.metrics import (
    coordinate_kl,
    histogram2d_distance,
    histogram_kl,
    kl_floor,
    kl_scores,
    mmd_rbf,
    per_class_accuracy,
    pooled_kl,
    ring_statistics,
    with_floor,
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


def test_pooled_kl_equals_a_hand_computation_of_one_histogram_over_both_coordinates():
    """4 bins over [0, 4]: generated values 0.5, 1.5 | 0.5, 2.5 count (2, 1, 1, 0), reference
    values 0.5, 0.5 | 1.5, 3.5 count (2, 1, 0, 1); KL = sum p ln(p / q) after epsilon."""
    generated = np.array([[0.5, 1.5], [0.5, 2.5]])
    reference = np.array([[0.5, 0.5], [1.5, 3.5]])
    eps = 1e-10
    p = np.array([0.5, 0.25, 0.25, 0.0]) + eps
    q = np.array([0.5, 0.25, 0.0, 0.25]) + eps
    p, q = p / p.sum(), q / q.sum()
    hand = float(np.sum(p * np.log(p / q)))
    assert hand == pytest.approx(0.25 * np.log(0.25 / 1e-10), rel=1e-6)  # the empty reference bin dominates
    assert pooled_kl(generated, reference, bins=4, value_range=(0.0, 4.0)) == pytest.approx(hand, rel=1e-12)


def test_pooled_kl_is_the_authors_flattened_histogram_with_their_bins_range_and_epsilon():
    """cal_KL of the authors' code: both arrays flattened, 50 bins over [-4, 4], density,
    + 1e-10, scipy.stats.entropy; it is neither coordinate's KL nor their mean."""
    a, b = ring(800, 11) * [1.0, 0.6], ring(5000, 12)
    ha = np.histogram(a.flatten(), bins=50, range=(-4, 4), density=True)[0]
    hb = np.histogram(b.flatten(), bins=50, range=(-4, 4), density=True)[0]
    authors = entropy(ha / ha.sum() + 1e-10, hb / hb.sum() + 1e-10)
    assert pooled_kl(a, b) == pytest.approx(authors, rel=1e-12)
    scores = kl_scores(a, b)
    assert scores.tolist() == pytest.approx([*coordinate_kl(a, b), coordinate_kl(a, b).mean(), authors])
    assert scores[3] != pytest.approx(scores[2], rel=0.05)


def test_the_sampling_floor_is_below_a_wrong_distribution_and_near_a_second_fresh_sample():
    reference = ring(10_000, 20)
    floor = kl_floor(reference, lambda n, rng: ring(n, int(rng.integers(2**31))), 500, draws=20, seed=3)
    assert floor.values.shape == (20, 4) and floor.samples == 500
    assert np.all(floor.spread > 0) and np.all(floor.median > 0)
    wrong = kl_scores(ring(500, 21, radius=0.5), reference)
    assert np.all(wrong > floor.median + 10 * floor.spread)
    fresh = kl_scores(ring(500, 22), reference)
    assert np.all(np.abs(fresh - floor.median) < 4 * floor.spread), (fresh, floor.median, floor.spread)
    again = kl_floor(reference, lambda n, rng: ring(n, int(rng.integers(2**31))), 500, draws=20, seed=3)
    np.testing.assert_array_equal(again.values, floor.values)  # a fixed seed: reproducible


def test_the_floor_of_the_2d_histogram_distance_comes_from_the_same_draws():
    reference = ring(10_000, 20)
    sets = []

    def draw(n, rng):
        sets.append(ring(n, int(rng.integers(2**31))))
        return sets[-1]

    floor = kl_floor(reference, draw, 300, draws=10, seed=4)
    distances = [histogram2d_distance(s, reference) for s in sets]
    assert floor.hist2d.shape == (10,)
    np.testing.assert_allclose(floor.hist2d_floor, [np.median(distances), np.std(distances, ddof=1)])
    wrong = histogram2d_distance(ring(300, 23, radius=0.5), reference)
    assert wrong > floor.hist2d_floor[0] + 10 * floor.hist2d_floor[1]
    wide = kl_floor(reference, lambda n, rng: ring(n, int(rng.integers(2**31))), 300, draws=10, seed=4,
                    hist2d_range=(-2.0, 2.0))
    np.testing.assert_array_equal(wide.values, floor.values)  # the KLs do not depend on the 2-D range
    assert wide.hist2d_floor[0] != floor.hist2d_floor[0]
    one_d = kl_floor(reference[:, :1], lambda n, rng: ring(n, int(rng.integers(2**31)))[:, :1], 50, draws=3)
    assert one_d.hist2d.size == 0 and np.isnan(one_d.hist2d_floor).all()


def test_a_kl_is_written_with_its_floor_or_says_the_floor_is_unknown():
    assert with_floor(0.041, 0.012, 0.003) == "0.041 (floor 0.012 ± 0.003)"
    assert with_floor(0.041, None, None) == "0.041 (floor unknown)"
    assert with_floor(0.041, float("nan"), float("nan")) == "0.041 (floor unknown)"


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
