"""The convolutional VAE in numpy and its unrolling: each decoder layer one crossbar matrix
(im2col of the transposed convolution, sub-pixel form) that computes exactly the layer."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.diffusion.conv_vae import ConvVAE, ImageClassifier, read_vae, reference_latents
from protocols.diffusion.deconv import UnrolledLayer, conv2d, deconv_matrix, run_layers
from protocols.diffusion.vae import VAE


def transposed_conv_by_definition(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kernel 3, stride 2, padding 1, output padding 1: every input pixel scatters its 3x3 kernel."""
    n, c_in, h, wd = x.shape
    out = np.zeros((n, w.shape[1], 2 * h + 1, 2 * wd + 1))   # one extra row/col: padding 1 crops it
    for i in range(h):
        for j in range(wd):
            out[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3] += np.einsum("nc,cokl->nokl", x[:, :, i, j], w)
    return out[:, :, 1:2 * h + 1, 1:2 * wd + 1] + b[None, :, None, None]


def conv_by_definition(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kernel 3, stride 2, padding 1."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h = (x.shape[2] - 1) // 2 + 1
    out = np.empty((x.shape[0], w.shape[0], h, h))
    for i in range(h):
        for j in range(h):
            out[:, :, i, j] = np.einsum("nckl,ockl->no", xp[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3], w) + b
    return out


@pytest.mark.parametrize("side", [2, 3, 7])
def test_the_unrolled_transposed_convolution_is_the_layer(side):
    """One (4 C_in, 4 C_out) matrix on every pixel's 2x2 window, blocks put in place: exactly the
    transposed convolution, for any input size."""
    rng = np.random.default_rng(side)
    x, w, b = rng.standard_normal((3, 5, side, side)), rng.standard_normal((5, 4, 3, 3)), rng.standard_normal(4)
    layer = UnrolledLayer("deconv", deconv_matrix(w), np.repeat(b, 4), False, (5, side, side), (4, 2 * side, 2 * side))
    np.testing.assert_allclose(layer.forward(x), transposed_conv_by_definition(x, w, b), atol=1e-12)
    assert layer.vectors(x).shape == (3 * side * side, 20) and layer.vectors_per_image == side * side
    # 9 of the 16 (window, phase) pairs carry a tap: the rest of the matrix is zero
    assert np.count_nonzero(deconv_matrix(np.ones((1, 1, 3, 3)))) == 9


def test_the_unrolling_matches_torch_where_torch_is_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(2)
    want = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=2,
                                                padding=1, output_padding=1).numpy()
    np.testing.assert_allclose(UnrolledLayer("deconv", deconv_matrix(w), np.repeat(b, 4), False, (3, 4, 4),
                                             (2, 8, 8)).forward(x), want, atol=1e-12)
    wc = rng.standard_normal((5, 3, 3, 3))
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(wc), torch.tensor(b[:1].repeat(5)), stride=2,
                                      padding=1).numpy()
    np.testing.assert_allclose(conv2d(x, wc, b[:1].repeat(5)), want, atol=1e-12)


@pytest.mark.parametrize("side", [8, 12, 28])
def test_the_encoders_convolution_is_the_definition(side):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, side, side)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    np.testing.assert_allclose(conv2d(x, w, b), conv_by_definition(x, w, b), atol=1e-12)


def random_vae(side: int = 8, seed: int = 0, channels: tuple[int, int] = (6, 6)) -> ConvVAE:
    """A ConvVAE with random weights (shapes as trained), side a multiple of 4."""
    rng = np.random.default_rng(seed)
    q, (d0, d1) = side // 4, channels
    shapes = {"enc_conv0_w": (8, 1, 3, 3), "enc_conv0_b": (8,), "enc_conv1_w": (16, 8, 3, 3), "enc_conv1_b": (16,),
              "enc_fc_w": (16 * q * q, 32), "enc_fc_b": (32,), "enc_out_w": (32, 4), "enc_out_b": (4,),
              "dec_fc_w": (2, d0 * q * q), "dec_fc_b": (d0 * q * q,), "dec_deconv0_w": (d0, d1, 3, 3),
              "dec_deconv0_b": (d1,), "dec_deconv1_w": (d1, 1, 3, 3), "dec_deconv1_b": (1,)}
    params = {k: 0.3 * rng.standard_normal(s) for k, s in shapes.items()}
    return ConvVAE(params, 8.0, (side, side))


