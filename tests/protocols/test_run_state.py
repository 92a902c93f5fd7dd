"""The run state (status, end time, error) lives in datasets of /entry (schema 1.1): written
in SWMR mode at the end, read from old (1.0, attributes) and new files alike."""

from __future__ import annotations

import h5py
import numpy as np

from analysis import open_run, schema
from protocols.engine.datasets import Stream
from protocols.engine.run_writer import RunHeader, RunWriter

HEADER = RunHeader(protocol="state", parameters={}, seed=1, started="2026-01-01T00:00:00.000000Z", steps_total=2)


def _one_step(path) -> RunWriter:
    writer = RunWriter.create(path, HEADER, [Stream("x", units="V")])
    writer.append("x", np.array([1.0]))
    writer.end_step(0, "s0", "completed", start=0, end=1, clock_start=0, clock_end=1)
    return writer


def _as_schema_1_0(path, status: str, error: str, ended: str) -> None:
    """Rewrite a run file the way schema 1.0 kept its run state: attributes of /entry."""
    with h5py.File(path, "r+") as h5:
        entry = h5[schema.ENTRY]
        for name, *_ in schema.RUN_FIELDS:
            del entry[name]
        entry.attrs.update({"status": status, "error": error, "end_time": ended, "schema_version": "1.0"})


def test_the_run_state_is_datasets_the_reader_reads_but_does_not_list(tmp_path):
    path = tmp_path / "s.h5"
    _one_step(path).finish("failed", error="ValueError: bad", ended="2026-01-01T00:00:09.000000Z")
    with h5py.File(path, "r") as h5:
        entry = h5[schema.ENTRY]
        assert [entry[n][()] for n, *_ in schema.RUN_FIELDS] == [b"failed", b"2026-01-01T00:00:09.000000Z",
                                                                 b"ValueError: bad"]
        assert [entry[n].dtype.str[1:] for n, *_ in schema.RUN_FIELDS] == [d for _, d, _ in schema.RUN_FIELDS]
        assert not {n for n, *_ in schema.RUN_FIELDS} & set(entry.attrs)
    run = open_run(path)
    assert (run.status, run.ended, run.error, run.schema_version) == (
        "failed", "2026-01-01T00:00:09.000000Z", "ValueError: bad", schema.SCHEMA_VERSION)
    assert not set(run.datasets) & {f"{schema.ENTRY}/{n}" for n, *_ in schema.RUN_FIELDS}


def test_a_long_error_is_cut_at_a_character_boundary(tmp_path):
    path = tmp_path / "e.h5"
    _one_step(path).finish("failed", error="RuntimeError: " + "é" * 5000, ended="t")
    error = open_run(path).error
    assert error.startswith("RuntimeError: éé") and error.endswith(" [cut]")
    assert len(error.encode("utf-8")) <= schema.ERROR_BYTES


def test_a_schema_1_0_file_reads_and_resumes_into_1_1(tmp_path):
    path = tmp_path / "old.h5"
    _one_step(path).close()  # the writer "died" after step 0
    _as_schema_1_0(path, "failed", "OSError: link down", "2026-01-01T00:00:05.000000Z")
    old = open_run(path)
    assert (old.status, old.error, old.ended, old.schema_version) == (
        "failed", "OSError: link down", "2026-01-01T00:00:05.000000Z", "1.0")
    writer = RunWriter.reopen(path)
    writer.append("x", np.array([2.0]))
    writer.end_step(1, "s1", "completed", start=1, end=2, clock_start=1, clock_end=2)
    writer.finish("completed", ended="2026-01-02T00:00:00.000000Z")
    run = open_run(path)
    assert (run.status, run.error, run.ended, run.schema_version) == (
        "completed", "", "2026-01-02T00:00:00.000000Z", "1.1")
    assert run.resumes == [{"previous_status": "failed", "steps_completed": 1}]
    assert run.read("x").tolist() == [1.0, 2.0]
    with h5py.File(path, "r") as h5:
        assert not {n for n, *_ in schema.RUN_FIELDS} & set(h5[schema.ENTRY].attrs), "moved, not copied"
