"""Offline analysis of run files: reading, metrics, figures, reports, calibration, sweeps.

Depends on the run-file format only (h5py + numpy); no instrument stack needed.

The face, ``from analysis import open_run``, loads :mod:`analysis.run_reader` on first
use (PEP 562), so ``import analysis.schema`` (the writer's import) pulls in nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["DatasetInfo", "JournalEntry", "Run", "RunFileError", "open_run"]

if TYPE_CHECKING:
    from analysis.run_reader import DatasetInfo, JournalEntry, Run, RunFileError, open_run


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("analysis.run_reader"), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
