"""The VAE decoder on the bench's macros: tiles that fit, placed around each other and the
score network, programmed with write-verify and run through the board (EVAL_LAYER)."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.diffusion.analog import program_network
from protocols.diffusion.mapping import MappingConfig
from protocols.diffusion.rram_decoder import layer_scales, map_decoder, tile_layer
from tests.protocols.diffusion.test_conv_vae import random_vae

SHAPE = (8, 32, 32)
FREE = [3, 4, 5, 6, 7]


def survey(n: int = 400, seed: int = 0) -> np.ndarray:
    return 0.5 * np.random.default_rng(seed).standard_normal((n, 2))


def cells_of(region) -> set[tuple[int, int, int]]:
    return {(region.macro, r, c) for r in range(region.row0, region.row0 + region.n_in + region.bias_rows)
            for c in range(region.col0, region.col0 + 2 * region.n_out)}


@pytest.mark.parametrize("side", [8, 12, 28])
def test_tiles_fit_a_macro_share_macros_without_overlap_and_stay_off_the_networks(side):
    """Columns tiled by 16 outputs (32 columns), rows within 32, regions disjoint and only in the
    free macros; 28x28 images fit too (its dense layer takes 19 tiles)."""
    vae = random_vae(side)
    dec = map_decoder(vae, MappingConfig(), SHAPE, FREE, survey())
    regions = dec.network.layers
    assert len(regions) == len(dec.tiles)
    seen: set = set()
    for tile, region in zip(dec.tiles, regions, strict=True):
        assert region.macro in FREE and region.n_out <= 16 and region.n_in + region.bias_rows <= 32
        assert region.col0 + 2 * region.n_out <= 32 and (region.n_out == tile.stop - tile.start)
        assert not cells_of(region) & seen
        seen |= cells_of(region)
    counts = [sum(t.layer == k for t in dec.tiles) for k in range(3)]
    assert counts == [-(-6 * (side // 4) ** 2 // 16), 2, 1]
    assert dec.network.shared_macros and dec.network.reserved_macros == {0, 1, 2}


def test_the_mapped_decoder_with_its_target_conductances_is_the_software_decoder():
    vae = random_vae(12, seed=3)
    dec = map_decoder(vae, MappingConfig(), SHAPE, FREE, survey())
    x = survey(50, seed=1)
    np.testing.assert_allclose(dec.decode_ideal(x), vae.decode_diffusion(x), atol=1e-9)


def test_scales_put_the_largest_survey_activation_at_the_rail_margin_and_tiles_are_even():
    vae = random_vae(8)
    layers = vae.decoder_layers(diffusion=True)
    scales = layer_scales(layers, survey(), 0.1, 0.5)
    assert scales[0] == 0.1 and len(scales) == 4
    top = np.max(np.abs(layers[0].forward(survey())))
    assert top * scales[1] == pytest.approx(0.95 * 0.5 / 1.25)
    assert tile_layer(layers[0], 16) == [(0, 12), (12, 24)]


def test_a_tile_too_tall_for_a_macro_or_too_many_tiles_are_refused_saying_why():
    with pytest.raises(ValueError, match="exceed a macro's 32 rows"):
        map_decoder(random_vae(8, channels=(9, 6)), MappingConfig(), SHAPE, FREE, survey())
    with pytest.raises(ValueError, match="do not fit macros"):
        map_decoder(random_vae(28), MappingConfig(), SHAPE, [7], survey())
    with pytest.raises(ValueError, match="no macro"):
        map_decoder(random_vae(8), MappingConfig(), SHAPE, [], survey())


def test_a_tile_on_a_stuck_cell_moves_to_free_cells_of_the_decoders_macros():
    dec = map_decoder(random_vae(12), MappingConfig(), SHAPE, FREE, survey())
    region = dec.network.layers[2]
    stuck = {(region.macro, region.row0 + 1, region.col0 + 1)}
    moved = dec.network.relocated(stuck, SHAPE)
    new = moved.layers[2]
    assert new != region and new.macro in FREE and not cells_of(new) & stuck
    for k, other in enumerate(moved.layers):
        if k != 2:
            assert other == dec.network.layers[k] and not cells_of(other) & cells_of(new)


@pytest.mark.slow
def test_decoded_on_the_bench_the_images_are_the_software_decoders():
    """Write-verified into the embedded bench's macros and run through the board: pixels within
    a few hundredths of the software decoder's, and the same digit to the classifier."""
    from instruments.bench import Bench
    from protocols.diffusion.conv_vae import load_vae, reference_latents
    from protocols.diffusion.tasks import DigitClassifier

    vae = load_vae()
    ref = reference_latents(vae)
    with Bench.from_config(seed=3) as bench:
        dec = map_decoder(vae, MappingConfig(), SHAPE, FREE, ref)
        out = program_network(bench.macro_controller, dec.network, shape=SHAPE, now=bench.clock.now,
                              sleep=bench.clock.sleep)
        dec = dec.placed(out.mapped)
        assert {lay.macro for lay in dec.network.layers} <= set(FREE)
        x = ref[:300]
        trips = bench.macro_controller.round_trips
        images, clipped = dec.decode(bench.macro_controller, x, seed=1)
        assert bench.macro_controller.round_trips - trips >= len(dec.tiles)
    software = vae.decode_diffusion(x)
    assert clipped == 0 and images.shape == software.shape
    assert np.mean(np.abs(images - software)) < 0.04
    clf = DigitClassifier()
    assert np.mean(clf.predict(images) == clf.predict(software)) > 0.95
