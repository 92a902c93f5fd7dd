"""Offline analysis of run files: reading, metrics, figures, reports, calibration, sweeps.

Depends on the run-file format only (h5py + numpy); no instrument stack needed.
"""

from analysis.run_reader import DatasetInfo, JournalEntry, Run, RunFileError, open_run

__all__ = ["DatasetInfo", "JournalEntry", "Run", "RunFileError", "open_run"]
