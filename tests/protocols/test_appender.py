"""The chunk-buffered appender: writes stay aligned to chunks, rows come back in order; the
direct path writes rows past HDF5 into the chunks it allocated, and only where that is safe."""

from __future__ import annotations

import errno
import os

import h5py
import numpy as np
import pytest

from protocols.engine import appender
from protocols.engine.appender import Appender, direct_rows_dcpl
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


# -- the direct path: rows kept, written with pwritev into chunks HDF5 allocated ---------------
def _direct_dataset(h5: h5py.File, points: int = 5, chunk: int = 4, dtype: str = "i2") -> h5py.Dataset:
    return h5.create_dataset("t", shape=(0, points), maxshape=(None, points), dtype=dtype, chunks=(chunk, points),
                             fill_time="never", dcpl=direct_rows_dcpl())


def _direct_appender(h5: h5py.File, ds: h5py.Dataset, rows_on_disk: int = 0) -> Appender:
    app = Appender(ds, rows_on_disk, fd=h5.id.get_vfd_handle())
    assert app._pending is not None, "the direct path applies"
    return app


def test_direct_rows_reach_an_swmr_reader_at_each_write_out_across_chunks(tmp_path):
    """Rows of every step, across chunk boundaries and in batches, are what a reader sees."""
    rows = np.arange(230, dtype="i2").reshape(46, 5)
    with h5py.File(tmp_path / "d.h5", "w", libver=LIBVER, rdcc_nbytes=0) as h5:
        ds = _direct_dataset(h5)
        app = _direct_appender(h5, ds)
        h5.swmr_mode = True
        with h5py.File(tmp_path / "d.h5", "r", swmr=True) as reader:
            seen = reader["t"]
            for start, stop in [(0, 3), (3, 4), (4, 13), (13, 30), (30, 46)]:  # steps of any length
                if stop - start > 10:
                    app.append(rows[start:stop])
                else:
                    for row in rows[start:stop]:
                        app.append_row(row)
                app.write_out()
                h5.flush()
                seen.refresh()
                np.testing.assert_array_equal(seen[:], rows[:stop])
        assert app.rows == 46 and len(app._chunk_at) == 12


def test_direct_rows_of_another_type_or_layout_are_converted_and_the_callers_batch_is_not_kept(tmp_path):
    with h5py.File(tmp_path / "e.h5", "w", libver=LIBVER, rdcc_nbytes=0) as h5:
        ds = _direct_dataset(h5)
        app = _direct_appender(h5, ds)
        wide = np.arange(10, dtype=">i4").reshape(2, 5)  # big-endian, wider: cast as h5py would
        strided = np.arange(10, dtype="i2")[::2]  # not contiguous
        app.append_row(wide[0])
        app.append_row(strided)
        batch = np.full((3, 5), 7, dtype="i2")
        app.append(batch)
        batch[:] = -1  # the caller reuses its batch before the write-out
        app.write_out()
        np.testing.assert_array_equal(ds[:], [wide[0], strided, *[[7] * 5] * 3])


def test_a_failed_direct_write_leaves_the_extent_at_the_rows_written(tmp_path, monkeypatch):
    """A write the OS refuses (a full disk) never shows readers rows that are not in the file,
    and the rows kept are written where they belong when the write is tried again."""
    with h5py.File(tmp_path / "f.h5", "w", libver=LIBVER, rdcc_nbytes=0) as h5:
        ds = _direct_dataset(h5)
        app = _direct_appender(h5, ds)
        app.append(np.ones((8, 5), dtype="i2"))  # two whole chunks
        app.write_out()

        def full(fd, buffers, offset):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        with monkeypatch.context() as m:
            m.setattr(appender.os, "pwritev", full)
            app.append(np.full((3, 5), 2, dtype="i2"))  # chunk 2, allocated by the extent, then freed
            with pytest.raises(OSError, match="No space"):
                app.write_out()
        assert ds.shape == (8, 5)
        h5.create_dataset("other", shape=(64, 5), dtype="i2", chunks=(4, 5), dcpl=direct_rows_dcpl())  # takes its space
        app.write_out()
        np.testing.assert_array_equal(ds[:], [[1] * 5] * 8 + [[2] * 5] * 3)


