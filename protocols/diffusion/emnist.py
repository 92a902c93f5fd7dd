"""Loader for local EMNIST files, for the seed's original conditional task (H, K, U).

EMNIST is distributed in the IDX format of MNIST (optionally gzip-compressed):
``emnist-<split>-<train|test>-images-idx3-ubyte[.gz]`` (uint8, N x 28 x 28, each
image stored transposed) and ``...-labels-idx1-ubyte[.gz]`` (uint8, N). Splits:
``byclass`` (labels 0-9 digits, 10-35 'A'-'Z', 36-61 'a'-'z'; the seed's) and
``letters`` (labels 1-26 for 'a'/'A'..'z'/'Z').

As the seed: images are resized 28 -> 14 (2x2 area average) and centre-cropped to
12 x 12; pixels scaled to [0, 1]. Nothing is downloaded: a missing file raises
``FileNotFoundError`` saying which file and where it was looked for.
"""

from __future__ import annotations

import gzip
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from protocols.diffusion.tasks import LabelledImages

SEED_LETTERS = ("H", "K", "U")
RESIZED = 14        # pixels per side after the 2x2 area resize
CROPPED = 12        # pixels per side after the centre crop
_IDX_DTYPE = {0x08: np.uint8}


def read_idx(path: str | Path) -> np.ndarray:
    """Array stored in an IDX file (plain or ``.gz``); only unsigned-byte data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = raw[2], raw[3]
    if dtype not in _IDX_DTYPE:
        raise ValueError(f"{path}: IDX data type 0x{dtype:02x} not supported (only uint8)")
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=_IDX_DTYPE[dtype], offset=header)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} values, header says {shape}")
    return data.reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"EMNIST file {stem}[.gz] not found in {folder}; download the EMNIST dataset "
        "(IDX/'binary' format) yourself and pass its folder"
    )


def letter_label(letter: str, split: str) -> int:
    """EMNIST label of an upper-case letter in ``split`` ("byclass" or "letters")."""
    if len(letter) != 1 or letter.upper() not in string.ascii_uppercase:
        raise ValueError(f"letters: {letter!r} is not a letter")
    index = string.ascii_uppercase.index(letter.upper())
    if split == "byclass":
        return 10 + index
    if split == "letters":
        return 1 + index
    raise ValueError(f"split: {split!r} not supported; use 'byclass' or 'letters'")


def resize_and_crop(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) upright images -> (N, 12, 12): 2x2 area average to 14x14, centre crop."""
    n, h, w = images.shape
    if (h, w) != (2 * RESIZED, 2 * RESIZED):
        raise ValueError(f"images: expected 28 x 28, got {h} x {w}")
    small = images.reshape(n, RESIZED, 2, RESIZED, 2).mean(axis=(2, 4))
    m = (RESIZED - CROPPED) // 2
    return small[:, m : m + CROPPED, m : m + CROPPED]


def load_emnist_letters(
    folder: str | Path,
    letters: Sequence[str] = SEED_LETTERS,
    split: str = "byclass",
    subset: str = "train",
    per_class: int | None = None,
) -> LabelledImages:
    """Images of ``letters`` from local EMNIST files, as the seed prepares them.

    folder: directory holding the IDX files; letters: upper-case letters (labels are
    their index in this list); split: "byclass" or "letters"; subset: "train" or "test";
    per_class: keep at most this many images of each letter (the first in the file).
    Returns images (N, 144) in [0, 1], 12 x 12.
    """
    if subset not in ("train", "test"):
        raise ValueError(f"subset: {subset!r}; use 'train' or 'test'")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"EMNIST folder not found: {folder}")
    stem = f"emnist-{split}-{subset}"
    wanted = [letter_label(c, split) for c in letters]
    images = read_idx(_find(folder, f"{stem}-images-idx3-ubyte"))
    labels = read_idx(_find(folder, f"{stem}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{folder}: images {images.shape} and labels {labels.shape} disagree")
    keep = np.isin(labels, wanted)
    if per_class is not None:
        for code in wanted:
            keep[np.flatnonzero(labels == code)[per_class:]] = False
    if not keep.any():
        raise ValueError(f"letters: none of {list(letters)} present in {stem}")
    lookup = np.full(256, -1)
    lookup[wanted] = np.arange(len(wanted))
    upright = np.transpose(images[keep], (0, 2, 1)).astype(float) / 255.0
    small = resize_and_crop(upright)
    return LabelledImages(
        small.reshape(len(small), -1), lookup[labels[keep]],
        tuple(c.upper() for c in letters), (CROPPED, CROPPED),
    )


#: Images per letter the letters task's classifier is fitted on (at most).
CLASSIFIER_PER_CLASS = 1000


def letters_task(folder: str | Path, letters: Sequence[str] | None = None, split: str = "byclass"
                 ) -> tuple[LabelledImages, tuple[np.ndarray, np.ndarray], str]:
    """The letters task's data from the local EMNIST files in ``folder``: the task's images
    (``letters``, default H, K, U, 12x12), the classifier's (images, class codes: code points)
    of every upper-case letter the files hold (the first ``CLASSIFIER_PER_CLASS`` of each) and
    those letters. FileNotFoundError / ValueError / OSError for missing or damaged files."""
    data = load_emnist_letters(folder, tuple(letters or SEED_LETTERS), split=split)
    present = load_emnist_letters(folder, tuple(string.ascii_uppercase), split=split, per_class=CLASSIFIER_PER_CLASS)
    codes = np.array([ord(c) for c in present.classes])[present.labels]
    found = "".join(c for k, c in enumerate(present.classes) if np.any(present.labels == k))
    return data, (present.images, codes), found
