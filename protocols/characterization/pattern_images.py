"""Binary images to program into a macro: the moon and star, or the user's PNG / .npy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
    """A (rows, cols) bool image from a PNG (grey level > 0.5 is on) or a .npy (nonzero is on)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        image = np.load(path, allow_pickle=False).astype(float)
        on = image != 0
    elif path.suffix.lower() == ".png":
        import matplotlib.image as mpimg

        image = np.asarray(mpimg.imread(path), dtype=float)
        if image.ndim == 3:  # RGB(A): luminance of the colour channels
            image = image[..., :3].mean(axis=2)
        on = image > 0.5
    else:
        raise ValueError(f"image {str(path)!r}: expected a .png or .npy file")
    if on.shape != (rows, cols):
        raise ValueError(f"image {str(path)!r} is {on.shape[0]}x{on.shape[1]} pixels; the macro is {rows}x{cols}")
    return on
