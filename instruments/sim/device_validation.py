"""Input checks of the simulated device operations.

Every public operation of the world calls these before it changes any state; a
bad value raises ``ValueError`` naming the argument. Nothing is clipped.
"""

from __future__ import annotations

import numpy as np


def _as_index(name: str, value, bound: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be integer cell indices, got {value!r}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must be integer cell indices, got {value!r}")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= bound):
        bad = arr[(arr < 0) | (arr >= bound)].ravel()[0]
        raise ValueError(f"{name} {int(bad)} outside the valid range 0..{bound - 1}")
    return arr.astype(np.int64, copy=False)


def flat_index(shape: tuple[int, int, int], macro, row, col) -> tuple[np.ndarray, tuple[int, ...]]:
    """Flat cell indices (1-D int64) and the broadcast shape of ``macro``, ``row``, ``col``.

    Each is an integer or integer array; they broadcast like numpy arrays.
    """
    m = _as_index("macro", macro, shape[0])
    r = _as_index("row", row, shape[1])
    c = _as_index("col", col, shape[2])
    try:
        m, r, c = np.broadcast_arrays(m, r, c)
    except ValueError:
        raise ValueError(f"macro, row, col shapes {np.shape(m)}, {np.shape(r)}, {np.shape(c)} "
                         "do not broadcast") from None
    flat = (m * shape[1] + r) * shape[2] + c
    return flat.ravel(), flat.shape


def _as_values(name: str, value, shape: tuple[int, ...], *, positive: bool = False,
               nonneg: bool = False, nonzero: bool = False, unit: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in {unit}, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite ({unit}), got {value!r}")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0 {unit}, got {value!r}")
    if nonneg and np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 {unit}, got {value!r}")
    if nonzero and np.any(arr == 0):
        raise ValueError(f"{name} must be non-zero ({unit}), got {value!r}")
    try:
        return np.broadcast_to(arr, shape).ravel()
    except ValueError:
        raise ValueError(f"{name} shape {arr.shape} does not broadcast to the cells' shape {shape}") from None


def check_pulse_args(shape: tuple[int, ...], polarity, amplitude, width, gate
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated 1-D arrays for a pulse batch over cells of broadcast ``shape``.

    ``polarity`` +1 (SET) or -1 (RESET); ``amplitude`` V, a magnitude >= 0 (the
    polarity gives the sign); ``width`` s, > 0; ``gate`` V, >= 0.
    """
    pol = _as_values("polarity", polarity, shape, unit="(+1 SET / -1 RESET)")
    if not np.all((pol == 1) | (pol == -1)):
        raise ValueError(f"polarity must be +1 (SET) or -1 (RESET), got {polarity!r}")
    amp = _as_values("amplitude", amplitude, shape, nonneg=True, unit="V")
    wid = _as_values("width", width, shape, positive=True, unit="s")
    gat = _as_values("gate", gate, shape, nonneg=True, unit="V")
    return pol, amp, wid, gat


def check_read_args(shape: tuple[int, ...], bias, window) -> tuple[np.ndarray, float]:
    """Validated read bias (1-D, V, non-zero) and integration window (s, > 0, scalar)."""
    b = _as_values("bias", bias, shape, nonzero=True, unit="V")
    w = _as_values("window", window, (), positive=True, unit="s")
    return b, float(w[0])
