"""Score network forward pass, embeddings and the model files (npz + json, no pickle)."""

import json

import numpy as np
import pytest

from protocols.diffusion.model import ScoreNet, fourier_time_embedding
from protocols.diffusion.weights import SamplingConfig, TrainedModel, load_arrays, save_arrays


@pytest.fixture
def net():
    return ScoreNet.random(np.random.default_rng(0))


@pytest.fixture
def cnet():
    return ScoreNet.random(np.random.default_rng(1), n_classes=3)


def test_time_embedding_is_sin_then_cos_of_two_pi_f_t():
    f = np.array([0.5, -1.2])
    emb = fourier_time_embedding(np.array([0.0, 0.25]), f)
    assert emb.shape == (2, 4)
    np.testing.assert_allclose(emb[0], [0, 0, 1, 1], atol=1e-15)
    np.testing.assert_allclose(emb[1], np.concatenate([np.sin(np.pi / 2 * f), np.cos(np.pi / 2 * f)]))


def test_forward_is_the_seed_mlp_with_embedding_added_to_both_hidden_layers(net):
    x = np.array([[0.3, -0.2], [1.0, 0.5]])
    t = 0.4
    e = net.time_embedding(t)
    h1 = np.maximum(x @ net.w1 + net.b1 + e, 0)
    h2 = np.maximum(h1 @ net.w2 + net.b2 + e, 0)
    np.testing.assert_allclose(net(x, t), net.amplitude * (h2 @ net.w3 + net.b3))
    np.testing.assert_allclose(net.forward_fast(x, e), net(x, t))


def test_per_sample_times_give_the_same_result_as_one_time_each(net):
    x = np.random.default_rng(2).standard_normal((3, 2))
    t = np.array([0.1, 0.5, 0.9])
    rows = np.vstack([net(x[i : i + 1], t[i]) for i in range(3)])
    np.testing.assert_allclose(net(x, t), rows)


def test_conditional_model_adds_one_fixed_vector_per_class(cnet):
    x = np.zeros((2, 2))
    h_a, _ = cnet.hidden_activations(x, 0.3, np.array([0, 2]))
    base = x @ cnet.w1 + cnet.b1 + cnet.time_embedding(0.3)
    np.testing.assert_allclose(h_a[0], np.maximum(base[0] + cnet.class_embedding[0], 0))
    np.testing.assert_allclose(h_a[1], np.maximum(base[1] + cnet.class_embedding[2], 0))


def test_conditional_labels_are_checked(net, cnet):
    x = np.zeros((2, 2))
    with pytest.raises(ValueError, match="cond"):
        cnet(x, 0.5)
    with pytest.raises(ValueError, match="cond"):
        cnet(x, 0.5, np.array([0, 3]))
    with pytest.raises(ValueError, match="cond"):
        net(x, 0.5, 1)


def test_wrong_shapes_are_refused(net):
    with pytest.raises(ValueError, match="x"):
        net(np.zeros((4, 3)), 0.5)
    with pytest.raises(ValueError, match="b2"):
        ScoreNet(net.w1, net.b1, net.w2, net.b2[:3], net.w3, net.b3, net.frequencies)
    with pytest.raises(ValueError, match="amplitude"):
        ScoreNet(net.w1, net.b1, net.w2, net.b2, net.w3, net.b3, net.frequencies, amplitude=0)


def test_trained_model_round_trips_through_npz_and_json(tmp_path, cnet):
    model = TrainedModel(cnet, sampling=SamplingConfig(1.5, 5000, 1e-4),
                         meta={"config": {"task": "digits"}, "metrics": {"kl": np.float64(0.1)}})
    path = model.save(tmp_path / "m")
    back = TrainedModel.load(path)
    for k, v in cnet.arrays().items():
        np.testing.assert_array_equal(back.net.arrays()[k], v)
    assert back.sampling == model.sampling
    assert back.sampling_sde.beta_max == pytest.approx(0.75)
    assert back.task == "digits"
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["kl"] == 0.1


def test_model_files_are_plain_arrays_loadable_without_pickle(tmp_path, net):
    save_arrays(tmp_path / "p.npz", net.arrays(), {"a": 1})
    with np.load(tmp_path / "p.npz", allow_pickle=False) as f:
        assert set(f.files) >= {"w1", "w2", "w3", "frequencies", "amplitude"}
    with pytest.raises(ValueError, match="numeric"):
        save_arrays(tmp_path / "q", {"bad": np.array(["text"])}, {})
    with pytest.raises(ValueError, match="non-finite"):
        save_arrays(tmp_path / "q", {}, {"x": float("nan")})


def test_missing_model_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        load_arrays(tmp_path / "nothere")
