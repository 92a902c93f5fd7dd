"""Torch training (skipped without the train extra): the torch twin computes the
numpy network, noise injection follows the seed's truncated law, a few epochs reduce
the loss, and ``rrambench train`` writes a loadable model with its metrics."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from protocols.cli.main import main  # noqa: E402
from protocols.diffusion.model import ScoreNet  # noqa: E402
from protocols.diffusion.tasks import load_digit_images, ring_samples  # noqa: E402
from protocols.diffusion.training.score_net import (  # noqa: E402
    TorchScoreNet,
    TrainConfig,
    multiplicative_noise,
    train_score_net,
)
from protocols.diffusion.training.vae import VAEConfig, train_vae  # noqa: E402
from protocols.diffusion.weights import TrainedModel  # noqa: E402


def test_torch_twin_computes_the_same_score_as_the_numpy_network():
    net = ScoreNet.random(np.random.default_rng(0), n_classes=3)
    x = np.random.default_rng(1).standard_normal((5, 2))
    t = np.linspace(0.1, 0.9, 5)
    labels = np.array([0, 1, 2, 0, 1])
    score, _, _ = TorchScoreNet(net)(torch.tensor(x, dtype=torch.float32),
                                     torch.tensor(t, dtype=torch.float32), torch.tensor(labels))
    np.testing.assert_allclose(score.detach().numpy(), net(x, t, labels), rtol=1e-4, atol=1e-5)


def test_noise_injection_is_relative_gaussian_truncated_and_redrawn_uniform():
    torch.manual_seed(0)
    p = torch.full((200_000,), 2.0)
    e = (multiplicative_noise(p, 0.1, 0.2) / p - 1.0).numpy()
    assert np.all(np.abs(e) < 0.2)
    # N(0, 0.1^2) inside |e| < 0.2 (95.45 %) plus the redrawn 4.55 % uniform in (-0.2, 0.2):
    # variance 0.01 (0.9545 - 4 phi(2)) + 0.0455 * 0.04 / 3 -> std 0.0894
    assert abs(e.std() - 0.0894) < 0.002
    # P(|e| < 0.1) = 0.6827 (Gaussian part) + 0.0455 / 2 (uniform part) = 0.7055
    assert abs(np.mean(np.abs(e) < 0.1) - 0.7055) < 0.005


def test_a_few_epochs_reduce_the_denoising_loss():
    data = ring_samples(2000, np.random.default_rng(0))
    result = train_score_net(data, TrainConfig(epochs=40, seed=1, lr=2e-3))
    assert result.epoch_loss[-5:].mean() < 0.8 * result.epoch_loss[:3].mean()
    assert np.all(np.isfinite(result.net.w2))


def test_training_is_reproducible_with_the_same_seed():
    data = ring_samples(1024, np.random.default_rng(0))
    a = train_score_net(data, TrainConfig(epochs=3, seed=5))
    b = train_score_net(data, TrainConfig(epochs=3, seed=5))
    np.testing.assert_array_equal(a.net.w1, b.net.w1)


def test_conditional_training_learns_a_class_embedding():
    data = ring_samples(1024, np.random.default_rng(0))
    labels = (data[:, 0] > 0).astype(int)
    result = train_score_net(data, TrainConfig(epochs=5, seed=0), labels=labels, n_classes=2)
    assert result.net.class_embedding.shape == (2, 14)
    with pytest.raises(ValueError, match="labels"):
        train_score_net(data, TrainConfig(epochs=1), labels=labels)


def test_vae_training_reconstructs_better_than_an_untrained_vae():
    digits = load_digit_images((0, 1, 7))
    short = train_vae(digits.images, digits.shape, VAEConfig(steps=2, seed=0, threads=1))
    longer = train_vae(digits.images, digits.shape, VAEConfig(steps=150, seed=0, threads=1))
    err = [np.mean((v.decode(v.encode(digits.images)[0]) - digits.images) ** 2)
           for v in (short, longer)]
    assert err[1] < 0.7 * err[0]
    assert longer.latent_scale == 8.0 and longer.image_shape == (8, 8)


@pytest.mark.parametrize("side", [8, 12])
def test_the_numpy_vae_computes_what_the_torch_vae_trains(side):
    """Exported arrays in the numpy layout: same means, log-variances and decoder logits."""
    from protocols.diffusion.conv_vae import ConvVAE
    from protocols.diffusion.deconv import run_layers
    from protocols.diffusion.training.vae import _TorchConvVAE

    torch.manual_seed(0)
    net = _TorchConvVAE(side, VAEConfig())
    vae = ConvVAE(net.params_numpy(), 8.0, (side, side))
    x = torch.rand(5, 1, side, side)
    mu, logvar = net.encode(x)
    mu_np, logvar_np = vae.encode(x.numpy().reshape(5, -1))
    np.testing.assert_allclose(mu_np, mu.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logvar_np, logvar.detach().numpy(), rtol=1e-4, atol=1e-5)
    logits = net.decode_logits(mu).detach().numpy().reshape(5, -1)
    np.testing.assert_allclose(run_layers(vae.decoder_layers(), mu_np), logits, rtol=1e-4, atol=1e-5)


def test_the_classifier_is_fitted_on_codes_and_two_classes_make_a_softmax_pair():
    from protocols.diffusion.training.vae import fit_classifier

    digits = load_digit_images((0, 1, 7))
    codes = np.array((0, 1, 7))[digits.labels]
    clf, accuracy = fit_classifier(digits.images, codes)
    assert accuracy > 0.95 and clf.codes.tolist() == [0, 1, 7]
    assert np.mean(clf.predict(digits.images) == codes) == pytest.approx(accuracy)
    two = digits.labels < 2
    pair, _ = fit_classifier(digits.images[two], np.array([ord("H"), ord("K")])[digits.labels[two]])
    assert pair.w.shape == (64, 2) and set(pair.predict(digits.images[two])) <= {ord("H"), ord("K")}


def test_a_decoder_with_more_channels_than_a_macro_holds_is_refused():
    with pytest.raises(ValueError, match="dec_channels"):
        VAEConfig(dec_channels=(8, 6))


def test_a_plain_digits_model_trains_on_the_shipped_vae_and_writes_no_vae(tmp_path, capsys):
    """``train digits --no-noise`` (how the shipped digits-plain was made): no weight-noise injection,
    the shipped digits VAE reused, not retrained nor written."""
    out = tmp_path / "dp.npz"
    assert main(["train", "digits", "--no-noise", "--out", str(out), "--epochs", "2", "--eval-samples", "3"]) == 0
    meta = json.loads((tmp_path / "dp.json").read_text())
    assert meta["config"]["noise_injection"] is False and meta["config"]["noise_std"] == 0.0
    assert meta["config"]["vae"] == "digits-vae.npz" and not (tmp_path / "dp-vae.npz").exists()
    assert "VAE: the shipped digits-vae.npz" in capsys.readouterr().out
    assert TrainedModel.load(out).net.conditional


def test_train_command_writes_model_and_metrics(tmp_path):
    out = tmp_path / "r.npz"
    assert main(["train", "ring", "--out", str(out), "--epochs", "2"]) == 0
    model = TrainedModel.load(out)
    meta = json.loads((tmp_path / "r.json").read_text())
    assert meta["config"]["epochs"] == 2 and meta["config"]["noise_injection"] is True
    assert {"kl_xy", "mean_radius", "train_seconds"} <= set(meta["metrics"])
    assert model.sampling.beta_scale == 2.0
