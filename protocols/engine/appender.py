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

Datasets whose chunks HDF5 allocates when the extent grows (``alloc_time`` early, no
filters, chunks of whole rows; the scope traces, :func:`direct_rows_dcpl`) in a file on
the POSIX driver take a faster path: :meth:`Appender.append_row` keeps the row itself
(no copy) and the write-out extends the dataset, which places its chunks in the file,
then writes the rows with one ``pwritev`` per chunk at their place in it. HDF5 writes
rows the same way with its chunk cache off (no cache, no conversion, straight to the
file); what it does not do is take many separate rows in one call, and copying 10 kB
traces into one buffer for it cost a third as much as writing them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import h5py
import numpy as np

#: Bytes of the write buffer (a whole number of chunks, at least one): small chunks keep
#: the partial chunk a step-end flush writes (and writes again when it fills) small,
#: while writing several of them per call keeps the number of HDF5 writes low.
BUFFER_BYTES = 1 << 20
#: ... but no more than this many chunks: streams of small rows (the pulse table's eight
#: columns) would otherwise hold 1 MiB each for rows the step-end flush writes anyway.
MAX_BUFFER_CHUNKS = 4


@dataclass(frozen=True)
class Layout:
    """What an :class:`Appender` needs to know of its dataset, from its creation properties.

    Asking HDF5 costs ~60 us a dataset (creation properties, shape and type each ~15 us);
    datasets made from the same declaration share one layout, read once
    (``run_writer``: per run-file skeleton).
    """

    row_shape: tuple[int, ...]
    dtype: np.dtype
    #: Rows per chunk (1 for a dataset that is not chunked).
    chunk: int
    #: The direct path can write it (given a POSIX descriptor and no chunk cache): chunks of
    #: whole rows, allocated early, not filtered; a native numeric type (the rows' bytes are the file's).
    direct: bool

    @classmethod
    def of(cls, dataset: h5py.Dataset | h5py.h5d.DatasetID) -> Layout:
        """The layout of ``dataset`` (or of the dataset of this low-level id)."""
        dsid = dataset if isinstance(dataset, h5py.h5d.DatasetID) else dataset.id
        dcpl = dsid.get_create_plist()  # asked once: each such query costs ~15 us
        chunks = dcpl.get_chunk() if dcpl.get_layout() == h5py.h5d.CHUNKED else None
        row_shape, dtype = dsid.shape[1:], dsid.dtype
        return cls(row_shape, dtype, chunks[0] if chunks else 1, _direct_applies(dcpl, chunks, row_shape, dtype))


