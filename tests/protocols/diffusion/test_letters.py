"""The authors' conditional task: ``rrambench train letters --emnist PATH`` on an EMNIST-format
folder the test writes (a few hundred synthetic 28x28 letters), then ``sample`` (decoder on the
bench's macros) and ``report`` on that model; a missing or damaged path is one line, exit 2."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from protocols.cli.main import main
from protocols.diffusion.emnist import letter_label, letters_task

#: Strokes of each synthetic letter on a 20 x 20 box: (row0, col0, row1, col1) segments.
STROKES = {
    "H": [(0, 3, 19, 3), (0, 16, 19, 16), (10, 3, 10, 16)],
    "K": [(0, 4, 19, 4), (10, 4, 0, 16), (10, 4, 19, 16)],
    "U": [(0, 3, 15, 3), (0, 16, 15, 16), (15, 3, 19, 9), (19, 9, 15, 16)],
    "L": [(0, 4, 19, 4), (19, 4, 19, 16)],
}


def _draw(letter: str, rng: np.random.Generator) -> np.ndarray:
    """One upright 28x28 uint8 image of ``letter``: its strokes, jittered, 2 px thick, centred
    within a pixel or so (EMNIST's letters are centred)."""
    img = np.zeros((28, 28))
    dy, dx = rng.integers(3, 6, size=2)
    for r0, c0, r1, c1 in STROKES[letter]:
        wobble = rng.normal(0, 0.8, size=4)
        for t in np.linspace(0, 1, 60):
            r = dy + r0 + (r1 - r0) * t + wobble[0] + (wobble[2] - wobble[0]) * t
            c = dx + c0 + (c1 - c0) * t + wobble[1] + (wobble[3] - wobble[1]) * t
            rr, cc = int(round(r)), int(round(c))
            img[max(rr - 1, 0):rr + 1, max(cc - 1, 0):cc + 1] = 1.0
    img = np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1)
    return (255 * img).astype(np.uint8)


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape) \
        + array.astype(np.uint8).tobytes()


def write_emnist(folder, per_letter: int = 90, seed: int = 0) -> None:
    """EMNIST byclass train files: H, K, U, L and some digits '3', images stored transposed."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for letter in STROKES:
        for _ in range(per_letter):
            images.append(_draw(letter, rng))
            labels.append(letter_label(letter, "byclass"))
    for _ in range(20):
        images.append((rng.random((28, 28)) * 255).astype(np.uint8))
        labels.append(3)
    order = rng.permutation(len(images))
    stored = np.transpose(np.array(images)[order], (0, 2, 1))
    with gzip.open(folder / "emnist-byclass-train-images-idx3-ubyte.gz", "wb") as f:
        f.write(_idx(stored))
    (folder / "emnist-byclass-train-labels-idx1-ubyte").write_bytes(_idx(np.array(labels)[order]))


@pytest.fixture(scope="module")
def emnist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emnist")
    write_emnist(folder)
    return folder


def test_the_task_reads_the_three_letters_and_the_classifier_every_letter_present(emnist):
    data, (images, codes), found = letters_task(emnist)
    assert data.classes == ("H", "K", "U") and data.shape == (12, 12)
    assert data.images.shape == (270, 144) and np.bincount(data.labels).tolist() == [90, 90, 90]
    assert found == "HKLU" and sorted(set(codes.tolist())) == [ord(c) for c in "HKLU"]
    assert images.shape == (360, 144)


@pytest.mark.parametrize("case", ["missing", "empty", "not gzip", "truncated"])
def test_a_missing_or_damaged_emnist_path_is_one_line_and_exit_2(tmp_path, capsys, case):
    folder = tmp_path / "e"
    if case != "missing":
        folder.mkdir()
    if case == "not gzip":
        (folder / "emnist-byclass-train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip at all")
        (folder / "emnist-byclass-train-labels-idx1-ubyte").write_bytes(_idx(np.array([17])))
    if case == "truncated":
        full = _idx(np.zeros((3, 28, 28), np.uint8))
        (folder / "emnist-byclass-train-images-idx3-ubyte").write_bytes(full[:-100])
        (folder / "emnist-byclass-train-labels-idx1-ubyte").write_bytes(_idx(np.array([17, 20, 30])))
    out = tmp_path / "letters.npz"
    assert main(["train", "letters", "--emnist", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("rrambench: error: --emnist"), err
    assert not out.exists()


def test_letters_needs_emnist_and_emnist_needs_letters(tmp_path, capsys):
    assert main(["train", "letters", "--out", str(tmp_path / "m.npz")]) == 2
    assert main(["train", "digits", "--emnist", str(tmp_path), "--out", str(tmp_path / "m.npz")]) == 2
    assert main(["train", "ring", "--vae-steps", "5", "--out", str(tmp_path / "m.npz")]) == 2
    assert main(["train", "letters", "--no-noise", "--emnist", str(tmp_path), "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert "--emnist PATH" in err and "letters task only" in err and "ring and digits tasks only" in err


@pytest.mark.slow
def test_train_letters_then_sample_decode_on_the_bench_and_report(emnist, tmp_path, capsys):
    """Tiny training (tests only), then the whole chain on the embedded bench: the decoder is
    programmed into free macros and decodes the latents through the board; report draws it."""
    pytest.importorskip("torch")
    from analysis import open_run
    from instruments.bench import Bench
    from protocols.diffusion.conv_vae import ConvVAE, read_vae
    from protocols.diffusion.sample import Sample
    from protocols.engine.runner import RunEngine, RunState

    model = tmp_path / "letters.npz"
    assert main(["train", "letters", "--emnist", str(emnist), "--out", str(model), "--epochs", "3",
                 "--vae-steps", "80", "--eval-samples", "10"]) == 0
    assert "letters-vae.npz" in capsys.readouterr().out
    vae = read_vae(tmp_path / "letters-vae.npz")
    assert isinstance(vae, ConvVAE) and vae.image_shape == (12, 12) and vae.latent_scale == 8.0
    assert vae.meta["classes"] == ["H", "K", "U"] and vae.meta["classifier_letters"] == "HKLU"
    meta = json.loads((tmp_path / "letters.json").read_text())
    assert meta["task"] == "letters" and set(meta["metrics"]["accuracy_per_class"]) == {"H", "K", "U"}

    run_path = tmp_path / "s.h5"
    with Bench.from_config(seed=2) as bench:
        proto = Sample.from_values({"model": str(model), "samples": 8, "batch": 8, "waveforms": 0,
                                    "software_steps": 100})
        engine = RunEngine(proto, bench, run_path, seed=3)
        assert engine.run() == RunState.COMPLETED, engine.error
    run = open_run(run_path)
    images = run.read("images_rram_decoder")
    assert images.shape == (24, 144) and np.all((images >= 0) & (images <= 1))
    assert run.read("accuracy")[-1].shape == (3, 3)
    assert set(run.read("decoder_cell_macro")[-1].tolist()).isdisjoint(run.read("cell_macro")[-1].tolist())
    assert run.simulated_parts == []
    assert main(["report", str(run_path), "-o", str(tmp_path / "rep")]) == 0
    assert list((tmp_path / "rep").rglob("*decoded*.png"))
