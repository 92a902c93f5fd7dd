"""The step journal of a run file (``/entry/journal``) and reopening for resume.

One row per finished step: index, name, status, wall-clock start/end (POSIX s,
UTC), bench-clock start/end (s, virtual on the simulated bench) and the row count
of every growing dataset right after the step. The counts let ``--resume`` cut
every stream back to the end of the last completed step, whatever a killed
writer left behind.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from analysis.schema import (
    COMPLETED,
    JOURNAL,
    JOURNAL_COLUMNS,
    LONG_NAME,
    NAME_BYTES,
    PULSES,
    ROWS,
    STREAMS,
    UNITS,
)
from protocols.engine.appender import write_rows
from protocols.engine.h5io import LIBVER, new_attrs, open_dataset_id, open_group, open_h5

log = logging.getLogger("rrambench.runfile")


class Journal:
    """Reads and appends the journal group of an open run file."""

    def __init__(self, group: h5py.Group, streams: list[str] | None = None,
                 dtypes: Mapping[str, np.dtype] | None = None) -> None:
        """``streams``: the journal's streams when known, i.e. of a journal just created (no rows).
        ``dtypes``: the types of its datasets by name (the columns and ``rows``) when known, i.e.
        of a journal made from a skeleton whose types were read once; else asked at the first row."""
        self._group = group
        # Low-level ids: a journal is appended to far more often than read, and the eight
        # h5py.Dataset objects cost a tenth of a run file's creation.
        self._cols = {c: open_dataset_id(group, c) for c, *_ in JOURNAL_COLUMNS}
        self._rows_ds = open_dataset_id(group, ROWS)
        # Asking a dataset its type costs ~20 us: eight of them were a third of a journal row.
        self._dtypes: dict[str, np.dtype] = dict(dtypes or {})
        if streams is not None:
            self.streams: list[str] = list(streams)
            self._n = 0
        else:
            self.streams = [str(s) for s in group.attrs[STREAMS]]
            self._n = min([ds.shape[0] for ds in self._cols.values()] + [self._rows_ds.shape[0]])

    @classmethod
    def create(cls, h5: h5py.File, streams: list[str]) -> Journal:
        """Create the journal before SWMR starts; ``streams`` are the growing datasets."""
        group = h5.create_group(JOURNAL)
        new_attrs(group, {"NX_class": "NXcollection", STREAMS: streams})
        for column, dtype, unit, meaning in JOURNAL_COLUMNS:
            ds = group.create_dataset(column, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,),
                                      fill_time="never")  # like every growing dataset (run_writer._create_data)
            new_attrs(ds, {UNITS: unit, LONG_NAME: meaning})
        width = max(1, len(streams))
        rows = group.create_dataset(ROWS, shape=(0, width), maxshape=(None, width), dtype="i8",
                                    chunks=(256, width), fill_time="never")
        new_attrs(rows, {UNITS: "",
                         LONG_NAME: f"rows of each growing dataset after the step (columns: attribute {STREAMS})"})
        return cls(group)

    @classmethod
    def attach(cls, h5: h5py.File, streams: list[str] | None = None,
               dtypes: Mapping[str, np.dtype] | None = None) -> Journal:
        """The journal of ``h5``; ``streams``: its streams, given for a file just created (nothing
        to read); ``dtypes``: its datasets' types by name, when known."""
        return cls(open_group(h5, JOURNAL), streams, dtypes)

    # -- reading --------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def statuses(self) -> list[str]:
        return [s.decode() for s in h5py.Dataset(self._cols["status"])[: self._n]]

    @property
    def completed(self) -> int:
        """Number of leading completed steps (the resume point)."""
        count = 0
        for status in self.statuses:
            if status != COMPLETED:
                break
            count += 1
        return count

    def rows_after(self, steps: int) -> dict[str, int]:
        """Row count of every growing dataset after the first ``steps`` journal rows."""
        if steps == 0:
            return dict.fromkeys(self.streams, 0)
        counts = h5py.Dataset(self._rows_ds)[steps - 1]
        return {s: int(n) for s, n in zip(self.streams, counts, strict=False)}

    def current_rows(self) -> dict[str, int]:
        """Row counts recorded after the last journal entry ({} if the journal is empty)."""
        return self.rows_after(self._n) if self._n else {}

    # -- writing --------------------------------------------------------------------
    def append(self, index: int, name: str, status: str, *, start: float, end: float,
               clock_start: float, clock_end: float, rows: dict[str, int]) -> None:
        """Append one step row; ``rows`` maps every stream path to its row count."""
        encoded = name.encode("utf-8")
        if len(encoded) > NAME_BYTES:
            raise ValueError(f"step name longer than {NAME_BYTES} bytes: {name!r}")
        values = {
            "index": index, "name": encoded, "status": status.encode(), "start": start, "end": end,
            "clock_start": clock_start, "clock_end": clock_end,
        }
        n = self._n
        counts = np.array([[rows.get(s, 0) for s in self.streams] or [0]], dtype=np.int64)
        write_rows(self._rows_ds, n, counts, dtype=self._dtype(ROWS, self._rows_ds))
        for column, value in values.items():  # low-level writes: ~1/4 of h5py's resize and ds[n] = value
            ds = self._cols[column]
            dtype = self._dtype(column, ds)
            write_rows(ds, n, np.array([value], dtype=dtype), dtype=dtype)
        self._n = n + 1

    def _dtype(self, name: str, dsid: h5py.h5d.DatasetID) -> np.dtype:
        dtype = self._dtypes.get(name)
        if dtype is None:
            dtype = self._dtypes[name] = dsid.dtype
        return dtype

    def truncate_to_completed(self) -> None:
        """Cut the journal to its completed prefix and every stream to its rows then."""
        keep = self.completed
        counts = self.rows_after(keep)
        h5 = self._group.file
        for path, n in counts.items():
            if path == PULSES:
                for ds in h5[path].values():
                    ds.resize(n, axis=0)
            else:
                h5[path].resize(n, axis=0)
        for dsid in [*self._cols.values(), self._rows_ds]:
            dsid.set_extent((keep, *dsid.shape[1:]))
        self._n = keep

    # -- reopening --------------------------------------------------------------------
    @staticmethod
    def open_for_resume(path: Path) -> h5py.File:
        """Open ``path`` read-write; a file left by a killed SWMR writer is repaired first.

        HDF5 marks a file open for SWMR writing in its superblock; after a kill the
        mark stays and only SWMR readers may open it. The repair copies every object
        into a fresh file next to it and atomically replaces the original.
        """
        try:
            return h5py.File(path, "r+", libver=LIBVER, rdcc_nbytes=0)  # the chunk cache off, as at creation
        except FileNotFoundError:
            return open_h5(path, "r")  # raises the "no such file" RunFileError
        except OSError as exc:
            if "already open for write" not in str(exc):
                return open_h5(path, "r+", libver=LIBVER)  # raises a clear RunFileError
        log.info("%s was left open by a killed writer; copying it into a clean file", path)
        tmp = path.with_name(f".{path.name}.resume-tmp")
        tmp.unlink(missing_ok=True)
        try:
            with open_h5(path, "r", swmr=True) as src, h5py.File(tmp, "w", libver=LIBVER) as dst:
                for key, value in src.attrs.items():
                    dst.attrs[key] = value
                for name in src:
                    src.copy(src[name], dst, name=name)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return h5py.File(path, "r+", libver=LIBVER, rdcc_nbytes=0)
