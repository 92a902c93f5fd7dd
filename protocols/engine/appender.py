"""Chunk-buffered appending to one resizable HDF5 dataset.

Rows are copied into a buffer of whole chunks (about :data:`BUFFER_BYTES`) and
written as whole chunks: one resize and one aligned write per buffer instead of per
row. ``write_out()`` (called by the writer's flush, so at every step end) writes a
partial buffer. Memory is one buffer per dataset, whatever the number of rows.

When the dataset has a chunk cache, writes stay aligned to its chunks: after a
partial write-out the buffer only fills up to the end of the chunk it started, so no
write ever straddles two chunks. A straddling write touches two chunks, one of which
HDF5 must read back (or keep in its chunk cache) to merge the new rows in: on 10 kB
scope traces and 100-row steps that read-modify-write was a third of the writer's time.
The run writer opens its files with the chunk cache off: rows then go straight to
their place in the file, a partial chunk costs only its rows, and the buffer fills
whole (one write per step of up to a buffer, not two).
"""

from __future__ import annotations

import h5py
import numpy as np

#: Bytes of the write buffer (a whole number of chunks, at least one): small chunks keep
#: the partial chunk a step-end flush writes (and writes again when it fills) small,
#: while writing several of them per call keeps the number of HDF5 writes low.
BUFFER_BYTES = 1 << 20
#: ... but no more than this many chunks: streams of small rows (the pulse table's eight
#: columns) would otherwise hold 1 MiB each for rows the step-end flush writes anyway.
MAX_BUFFER_CHUNKS = 4


class Appender:
    """Appends rows of ``dataset.shape[1:]`` to ``dataset`` (first axis resizable)."""

    def __init__(self, dataset: h5py.Dataset, rows_on_disk: int) -> None:
        self.dataset = dataset
        self._n = rows_on_disk
        chunks, row_shape = dataset.chunks, dataset.shape[1:]
        self._chunk = chunks[0] if chunks else 1
        chunk_bytes = max(1, self._chunk * int(np.prod(row_shape, dtype=np.int64)) * dataset.dtype.itemsize)
        rows = self._chunk * min(MAX_BUFFER_CHUNKS, max(1, BUFFER_BYTES // chunk_bytes))
        self._buf = np.empty((rows, *row_shape), dtype=dataset.dtype)
        self.row_shape: tuple[int, ...] = self._buf.shape[1:]
        self._mtype = _memory_type(self._buf.dtype)
        self._aligned = dataset.id.get_access_plist().get_chunk_cache()[1] > 0  # bytes of chunk cache
        self._k = 0
        self._cap = self._room()

    @property
    def rows(self) -> int:
        """Rows appended so far (written or buffered)."""
        return self._n + self._k

    def append(self, rows: np.ndarray) -> None:
        """Append ``rows`` of shape ``(m, *row_shape)`` (cast to the dataset's dtype)."""
        m, start = len(rows), 0
        while start < m:
            if self._k == 0 and self._cap == len(self._buf) and m - start >= self._cap:
                take = (m - start) // self._chunk * self._chunk  # whole aligned chunks go straight to disk
                self._write(rows[start:start + take])
            else:
                take = min(self._cap - self._k, m - start)
                self._buf[self._k:self._k + take] = rows[start:start + take]
                self._k += take
                if self._k == self._cap:
                    self.write_out()
            start += take

    def append_row(self, row: np.ndarray) -> None:
        """Append one row of ``row_shape`` (the scope's one trace per acquisition).

        The per-row path of :meth:`append` without its slicing arithmetic: a trace
        is copied once, into the chunk buffer.
        """
        self._buf[self._k] = row
        self._k += 1
        if self._k == self._cap:
            self.write_out()

    def write_out(self) -> None:
        """Write the buffered rows (readers see them after the file's next flush)."""
        if self._k:
            self._write(self._buf[: self._k])
            self._k = 0

    def _room(self) -> int:
        """Rows the buffer takes before a write: up to a chunk boundary (the whole buffer when
        aligned or without a chunk cache)."""
        return len(self._buf) - (self._n % self._chunk if self._aligned else 0)

    def _write(self, rows: np.ndarray) -> None:
        write_rows(self.dataset, self._n, rows, self._mtype)
        self._n += len(rows)
        self._cap = self._room()


def write_rows(dataset: h5py.Dataset, n: int, rows: np.ndarray, mtype: h5py.h5t.TypeID | None = None) -> None:
    """Resize ``dataset`` to ``n + len(rows)`` rows and write ``rows`` from row ``n`` on.

    Rows of the dataset's own type go through h5py's low-level calls (``mtype``: their
    memory type, :func:`_memory_type` of the dataset's dtype, made once by the caller):
    its ``resize`` and ``ds[a:b] = rows`` cost ~200 us a write in selection bookkeeping.
    Other types and layouts go through ``ds[a:b] = rows``, which converts them.
    """
    dsid, row_shape = dataset.id, rows.shape[1:]
    dsid.set_extent((n + len(rows), *row_shape))
    if rows.dtype == dataset.dtype and rows.flags.c_contiguous and rows.dtype.kind != "O":
        space = dsid.get_space()
        space.select_hyperslab((n, *(0 for _ in row_shape)), rows.shape)
        dsid.write(h5py.h5s.create_simple(rows.shape), space, rows, mtype=mtype or _memory_type(rows.dtype))
    else:
        dataset[n:n + len(rows)] = rows


def _memory_type(dtype: np.dtype) -> h5py.h5t.TypeID | None:
    """The HDF5 memory type of ``dtype`` for :func:`write_rows` (None: left to h5py)."""
    return h5py.h5t.py_create(dtype) if dtype.kind != "O" else None
