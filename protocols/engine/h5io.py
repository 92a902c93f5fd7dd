"""Opening HDF5 run files with one file format and one kind of error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py

from analysis.run_reader import RunFileError  # one error for an unreadable run file, writer and reader alike

# File format of HDF5 1.10: SWMR-capable and readable by the 1.10 tools (h5dump)
# still shipped by many distributions; "latest" would lock those out.
LIBVER = ("v110", "v110")


def open_h5(path: Path, mode: str, **kwargs: Any) -> h5py.File:
    """Open an HDF5 file, turning "not a file / not HDF5 / truncated" into RunFileError."""
    try:
        return h5py.File(path, mode, **kwargs)
    except FileNotFoundError:
        raise RunFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise RunFileError(f"{path}: not a readable HDF5 run file ({exc})") from None
