"""The chunk-buffered appender: writes stay aligned to chunks, rows come back in order."""

from __future__ import annotations

import h5py
import numpy as np

from protocols.engine.appender import Appender
from protocols.engine.h5io import LIBVER


class RecordingAppender(Appender):
    """Records the row range of every HDF5 write."""

    def __init__(self, dataset: h5py.Dataset, rows_on_disk: int) -> None:
        self.writes: list[tuple[int, int]] = []
        super().__init__(dataset, rows_on_disk)

    def _write(self, rows: np.ndarray) -> None:
        self.writes.append((self._n, self._n + len(rows)))
        super()._write(rows)


def test_writes_after_a_partial_flush_end_on_chunk_boundaries(tmp_path):
    """After a step-end write-out mid-chunk, every buffered write ends on a chunk boundary."""
    with h5py.File(tmp_path / "a.h5", "w", libver=LIBVER) as h5:
        ds = h5.create_dataset("x", shape=(0, 3), maxshape=(None, 3), dtype="i2", chunks=(4, 3))
        app = RecordingAppender(ds, 0)
        rows = np.arange(150, dtype="i2").reshape(50, 3)
        for row in rows[:6]:
            app.append_row(row)
        app.write_out()  # a step ends mid-chunk (rows 4..5 of chunk 1)
        for row in rows[6:30]:
            app.append_row(row)
        app.append(rows[30:47])
        app.write_out()
        app.append(rows[47:])
        app.write_out()
        assert app.rows == 50
        np.testing.assert_array_equal(ds[:], rows)
        full = [w for w in app.writes if w not in {(0, 6), (app.writes[-2][0], 47), (47, 50)}]
        assert full and all(end % 4 == 0 for _, end in full), app.writes
        assert app.writes[1][0] == 6 and app.writes[1][1] % 4 == 0  # the partial chunk is completed first


def test_resumed_appender_starts_mid_chunk(tmp_path):
    """An appender over a dataset cut mid-chunk (resume) fills up to the boundary first."""
    with h5py.File(tmp_path / "b.h5", "w", libver=LIBVER) as h5:
        ds = h5.create_dataset("x", data=np.arange(5.0), maxshape=(None,), chunks=(4,))
        app = RecordingAppender(ds, 5)
        app.append(np.arange(5.0, 40.0))
        app.write_out()
        np.testing.assert_array_equal(ds[:], np.arange(40.0))
        assert app.writes[0][0] == 5 and app.writes[0][1] % 4 == 0


def test_without_a_chunk_cache_the_buffer_fills_whole(tmp_path):
    """The run writer's files have the chunk cache off: writes need no alignment, a step is one write."""
    with h5py.File(tmp_path / "c.h5", "w", libver=LIBVER, rdcc_nbytes=0) as h5:
        ds = h5.create_dataset("x", shape=(0, 3), maxshape=(None, 3), dtype="i2", chunks=(4, 3), fill_time="never")
        app = RecordingAppender(ds, 0)
        rows = np.arange(150, dtype="i2").reshape(50, 3)
        for start in range(0, 50, 10):  # steps of 10 rows, a write-out at each end
            app.append(rows[start:start + 10])
            app.write_out()
        np.testing.assert_array_equal(ds[:], rows)
        assert app.writes == [(s, s + 10) for s in range(0, 50, 10)]