class Appender:
    """Appends rows of ``dataset.shape[1:]`` to ``dataset`` (first axis resizable)."""

    def __init__(self, dataset: h5py.Dataset | h5py.h5d.DatasetID, rows_on_disk: int, *, fd: int | None = None,
                 chunk_cache: bool | None = None, layout: Layout | None = None) -> None:
        """``dataset``: the dataset, or its low-level id (an ``h5py.Dataset`` is then made only
        when asked for, :attr:`dataset`: making one costs as much as opening the dataset).
        ``fd``: the descriptor of the dataset's file when it is on the POSIX driver
        (``h5py.File.driver`` "sec2"): the direct path writes through it where it applies.
        ``chunk_cache``: whether the file has a chunk cache (h5py's ``rdcc_nbytes`` > 0), when
        the caller knows it from the file's access properties; None: asked of the dataset.
        ``layout``: the dataset's :class:`Layout` when the caller has it (read from a dataset
        of the same creation properties); None: read from this one."""
        if isinstance(dataset, h5py.h5d.DatasetID):
            self._id, self._dataset = dataset, None
        else:
            self._id, self._dataset = dataset.id, dataset
        self._n = rows_on_disk
        dsid = self._id
        layout = layout or Layout.of(dsid)
        self.layout = layout
        row_shape = self.row_shape = layout.row_shape
        self._chunk = layout.chunk
        self._dtype = layout.dtype
        self._row_bytes = int(np.prod(row_shape, dtype=np.int64)) * self._dtype.itemsize
        rows = self._chunk * min(MAX_BUFFER_CHUNKS, max(1, BUFFER_BYTES // max(1, self._chunk * self._row_bytes)))
        if chunk_cache is None:
            chunk_cache = dsid.get_access_plist().get_chunk_cache()[1] > 0  # bytes of chunk cache
        self._aligned = chunk_cache
        # None: rows go through HDF5's write, from the buffer. The direct path keeps the rows
        # themselves until written (no buffer), and needs the chunk cache off: a cached chunk
        # would not see the rows written past HDF5.
        self._fd = fd if fd is not None and not self._aligned and layout.direct else None
        self._buf = np.empty((0 if self._fd is not None else rows, *row_shape), dtype=self._dtype)
        self._mtype = _memory_type(self._dtype)
        self._k = 0
        self._cap = rows if self._fd is not None else self._room()
        #: The direct path's rows, kept until written (None: not on the direct path).
        self._pending: list[np.ndarray] | None = [] if self._fd is not None else None
        self._chunk_at: dict[int, int] = {}  # file address of each chunk written to, by chunk index

    @property
    def id(self) -> h5py.h5d.DatasetID:
        """The low-level id of the dataset appended to."""
        return self._id

    @property
    def dataset(self) -> h5py.Dataset:
        """The dataset appended to."""
        if self._dataset is None:
            self._dataset = h5py.Dataset(self._id)
        return self._dataset

    @property
    def rows(self) -> int:
        """Rows appended so far (written or buffered)."""
        return self._n + self._k + (len(self._pending) if self._pending else 0)

    def append(self, rows: np.ndarray) -> None:
        """Append ``rows`` of shape ``(m, *row_shape)`` (cast to the dataset's dtype)."""
        if self._pending is not None:
            self._pending.extend(np.array(rows, dtype=self._dtype, order="C"))  # a copy: the caller's stays theirs
            if len(self._pending) >= self._cap:
                self.write_out()
            return
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
        is copied once, into the chunk buffer; on the direct path (see the module's
        text) it is not copied but kept until the next write-out (at most a buffer's
        rows, and every step end): the caller must not change it in place meanwhile.
        """
        pending = self._pending
        if pending is not None:
            if row.dtype is not self._dtype or not row.flags.c_contiguous:
                row = np.ascontiguousarray(row, dtype=self._dtype)
            pending.append(row)
            if len(pending) == self._cap:
                self._write_direct()
            return
        self._buf[self._k] = row
        self._k += 1
        if self._k == self._cap:
            self.write_out()

    def write_out(self) -> None:
        """Write the buffered rows (readers see them after the file's next flush)."""
        if self._pending:
            self._write_direct()
        if self._k:
            self._write(self._buf[: self._k])
            self._k = 0

    def _room(self) -> int:
        """Rows the buffer takes before a write: up to a chunk boundary (the whole buffer when
        aligned or without a chunk cache)."""
        return len(self._buf) - (self._n % self._chunk if self._aligned else 0)

    def _write(self, rows: np.ndarray) -> None:
        write_rows(self._id, self._n, rows, self._mtype, self._dtype)
        self._n += len(rows)
        self._cap = self._room()

    def _write_direct(self) -> None:
        """Extend the dataset over the pending rows (HDF5 allocates their chunks), then
        write each chunk's share of them with one ``pwritev`` at its place in the file."""
        rows, n = self._pending or [], self._n
        m = len(rows)
        dsid = self._id
        dsid.set_extent((n + m, *self.row_shape))
        try:
            done = 0
            while done < m:
                chunk, within = divmod(n + done, self._chunk)
                take = min(m - done, self._chunk - within)
                _pwrite_all(self._fd, rows[done:done + take], self._row_bytes,
                            self._chunk_address(chunk) + within * self._row_bytes)
                done += take
        except BaseException:  # the rows are not all in the file: readers must not see them
            dsid.set_extent((n, *self.row_shape))  # frees the chunks past row n: forget where they were
            self._chunk_at = {c: at for c, at in self._chunk_at.items() if c * self._chunk < n}
            raise
        self._pending = []
        self._n += m

    def _chunk_address(self, chunk: int) -> int:
        at = self._chunk_at.get(chunk)
        if at is None:
            info = self._id.get_chunk_info_by_coord((chunk * self._chunk, *(0 for _ in self.row_shape)))
            if info.byte_offset is None or info.size != self._chunk * self._row_bytes:
                raise OSError(f"{self.dataset.name}: chunk {chunk} not allocated as a whole ({info})")
            at = self._chunk_at[chunk] = info.byte_offset
        return at


def direct_rows_dcpl() -> h5py.h5p.PropDCID:
    """Dataset creation properties of a dataset the direct path writes (see the module's
    text): chunk storage allocated when the extent grows, never filled (rows are written
    over it before readers see the extent)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return dcpl


def _direct_applies(dcpl: h5py.h5p.PropDCID, chunks: tuple[int, ...] | None, row_shape: tuple[int, ...],
                    dtype: np.dtype) -> bool:
    """The direct path can write a dataset of creation properties ``dcpl``: chunks of whole
    rows, allocated early, not filtered; a native numeric type (the rows' bytes are the file's)."""
    if not hasattr(os, "pwritev") or chunks is None or chunks[1:] != row_shape:
        return False
    return (dcpl.get_alloc_time() == h5py.h5d.ALLOC_TIME_EARLY and not dcpl.get_nfilters()
            and dtype.isnative and dtype.kind in "iuf")


def _pwrite_all(fd: int, rows: list[np.ndarray], row_bytes: int, offset: int) -> None:
    """Write ``rows`` (``row_bytes`` each) one after the other from ``offset`` on."""
    for start in range(0, len(rows), _IOV_MAX):
        part = rows[start:start + _IOV_MAX]
        size = len(part) * row_bytes
        written = os.pwritev(fd, part, offset)
        if written < size:  # a short write (a signal, a full disk): the rest, joined
            rest = memoryview(b"".join(r.tobytes() for r in part))[written:]
            while rest:
                done = os.pwrite(fd, rest, offset + written)
                if done == 0:
                    raise OSError(f"no byte written at offset {offset + written}")
                rest, written = rest[done:], written + done
        offset += size


_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16


def write_rows(dataset: h5py.Dataset | h5py.h5d.DatasetID, n: int, rows: np.ndarray,
               mtype: h5py.h5t.TypeID | None = None, dtype: np.dtype | None = None) -> None:
    """Resize ``dataset`` (or the dataset of this low-level id) to ``n + len(rows)`` rows and
    write ``rows`` from row ``n`` on.

    Rows of the dataset's own type go through h5py's low-level calls (``mtype``: their
    memory type, :func:`_memory_type` of the dataset's dtype, made once by the caller):
    its ``resize`` and ``ds[a:b] = rows`` cost ~200 us a write in selection bookkeeping.
    Other types and layouts go through ``ds[a:b] = rows``, which converts them.
    ``dtype``: the dataset's type when the caller knows it (asking HDF5 costs ~20 us, as
    much as the write of a journal row's value).
    """
    dsid = dataset if isinstance(dataset, h5py.h5d.DatasetID) else dataset.id
    row_shape = rows.shape[1:]
    dsid.set_extent((n + len(rows), *row_shape))
    if rows.dtype == (dsid.dtype if dtype is None else dtype) and rows.flags.c_contiguous and rows.dtype.kind != "O":
        space = dsid.get_space()
        space.select_hyperslab((n, *(0 for _ in row_shape)), rows.shape)
        dsid.write(h5py.h5s.create_simple(rows.shape), space, rows, mtype=mtype or _memory_type(rows.dtype))
    else:
        h5py.Dataset(dsid)[n:n + len(rows)] = rows


@functools.lru_cache(maxsize=64)
def _memory_type(dtype: np.dtype) -> h5py.h5t.TypeID | None:
    """The HDF5 memory type of ``dtype`` for :func:`write_rows` (None: left to h5py)."""
    return h5py.h5t.py_create(dtype) if dtype.kind != "O" else None
