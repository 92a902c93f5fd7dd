"""Files named in parameters (``image=``, ``target_file=``): read, or refused in one line.

Every refusal is a :class:`~protocols.engine.params.ParameterError` naming the parameter
and the file: missing, not a file, not of the format its suffix says, not numbers. The
protocols call these from ``validate`` (dry run and run alike) and again from ``datasets``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from protocols.engine.params import ParameterError

__all__ = ["existing_file", "load_error", "load_npy", "load_png"]


def existing_file(name: str, path: str | Path) -> Path:
    """``path`` as a Path, refused unless it is an existing file."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{name}={str(path)!r}: no such file")
    if not path.is_file():
        raise ParameterError(f"{name}={str(path)!r}: not a file")
    return path


def load_npy(name: str, path: str | Path) -> np.ndarray:
    """The numeric array of a ``.npy`` file (no pickles), as float."""
    path = existing_file(name, path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ParameterError(f"{name}={str(path)!r}: not a readable .npy array ({load_error(exc)})") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
        array.close()
        raise ParameterError(f"{name}={str(path)!r}: an .npz archive, not a .npy array")
    if array.dtype.kind not in "biuf":
        raise ParameterError(f"{name}={str(path)!r}: holds {array.dtype} values, not numbers")
    return array.astype(float)


def load_png(name: str, path: str | Path) -> np.ndarray:
    """The grey levels (0..1) of a PNG image, shape (rows, cols): colour channels averaged."""
    import matplotlib.image as mpimg

    path = existing_file(name, path)
    try:
        image = np.asarray(mpimg.imread(path, format="png"), dtype=float)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL: UnidentifiedImageError is an OSError
        raise ParameterError(f"{name}={str(path)!r}: not a readable PNG image ({load_error(exc)})") from None
    if image.ndim == 3:  # RGB(A): luminance of the colour channels
        image = image[..., :3].mean(axis=2)
    return image


def load_error(exc: BaseException) -> str:
    """Why a file did not load, in a few words on one line (not numpy's advice to unpickle it)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return "not numpy data" if "pickle" in text else text
