"""Chunk-buffered appending to one resizable HDF5 dataset.

Rows are copied into a buffer of one chunk and written as whole chunks: one
resize and one aligned write per chunk instead of per row. ``write_out()`` (called
by the writer's flush, so at every step end) writes a partial buffer. Memory is
one chunk per dataset, whatever the number of rows.
"""

from __future__ import annotations

import h5py
import numpy as np


class Appender:
    """Appends rows of ``dataset.shape[1:]`` to ``dataset`` (first axis resizable)."""

    def __init__(self, dataset: h5py.Dataset, rows_on_disk: int) -> None:
        self.dataset = dataset
        self._n = rows_on_disk
        chunk_rows = dataset.chunks[0] if dataset.chunks else 1
        self._buf = np.empty((chunk_rows, *dataset.shape[1:]), dtype=dataset.dtype)
        self._k = 0

    @property
    def rows(self) -> int:
        """Rows appended so far (written or buffered)."""
        return self._n + self._k

    @property
    def row_shape(self) -> tuple[int, ...]:
        return self._buf.shape[1:]

    def append(self, rows: np.ndarray) -> None:
        """Append ``rows`` of shape ``(m, *row_shape)`` (cast to the dataset's dtype)."""
        m, cap, start = len(rows), len(self._buf), 0
        while start < m:
            if self._k == 0 and m - start >= cap:  # whole chunks go straight to disk
                take = (m - start) // cap * cap
                self._write(rows[start:start + take])
            else:
                take = min(cap - self._k, m - start)
                self._buf[self._k:self._k + take] = rows[start:start + take]
                self._k += take
                if self._k == cap:
                    self.write_out()
            start += take

    def write_out(self) -> None:
        """Write the buffered rows (readers see them after the file's next flush)."""
        if self._k:
            self._write(self._buf[: self._k])
            self._k = 0

    def _write(self, rows: np.ndarray) -> None:
        n, m = self._n, len(rows)
        self.dataset.resize(n + m, axis=0)
        self.dataset[n:n + m] = rows
        self._n = n + m
