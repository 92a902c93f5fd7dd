"""pattern: the moon and star reproduced over the loopback bench, user images, abort, parameters."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from instruments.bench import Bench
from protocols.characterization.pattern import Pattern
from protocols.characterization.pattern_images import load_pattern, moon_and_star
from protocols.engine.params import ParameterError
from protocols.engine.runner import RunEngine
from tests.protocols.characterization_helpers import assert_consistent_abort, run, run_and_abort


@pytest.fixture
def bench():
    with Bench.from_config(seed=0) as b:
        yield b


def test_moon_and_star_read_back_matches_at_least_99_percent_of_pixels(bench, tmp_path):
    """Thresholded at the midpoint, the read-back map reproduces the built-in image."""
    f = run(bench, Pattern.from_values({"macro": 3}), tmp_path / "p.h5")
    image = f.read("image").astype(bool)
    assert np.array_equal(image, moon_and_star(32, 32))
    readback = f.read("readback")[0]
    assert readback.shape == (32, 32)
    assert np.mean((readback > f.read("threshold")[0]) == image) >= 0.99
    assert f.read("match")[0] >= 0.99
    truth = bench.world.conductance(3)
    assert np.mean((truth > 27.5e-6) == image) >= 0.99


def test_moon_and_star_is_a_recognisable_two_part_image():
    """Both shapes are present: on pixels in the left (moon) and the upper right (star)."""
    image = moon_and_star(32, 32)
    assert 0.1 < image.mean() < 0.35
    assert image[8:26, 2:14].mean() > 0.4 and image[4:14, 19:29].mean() > 0.3
    assert not image[:, -2:].any() and not image[-4:].any()


def test_user_images_load_from_png_and_npy(tmp_path):
    """A grey PNG thresholds at 0.5; a .npy is on where nonzero; a wrong size is refused."""
    image = np.zeros((32, 32))
    image[4:10, 4:20] = 1.0
    mpimg.imsave(tmp_path / "img.png", image, cmap="gray", vmin=0, vmax=1)
    np.save(tmp_path / "img.npy", image)
    assert np.array_equal(load_pattern(tmp_path / "img.png", 32, 32), image > 0.5)
    assert np.array_equal(load_pattern(tmp_path / "img.npy", 32, 32), image > 0.5)
    with pytest.raises(ValueError, match="16x32"):
        np.save(tmp_path / "small.npy", image[:16])
        load_pattern(tmp_path / "small.npy", 32, 32)
    with pytest.raises(ValueError, match=".png or .npy"):
        load_pattern(tmp_path / "img.bmp", 32, 32)


def test_abort_leaves_a_consistent_file_and_safe_outputs(bench, tmp_path):
    """Aborted while programming: status aborted, outputs off, datasets readable."""
    _, f = run_and_abort(bench, Pattern.from_values({}), tmp_path / "ab.h5", after_events=3)
    assert_consistent_abort(bench, f)


def test_parameters_are_validated(bench, tmp_path):
    """Limits by name; g_off above g_on and a missing macro fail before the file exists."""
    with pytest.raises(ParameterError, match="g_on"):
        Pattern.from_assignments(["g_on=1e-3"])
    for values, match in (({"g_off": 60e-6}, "g_off"), ({"macro": 9}, "macro")):
        engine = RunEngine(Pattern.from_values(values), bench, tmp_path / "x.h5", seed=1)
        with pytest.raises(ValueError, match=match):
            engine.run()
        assert not (tmp_path / "x.h5").exists()
