"""Binary images to program into a macro: the moon and star, or the user's PNG / .npy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from protocols.characterization.files import load_npy, load_png
from protocols.engine.params import ParameterError

__all__ = ["moon_and_star", "load_pattern"]


def moon_and_star(rows: int = 32, cols: int = 32) -> np.ndarray:
    """A crescent moon and a five-pointed star as a (rows, cols) bool image (True = on).

    Drawn from geometry on the pixel centres (no file), so it scales to any size >= 8.
    """
    if rows < 8 or cols < 8:
        raise ValueError(f"the moon-and-star pattern needs at least 8x8 pixels, got {rows}x{cols}")
    y, x = np.mgrid[0:rows, 0:cols] + 0.5
    y, x = y / rows, x / cols  # unit square
    moon = ((x - 0.36) ** 2 + (y - 0.52) ** 2 < 0.30 ** 2) & ((x - 0.50) ** 2 + (y - 0.42) ** 2 > 0.26 ** 2)
    # star: inside a pentagram centred at (0.74, 0.30), outer radius 0.17
    cx, cy, outer, inner = 0.74, 0.30, 0.17, 0.17 * 0.42
    angle = np.arctan2(y - cy, x - cx) + np.pi / 2
    radius = np.hypot(x - cx, y - cy)
    sector = np.mod(angle, 2 * np.pi / 5) / (2 * np.pi / 5)  # 0..1 within one point
    edge = inner + (outer - inner) * np.abs(1 - 2 * sector)  # linear between tip and notch
    star = radius < edge
    return moon | star


def load_pattern(path: str | Path, rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) bool image from a PNG (grey level > 0.5 is on) or a .npy (nonzero is on).

    A missing or unreadable file, another format or another size is a ParameterError
    naming the ``image`` parameter (:mod:`protocols.characterization.files`).
    """
    text = str(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        on = load_npy("image", path) != 0
    elif suffix == ".png":
        on = load_png("image", path) > 0.5
    else:
        raise ParameterError(f"image={text!r}: expected 'moon-star' or a .png or .npy file")
    if on.ndim != 2:
        raise ParameterError(f"image={text!r} is a {on.ndim}-D array; the macro is a {rows}x{cols} image")
    if on.shape != (rows, cols):
        raise ParameterError(f"image={text!r} is {on.shape[0]}x{on.shape[1]} pixels; the macro is {rows}x{cols}")
    return on
