"""analysis.open_run: typed access to complete, aborted, failed and killed run files."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import numpy as np
import pytest

from analysis import Run, RunFileError, open_run
from protocols.engine.datasets import Stream
from protocols.engine.protocol import Protocol, Step, param
from protocols.engine.runner import RunEngine, RunState


class Counter(Protocol):
    """Records its step index; aborts or fails on request."""

    @dataclass
    class Params:
        steps: int = param(4, limits=(1, 10), help="steps")
        stop_at: int = param(-1, limits=(-1, 10), help="step that aborts the run")
        fail_at: int = param(-1, limits=(-1, 10), help="step that raises")

    def datasets(self):
        return [Stream("n", units="")]

    def plan(self):
        for i in range(self.p.steps):
            yield Step(f"count {i}", lambda i=i: self.count(i))

    def count(self, i):
        if i == self.p.stop_at:
            self._engine.abort()
            self.check()
        if i == self.p.fail_at:
            raise ValueError(f"bad count {i}")
        self.record("n", i)


def _run(tmp_path, **values) -> Run:
    proto = Counter.from_values(values)
    engine = RunEngine(proto, None, tmp_path / "c.h5", seed=3)
    proto._engine = engine
    engine.run()
    return open_run(tmp_path / "c.h5")


@pytest.mark.parametrize(("values", "status", "completed", "error"), [
    ({}, "completed", 4, ""),
    ({"stop_at": 2}, "aborted", 2, ""),
    ({"fail_at": 1}, "failed", 1, "ValueError: bad count 1"),
])
def test_status_steps_and_error_of_finished_runs(tmp_path, values, status, completed, error):
    run = _run(tmp_path, **values)
    assert (run.status, run.steps_completed, run.steps_total, run.error) == (status, completed, 4, error)
    assert run.read("n").tolist() == list(range(completed))
    assert run.ended is not None and run.started <= run.ended
    assert run.datasets["/entry/data/n"].units == ""


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from protocols.engine.datasets import Stream
    from protocols.engine.run_writer import RunHeader, RunWriter
    header = RunHeader(protocol="killed", parameters={"k": 1}, seed=8, started="t0", steps_total=5)
    w = RunWriter.create(sys.argv[1], header, [Stream("x", units="V")])
    for i in range(2):
        w.append("x", np.array([float(i)]))
        w.end_step(i, f"s{i}", "completed", start=i, end=i + 1, clock_start=i, clock_end=i + 1)
    w.append("x", np.array([99.0]))  # the third step is cut off by the kill
    w.flush()
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_killed_writer_leaves_a_file_read_as_interrupted_with_its_completed_steps(tmp_path):
    path = tmp_path / "killed.h5"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], capture_output=True, timeout=60)
    assert proc.returncode == -9
    run = open_run(path)
    assert (run.status, run.protocol, run.steps_completed, run.steps_total) == ("interrupted", "killed", 2, 5)
    assert run.ended is None and run.seed == 8
    assert run.read("x")[:2].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("reader", ["open_run", "read_record"])
def test_reading_a_killed_writers_file_leaves_it_closed_in_this_process(tmp_path, reader):
    """Nothing of the read waits for the garbage collector: a resume in the same process then
    opens the file read-write (CI once failed "already open for read-only": the failed plain
    open's exception held the reader's frames in a reference cycle)."""
    from analysis.run_record import read_record
    from protocols.engine.journal import Journal

    path = tmp_path / "killed.h5"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], capture_output=True, timeout=60)
    assert proc.returncode == -9
    gc.collect()
    gc.disable()
    try:
        assert {"open_run": open_run, "read_record": read_record}[reader](path)
        Journal.open_for_resume(path).close()
    finally:
        gc.enable()


def test_the_reader_needs_neither_the_instrument_stack_nor_the_engine(tmp_path):
    path = _run(tmp_path).path
    code = ("import sys; from analysis import open_run; r = open_run(sys.argv[1]); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('pyvisa', 'serial', 'instruments', 'protocols')]; "
            "assert not bad, bad; assert r.status == 'completed'")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_schema_module_imports_nothing_beyond_the_standard_library():
    """The writer and any viewer may import analysis.schema without h5py, numpy or the reader."""
    code = ("import sys; import analysis.schema; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('h5py', 'numpy', 'matplotlib', 'scipy', "
            "'instruments', 'protocols') or m == 'analysis.run_reader']; assert not bad, bad; "
            "from analysis import open_run; assert 'analysis.run_reader' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_a_file_that_reads_as_truncated_for_a_moment_is_opened_once_whole(tmp_path):
    """A live writer can leave the file shorter than its superblock says for a few ms: the
    reader tries again before calling it truncated, and a file that stays short still fails."""
    import threading

    whole = _run(tmp_path).path.read_bytes()
    short = tmp_path / "live.h5"
    short.write_bytes(whole[: len(whole) - 4096])
    restore = threading.Timer(0.05, lambda: short.write_bytes(whole))
    restore.start()
    try:
        assert open_run(short).status == "completed"
    finally:
        restore.join()
    short.write_bytes(whole[: len(whole) - 4096])
    with pytest.raises(RunFileError, match="truncated file"):
        open_run(short)


def test_files_that_are_not_runs_raise_run_file_error(tmp_path):
    import h5py

    with pytest.raises(RunFileError, match="no such file"):
        open_run(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(RunFileError, match="not a readable HDF5"):
        open_run(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = np.arange(3)
    with pytest.raises(RunFileError, match="not an rrambench run file"):
        open_run(tmp_path / "other.h5")


def test_run_states_are_the_engine_states():
    assert {"completed", "aborted", "failed", "interrupted", "running"} <= {s.value for s in RunState}