@pytest.mark.parametrize("side", [8, 12, 28])
def test_the_decoder_is_its_three_crossbar_layers(side):
    vae = random_vae(side)
    layers = vae.decoder_layers()
    assert [lay.kind for lay in layers] == ["dense", "deconv", "deconv"]
    assert [(lay.n_in, lay.n_out) for lay in layers] == [(2, 6 * (side // 4) ** 2), (24, 24), (24, 4)]
    z = np.random.default_rng(2).standard_normal((5, 2))
    images = vae.decode(z)
    assert images.shape == (5, side * side) and np.all((images > 0) & (images < 1))
    np.testing.assert_allclose(vae.decode_diffusion(z / 8.0), images)
    np.testing.assert_allclose(run_layers(vae.decoder_layers(diffusion=True), z / 8.0), run_layers(layers, z))
    mu, logvar = vae.encode(images)
    assert mu.shape == logvar.shape == (5, 2)
    maps = vae.feature_maps(z / 8.0)
    assert [m.shape for m in maps] == [(5, 6, side // 4, side // 4), (5, 6, side // 2, side // 2), (5, 1, side, side)]
    np.testing.assert_allclose(maps[-1].reshape(5, -1), images)


def test_a_vae_file_keeps_classifier_and_reference_and_dense_files_still_load(tmp_path):
    vae = random_vae()
    vae.classifier = ImageClassifier(np.ones((64, 3)), np.zeros(3), np.array([0, 1, 7]))
    vae.reference = np.random.default_rng(0).standard_normal((10, 2))
    vae.meta = {"classes": [0, 1, 7]}
    back = read_vae(vae.save(tmp_path / "v"))
    assert isinstance(back, ConvVAE) and back.meta["kind"] == "conv-vae"
    np.testing.assert_array_equal(back.reference, vae.reference)
    np.testing.assert_array_equal(back.classifier.codes, [0, 1, 7])
    np.testing.assert_allclose(back.decode(np.ones((1, 2))), vae.decode(np.ones((1, 2))))
    np.testing.assert_array_equal(reference_latents(back), vae.reference)
    rng = np.random.default_rng(1)
    dense = VAE([(rng.standard_normal((64, 8)), np.zeros(8)), (rng.standard_normal((8, 4)), np.zeros(4))],
                [(rng.standard_normal((2, 8)), np.zeros(8)), (rng.standard_normal((8, 64)), np.zeros(64))], 2.0, (8, 8))
    assert isinstance(read_vae(dense.save(tmp_path / "d")), VAE)
    x = rng.standard_normal((4, 2))
    np.testing.assert_allclose(1 / (1 + np.exp(-run_layers(dense.decoder_layers(diffusion=True), x))),
                               dense.decode_diffusion(x))


def test_a_classifier_scores_letters_by_their_code_point():
    w = np.zeros((4, 3))
    w[0, 0] = w[1, 1] = w[2, 2] = 1.0
    clf = ImageClassifier(w, np.zeros(3), np.array([ord("H"), ord("K"), ord("U")]))
    images = np.eye(4)[[0, 1, 2, 0]]
    acc = clf.accuracy_per_class(images, np.array([0, 1, 2, 2]), ["H", "K", "U"])
    assert acc == {"H": 1.0, "K": 1.0, "U": 0.5}


def test_a_vae_refuses_a_side_that_is_not_a_multiple_of_four_and_missing_arrays():
    vae = random_vae()
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvVAE(vae.params, 8.0, (10, 10))
    with pytest.raises(ValueError, match="dec_fc_w"):
        ConvVAE({k: v for k, v in vae.params.items() if k != "dec_fc_w"}, 8.0, (8, 8))
