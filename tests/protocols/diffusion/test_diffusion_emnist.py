"""Local EMNIST loader: reads IDX files (plain or gzip), transposes, resizes 28->14,
crops 12x12, keeps the requested letters; a missing file is a clear error."""

import gzip

import numpy as np
import pytest

from protocols.diffusion.emnist import load_emnist_letters, read_idx, resize_and_crop


def write_idx(path, array, compress):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture
def emnist_folder(tmp_path):
    """Tiny byclass split: an 'H' (17), a '3' (3), a 'U' (30); images stored transposed."""
    upright = np.zeros((3, 28, 28), dtype=np.uint8)
    upright[0, 2:4, 10:12] = 255           # a block near the top for the H
    upright[1] = 7
    upright[2, 14:16, 2:4] = 255           # a block at the left for the U
    stored = np.transpose(upright, (0, 2, 1))
    write_idx(tmp_path / "emnist-byclass-train-images-idx3-ubyte.gz", stored, compress=True)
    write_idx(tmp_path / "emnist-byclass-train-labels-idx1-ubyte", np.array([17, 3, 30]), False)
    return tmp_path


def test_letters_are_selected_transposed_resized_and_cropped(emnist_folder):
    data = load_emnist_letters(emnist_folder, letters=("H", "K", "U"))
    assert data.images.shape == (2, 144) and data.shape == (12, 12)
    np.testing.assert_array_equal(data.labels, [0, 2])
    img_h, img_u = data.images.reshape(2, 12, 12)
    # rows 2-3 of 28 -> row 1 of 14 -> row 0 after the 1-pixel crop; cols 10-11 -> 5 -> 4
    assert img_h[0, 4] == pytest.approx(1.0) and img_h.sum() == pytest.approx(1.0)
    assert img_u[6, 0] == pytest.approx(1.0) and img_u.sum() == pytest.approx(1.0)


def test_resize_is_a_two_by_two_area_average():
    img = np.arange(28 * 28, dtype=float).reshape(1, 28, 28)
    out = resize_and_crop(img)
    assert out.shape == (1, 12, 12)
    assert out[0, 0, 0] == pytest.approx(img[0, 2:4, 2:4].mean())


def test_missing_files_raise_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="emnist-byclass-train-images"):
        load_emnist_letters(tmp_path)
    with pytest.raises(FileNotFoundError, match="folder"):
        load_emnist_letters(tmp_path / "absent")


def test_non_idx_file_is_refused(tmp_path):
    (tmp_path / "x").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "x")


def test_unknown_split_and_non_letters_are_refused(emnist_folder):
    with pytest.raises(ValueError, match="split"):
        load_emnist_letters(emnist_folder, split="balanced")
    with pytest.raises(ValueError, match="letter"):
        load_emnist_letters(emnist_folder, letters=("H", "7"))
