"""Atomic, pickle-free persistence of a simulated world: one ``.npz`` with JSON metadata.

Arrays are stored under their names; the JSON metadata (parameters, clock, RNG
bit-generator state, routing, outputs) sits in the 0-d string array
``__meta__``. Writing goes to a temporary file in the target's folder, is
flushed to disk, then renamed over the target, so a process killed mid-save
leaves the previous state intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

META_KEY = "__meta__"


def write_state(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and ``meta`` (JSON-serialisable) to ``path`` atomically."""
    target = Path(path)
    if META_KEY in arrays:
        raise ValueError(f"array name {META_KEY!r} is reserved")
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise ValueError(f"array {name!r} has dtype object; only numeric/string arrays are stored")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **{META_KEY: np.array(json.dumps(meta, sort_keys=True))}, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_state(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read what :func:`write_state` wrote: ``(arrays, meta)``; never unpickles."""
    with np.load(Path(path), allow_pickle=False) as data:
        if META_KEY not in data.files:
            raise ValueError(f"{path}: not a rrambench world state (no {META_KEY!r} entry)")
        meta = json.loads(str(data[META_KEY]))
        arrays = {name: data[name] for name in data.files if name != META_KEY}
    return arrays, meta