def test_short_direct_writes_and_more_rows_than_one_call_takes_are_completed(tmp_path, monkeypatch):
    def short(fd, buffers, offset):  # the OS takes all but the last 7 bytes
        data = b"".join(bytes(b) for b in buffers)[:-7]
        return os.pwrite(fd, data, offset)

    monkeypatch.setattr(appender, "_IOV_MAX", 3)
    monkeypatch.setattr(appender.os, "pwritev", short)
    rows = np.arange(80, dtype="i2").reshape(16, 5)
    with h5py.File(tmp_path / "g.h5", "w", libver=LIBVER, rdcc_nbytes=0) as h5:
        ds = _direct_dataset(h5, chunk=8)
        app = _direct_appender(h5, ds)
        for row in rows:
            app.append_row(row)
        app.write_out()
        np.testing.assert_array_equal(ds[:], rows)


@pytest.mark.parametrize("why", ["chunk cache", "late allocation", "filter", "no descriptor", "not whole rows"])
def test_the_direct_path_is_left_where_it_does_not_apply(tmp_path, why):
    """Where rows could not be written past HDF5 safely, they go through HDF5 from the buffer."""
    with h5py.File(tmp_path / "h.h5", "w", libver=LIBVER, rdcc_nbytes=1 << 20 if why == "chunk cache" else 0) as h5:
        kw: dict = {"dcpl": direct_rows_dcpl()} if why != "late allocation" else {}
        if why == "filter":
            kw["compression"] = "gzip"
        chunks = (4, 2) if why == "not whole rows" else (4, 5)
        ds = h5.create_dataset("t", shape=(0, 5), maxshape=(None, 5), dtype="i2", chunks=chunks, **kw)
        app = Appender(ds, 0, fd=None if why == "no descriptor" else h5.id.get_vfd_handle())
        assert app._pending is None
        rows = np.arange(45, dtype="i2").reshape(9, 5)
        for row in rows:
            app.append_row(row)
        app.write_out()
        np.testing.assert_array_equal(ds[:], rows)


@pytest.mark.parametrize("kind", ["direct", "buffered", "chunk cache"])
def test_an_appender_of_a_low_level_id_decides_and_writes_as_one_of_the_dataset(tmp_path, kind):
    """Given the dataset's low-level id (the run writer's, which makes no h5py.Dataset) and the
    file's chunk cache, an appender takes the path and writes the rows an appender of the
    h5py.Dataset does; it makes the h5py.Dataset only when asked for it."""
    cache = 1 << 20 if kind == "chunk cache" else 0
    with h5py.File(tmp_path / "i.h5", "w", libver=LIBVER, rdcc_nbytes=cache) as h5:
        kw: dict = {"dcpl": direct_rows_dcpl()} if kind != "buffered" else {}
        made = [h5.create_dataset(n, shape=(0, 5), maxshape=(None, 5), dtype="i2", chunks=(4, 5), **kw)
                for n in ("by_dataset", "by_id")]
        fd = h5.id.get_vfd_handle()
        apps = [Appender(made[0], 0, fd=fd), Appender(made[1].id, 0, fd=fd, chunk_cache=cache > 0)]
        assert apps[1]._dataset is None, "no h5py.Dataset made before it is asked for"
        assert [a._pending is None for a in apps] == [kind != "direct"] * 2
        assert [a._aligned for a in apps] == [kind == "chunk cache"] * 2
        rows = np.arange(70, dtype="i2").reshape(14, 5)
        for app in apps:
            for row in rows[:9]:
                app.append_row(row)
            app.write_out()
            app.append(rows[9:])
            app.write_out()
        assert apps[1].dataset.name == "/by_id" and apps[1].id == made[1].id
        for ds in made:
            np.testing.assert_array_equal(ds[:], rows)
