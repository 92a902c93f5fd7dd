"""The HDF5 writer: layout, units, NeXus default, SWMR, resume truncation, schema round trip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from engine_helpers import PREAMBLE, Everything, Gated

from analysis import open_run, schema
from analysis.characterization_data import load_pulses, load_traces
from protocols.engine.appender import Layout
from protocols.engine.datasets import Link, PulseHistory, Stream, Traces
from protocols.engine.run_writer import RunHeader, RunWriter
from protocols.engine.runner import RunEngine, RunState


def _complete_run(tmp_path, steps=3, seed=5):
    path = tmp_path / "all.h5"
    engine = RunEngine(Everything.from_values({"steps": steps}), None, path, seed=seed,
                       header={"world_seed": 9, "config_path": "bench.toml", "title": "all kinds"})
    assert engine.run() == RunState.COMPLETED
    return path


def _all_datasets(h5):
    found = []
    h5.visititems(lambda name, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return found


def test_every_dataset_has_a_units_attribute(tmp_path):
    with h5py.File(_complete_run(tmp_path), "r") as h5:
        missing = [d.name for d in _all_datasets(h5) if "units" not in d.attrs]
    assert missing == []


def test_nexus_default_plot_resolves_to_a_signal_with_matching_axes(tmp_path):
    with h5py.File(_complete_run(tmp_path), "r") as h5:
        entry = h5[h5.attrs["default"]]
        assert entry.attrs["NX_class"] == "NXentry"
        data = entry[entry.attrs["default"]]
        assert data.attrs["NX_class"] == "NXdata"
        signal = data[data.attrs["signal"]]
        axes = list(data.attrs["axes"])
        assert len(axes) == signal.ndim
        for dim, axis in enumerate(axes):
            if axis != ".":
                assert data[axis].shape == (signal.shape[dim],)
                assert data.attrs[f"{axis}_indices"] == dim


def test_scope_traces_keep_raw_codes_and_the_preamble_as_attributes(tmp_path):
    path = _complete_run(tmp_path)
    with h5py.File(path, "r") as h5:
        ch1, ch2 = h5["/entry/instrument/scope/ch1"], h5["/entry/instrument/scope/ch2"]
        assert (ch1.dtype, ch2.dtype) == (np.int8, np.int16)
        for key, value in PREAMBLE.items():
            assert ch1.attrs[key] == value
    volts = open_run(path).trace_volts("ch1")
    np.testing.assert_allclose(volts[0], (np.arange(50) - 25) * 0.02 + 0.1)


def test_pulse_history_has_one_row_per_pulse_with_its_step(tmp_path):
    run = open_run(_complete_run(tmp_path, steps=3))
    step = run.read("/entry/pulses/step")
    assert step.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert run.datasets["/entry/pulses/amplitude"].units == "V"
    assert run.datasets["/entry/pulses/read"].units == "S"
    np.testing.assert_allclose(run.read("/entry/pulses/col"), np.repeat([0, 1, 2], 4))


def test_schema_round_trip_reader_returns_what_the_writer_wrote(tmp_path):
    path = tmp_path / "rt.h5"
    header = RunHeader(protocol="rt", parameters={"a": 1.5, "b": [1, 2], "c": "x", "d": True},
                       seed=2**62 + 3, started="2026-01-02T03:04:05.000000Z", steps_total=7,
                       simulated=True, simulated_parts=["decoder: a simulated array"], world_seed=4,
                       bench_config={"backend": "sim", "limits": {"x": 1.0}},
                       identities={"smu": "KEITHLEY,2450,1,1"}, settings={"resources": {"smu": "TCPIP0::x"}},
                       config_path="cfg.toml")
    specs = [Stream("g", units="S", shape=(2,), dtype="f4"), Traces("ch", points=4, dtype="i2")]
    g = np.array([[1e-6, 2e-6], [3e-6, 4e-6]], dtype=np.float32)
    writer = RunWriter.create(path, header, specs)
    writer.append("g", g)
    writer.append_trace("ch", np.array([1, 2, 3, 4], dtype=np.int16), PREAMBLE)
    writer.end_step(0, "first step", "completed", start=10.0, end=11.0, clock_start=0.0, clock_end=1e6)
    writer.finish("aborted", error="stopped by operator", ended="2026-01-02T03:05:00.000000Z")

    run = open_run(path)
    assert (run.protocol, run.status, run.error) == ("rt", "aborted", "stopped by operator")
    assert run.parameters == header.parameters
    assert (run.seed, run.world_seed, run.simulated) == (header.seed, 4, True)
    assert run.simulated_parts == ["decoder: a simulated array"]
    assert (run.started, run.ended) == (header.started, "2026-01-02T03:05:00.000000Z")
    assert (run.steps_completed, run.steps_total) == (1, 7)
    assert run.bench_config == header.bench_config
    assert run.instruments == header.identities and run.settings == header.settings
    assert run.schema_version == schema.SCHEMA_VERSION == "1.3"
    entry = run.journal[0]
    assert (entry.index, entry.name, entry.status) == (0, "first step", "completed")
    assert (entry.start, entry.end, entry.clock_start, entry.clock_end) == (10.0, 11.0, 0.0, 1e6)
    np.testing.assert_array_equal(run.read("g"), g)
    assert run.datasets["/entry/data/g"] == type(run.datasets["/entry/data/g"])(
        "/entry/data/g", (2, 2), "float32", "S")
    assert run.read("/entry/instrument/scope/ch").tolist() == [[1, 2, 3, 4]]
    doc = run.to_json()
    assert set(doc) == {"status", "protocol", "steps_completed", "steps_total", "parameters",
                        "started", "ended", "error", "datasets", "outcome", "snapshot",
                        "protocol_source", "sample"}
    assert json.loads(json.dumps(doc)) == doc


def test_runs_of_one_process_each_carry_their_own_header_whatever_the_cached_image(tmp_path):
    """The attributes a bench session repeats are in a cached file image: alternating
    protocols, benches and settings, each run file still says what its own header said."""
    specs = [Stream("g", units="S")]
    headers = [RunHeader(protocol=p, parameters={"k": i}, seed=i, started=f"t{i}", steps_total=i + 1,
                         simulated=sim, bench_config={"backend": b}, settings={"v": i % 2}, title=f"title {p}",
                         config_path=f"{b}.toml", simulated_parts=[f"part {p}"] if sim else [],
                         protocol_source={"module": p})
               for i, (p, b, sim) in enumerate([("a", "sim", True), ("b", "sim", True), ("a", "hw", False),
                                                ("a", "sim", True), ("b", "hw", False), ("a", "sim", True)])]
    for i, header in enumerate(headers):
        RunWriter.create(tmp_path / f"r{i}.h5", header, specs).finish("completed", ended="e")
    for i, header in enumerate(headers):
        run = open_run(tmp_path / f"r{i}.h5")
        assert (run.protocol, run.parameters, run.seed, run.started, run.steps_total) == (
            header.protocol, header.parameters, header.seed, header.started, header.steps_total)
        assert (run.simulated, run.simulated_parts, run.bench_config, run.settings) == (
            header.simulated, header.simulated_parts, header.bench_config, header.settings)
        assert run.protocol_source == header.protocol_source
        with h5py.File(tmp_path / f"r{i}.h5", "r") as h5:
            assert (h5["entry"].attrs["config_path"], h5["entry"].attrs["title"]) == (header.config_path, header.title)
            assert h5.attrs["file_name"] == f"r{i}.h5"


def test_writer_and_reader_share_the_schema_module(tmp_path):
    """Every path, attribute and column of analysis.schema is in a written file, nothing else is,
    and the reader finds them: one schema for both sides."""
    path = _complete_run(tmp_path, steps=2)
    with h5py.File(path, "r") as h5:
        for group in (schema.ENTRY, schema.DATA, schema.INSTRUMENT, schema.SCOPE, schema.PULSES, schema.JOURNAL):
            assert isinstance(h5[group], h5py.Group), group
        entry = h5[schema.ENTRY].attrs
        assert set(entry) - {"NX_class", "default"} == set(schema.RUN_ATTRIBUTES)
        assert entry[schema.RunAttr.SCHEMA_VERSION] == schema.SCHEMA_VERSION
        assert h5[schema.DATA].attrs[schema.SIGNAL] == "g" and list(h5[schema.DATA].attrs[schema.AXES])
        pulses = h5[schema.PULSES]
        assert list(pulses.attrs[schema.COLUMNS]) == [c for c, *_ in schema.PULSE_COLUMNS]
        assert {(c, pulses[c].dtype.str[1:], pulses[c].attrs[schema.UNITS]) for c in pulses} == \
            {(c, dtype, unit) for c, dtype, unit, _ in schema.PULSE_COLUMNS}
        journal = h5[schema.JOURNAL]
        assert set(journal) == {c for c, *_ in schema.JOURNAL_COLUMNS} | {schema.ROWS}
        assert all(journal[c].dtype.str[1:] == dtype for c, dtype, *_ in schema.JOURNAL_COLUMNS)
        assert len(journal.attrs[schema.STREAMS]) == journal[schema.ROWS].shape[1]
        trace = h5[f"{schema.SCOPE}/ch1"].attrs
        assert trace[schema.CHANNEL] == "CHAN1" and trace[schema.PREAMBLE_SET] == 1 and schema.VOLTS in trace
        assert all(trace[f"{key}_units"] == unit for key, unit in schema.PREAMBLE_FIELDS)
        assert all(schema.UNITS in ds.attrs and schema.LONG_NAME in ds.attrs
                   for ds in _all_datasets(h5) if not ds.name.startswith(schema.SCOPE))
    run = open_run(path)
    assert (run.schema_version, run.status) == (schema.SCHEMA_VERSION, schema.COMPLETED)
    assert [e.status for e in run.journal] == [schema.COMPLETED] * 2
    assert len(load_pulses(run)) == 8 and load_pulses(run).step.tolist() == [0] * 4 + [1] * 4
    assert [s.name for s in load_traces(run)] == ["ch1", "ch2"]


def test_schema_document_names_every_attribute_and_column():
    """docs/hdf5-schema.md stays true to analysis.schema."""
    doc = (Path(__file__).parents[2] / "docs" / "hdf5-schema.md").read_text()
    assert f"version {schema.SCHEMA_VERSION}" in doc and "analysis/schema.py" in doc
    names = [*schema.RUN_ATTRIBUTES, *(n for n, *_ in schema.RUN_FIELDS),
             *(c for c, *_ in schema.PULSE_COLUMNS), *(c for c, *_ in schema.JOURNAL_COLUMNS),
             *(k for k, _ in schema.PREAMBLE_FIELDS), schema.CHANNEL, schema.PREAMBLE_SET, schema.VOLTS,
             schema.STREAMS, schema.ROWS, schema.UNITS, schema.LONG_NAME, schema.SIGNAL, schema.AXES,
             schema.INTERPRETATION, schema.COORDINATES, schema.SETTINGS, schema.SNAPSHOT_TIME,
             *schema.INSTRUMENT_NAMES, schema.RESUME_SNAPSHOT.format("<n>")]
    assert [n for n in names if n not in doc] == []
    for path in (schema.DATA, schema.SCOPE, schema.PULSES, schema.JOURNAL, schema.PLOT, schema.OUTCOME, schema.SAMPLE,
                 *(f"{schema.ENTRY}/{n}" for n, *_ in schema.RUN_FIELDS)):
        assert f"`{path}" in doc, path


def test_a_live_run_is_readable_by_an_swmr_reader_while_it_writes(tmp_path):
    proto = Gated.from_values({"steps": 3})
    engine = RunEngine(proto, None, tmp_path / "live.h5", seed=1)
    import threading

    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    proto.gates[0].set()
    assert proto.entered[1].wait(10)
    live = open_run(tmp_path / "live.h5")
    assert live.status == "running", "the writer is alive in this process"
    assert live.steps_completed == 1 and live.read("value").shape == (1,)
    proto.open_all()
    thread.join(10)
    assert open_run(tmp_path / "live.h5").status == "completed"


def test_a_run_file_appears_under_its_name_only_once_in_swmr_mode(tmp_path, monkeypatch):
    """A viewer that opens each new file (``info --follow``, the GUI's browser) cannot catch a
    file mid-creation and hold the lock the writer's read-write open needs (CI once saw a run
    die "unable to lock file" that way): the file is built under a hidden name."""
    from protocols.engine import run_writer

    path, seen = tmp_path / "r.h5", []
    write_header = run_writer._write_header

    def watched(h5, where, header, run):
        seen.append((path.exists(), Path(h5.filename).name))
        write_header(h5, where, header, run)

    monkeypatch.setattr(run_writer, "_write_header", watched)
    header = RunHeader(protocol="hidden", parameters={}, seed=1, started="t", steps_total=1)
    writer = RunWriter.create(path, header, [Stream("x", units="V")])
    (exists, building), = seen
    assert not exists and building.startswith(".r.h5.") and building.endswith(".creating")
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"], "the hidden name is gone"
    with h5py.File(path, "r", swmr=True) as live:  # what a viewer opens: already an SWMR file
        assert live.attrs["file_name"] == "r.h5"
    writer.finish("completed", ended="t")
    with pytest.raises(FileExistsError):
        RunWriter.create(path, header, [Stream("x", units="V")])
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"], "a refused create leaves nothing"


def test_resume_drops_rows_of_the_unfinished_step(tmp_path):
    path = tmp_path / "cut.h5"
    header = RunHeader(protocol="cut", parameters={}, seed=1, started="t", steps_total=3)
    writer = RunWriter.create(path, header, [Stream("x", units="V")])
    writer.append("x", np.array([1.0, 2.0]))
    writer.end_step(0, "s0", "completed", start=0, end=1, clock_start=0, clock_end=1)
    writer.append("x", np.array([3.0]))  # step 1 never journalled: the writer "dies" here
    writer.close()
    reopened = RunWriter.reopen(path)
    assert reopened.journal.completed == 1
    assert reopened.rows() == {"/entry/data/x": 2}
    reopened.append("x", np.array([30.0]))
    reopened.end_step(1, "s1", "completed", start=1, end=2, clock_start=1, clock_end=2)
    reopened.finish("completed", ended="t2")
    run = open_run(path)
    assert run.read("x").tolist() == [1.0, 2.0, 30.0]
    assert run.resumes == [{"previous_status": "running", "steps_completed": 1}]


def test_writer_refuses_to_overwrite_and_checks_row_shapes_and_preambles(tmp_path):
    path = tmp_path / "w.h5"
    header = RunHeader(protocol="w", parameters={}, seed=1, started="t", steps_total=1)
    writer = RunWriter.create(path, header, [Stream("x", units="V", shape=(3,)), Traces("ch", points=2)])
    with pytest.raises(FileExistsError):
        RunWriter.create(path, header, [Stream("x", units="V")])
    with pytest.raises(ValueError, match="do not fit"):
        writer.append("x", np.zeros((1, 4)))
    with pytest.raises(KeyError):
        writer.append("nope", np.zeros((1, 3)))
    writer.append_trace("ch", np.array([1, 2], dtype=np.int8), PREAMBLE)
    with pytest.raises(ValueError, match="preamble changed"):
        writer.append_trace("ch", np.array([1, 2], dtype=np.int8), {**PREAMBLE, "y_increment": 1.0})
    writer.finish("failed", error="test", ended="t")


@pytest.mark.parametrize(("specs", "message"), [
    ([Stream("a", units="V"), Stream("a", units="V")], "declared twice"),
    ([Stream("a", units="V", axes=("t",))], "undeclared"),
    ([Stream("a", units="V", shape=(2,), axes=(".",))], "axes needs 2"),
    ([Stream("a", units="V"), Link("/entry/alias/a", "/entry/data/b")], "names no declared"),
    ([Stream("a", units="V"), Stream("b", units="V"), Link("/entry/data/b", "/entry/data/a")], "already used"),
    ([Stream("a", units="V"), Link("/entry/x/a", "/entry/data/a"), Link("/entry/x/a", "/entry/data/a")],
     "another link"),
])
def test_bad_dataset_declarations_are_refused_and_leave_no_file(tmp_path, specs, message):
    header = RunHeader(protocol="w", parameters={}, seed=1, started="t", steps_total=1)
    with pytest.raises(ValueError, match=message):
        RunWriter.create(tmp_path / "bad.h5", header, specs)
    assert not (tmp_path / "bad.h5").exists()


def test_h5dump_reads_the_header_and_data_of_a_run_file(tmp_path):
    """The HDF5 1.10 tools (Debian 12's h5dump) read a whole run file: the format is 1.10's.
    Skipped without h5dump, except in CI (env CI set), where it is installed and its absence fails."""
    if shutil.which("h5dump") is None:
        if os.environ.get("CI"):
            pytest.fail("h5dump is missing in CI (Debian: apt-get install hdf5-tools)")
        pytest.skip("h5dump not installed (Debian: apt-get install hdf5-tools)")
    path = _complete_run(tmp_path)
    result = subprocess.run(["h5dump", "-H", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'DATASET "g"' in result.stdout and 'ATTRIBUTE "units"' in result.stdout
    whole = subprocess.run(["h5dump", str(path)], capture_output=True, text=True, timeout=60)
    assert whole.returncode == 0, whole.stderr


def test_rows_appended_in_any_batch_sizes_arrive_in_order_across_chunk_boundaries(tmp_path):
    path = tmp_path / "chunks.h5"
    header = RunHeader(protocol="c", parameters={}, seed=1, started="t", steps_total=1)
    writer = RunWriter.create(path, header, [Stream("x", units="V", shape=(2,), chunk_rows=4)])
    rng = np.random.default_rng(0)
    expected, n = [], 0
    for size in [1, 3, 4, 9, 0, 2, 13, 1]:
        rows = np.arange(n, n + size, dtype=float)[:, None] * [1, -1]
        writer.append("x", rows)
        expected.append(rows)
        n += size
        if rng.random() < 0.5:
            writer.flush()
    assert writer.rows() == {"/entry/data/x": n}
    writer.finish("completed", ended="t")
    np.testing.assert_array_equal(open_run(path).read("x"), np.concatenate(expected))


def test_declared_links_resolve_to_the_growing_data_and_are_indexed_once(tmp_path):
    """A Link gives a recorded object a second path (NeXus-style soft link), created before
    SWMR: rows appended later read through it with the target's units, a live SWMR reader
    sees them, and the reader's dataset index lists the data once, at its real path."""
    path = tmp_path / "links.h5"
    header = RunHeader(protocol="l", parameters={}, seed=1, started="t", steps_total=1)
    specs = [Stream("final", units="V", shape=(2,)), Traces("ch", points=2, dtype="i1"),
             Link("/entry/samples/final", "/entry/data/final"),
             Link("/entry/waveforms/ch", "/entry/instrument/scope/ch")]
    writer = RunWriter.create(path, header, specs)
    writer.append("final", np.array([[1.0, 2.0], [3.0, 4.0]]))
    writer.append_trace("ch", np.array([5, 6], dtype=np.int8), PREAMBLE)
    writer.flush()
    with h5py.File(path, "r", swmr=True) as live:
        assert live["/entry/samples/final"].shape == (2, 2)
    assert writer.rows() == {"/entry/data/final": 2, "/entry/instrument/scope/ch": 1}
    writer.finish("completed", ended="t")
    run = open_run(path)
    np.testing.assert_array_equal(run.read("/entry/samples/final"), [[1.0, 2.0], [3.0, 4.0]])
    assert run.attrs("/entry/samples/final")["units"] == "V"
    assert run.read("/entry/waveforms/ch").tolist() == [[5, 6]]
    listed = [p for p in run.datasets if not p.startswith("/entry/journal/")]
    assert sorted(listed) == ["/entry/data/final", "/entry/instrument/scope/ch"]
    with h5py.File(path, "r") as h5:
        assert h5["/entry/samples"].attrs["NX_class"] == "NXcollection"
        assert h5["/entry/samples"].get("final", getlink=True).path == "/entry/data/final"


def _killed_trace_run(path: Path) -> None:
    """A writer process that journals one step of 5 traces, appends 3 more and dies (os._exit)."""
    code = f"""
import os, numpy as np
from engine_helpers import PREAMBLE
from protocols.engine.datasets import Traces
from protocols.engine.run_writer import RunHeader, RunWriter
header = RunHeader(protocol="kill", parameters={{}}, seed=1, started="t", steps_total=3)
w = RunWriter.create({str(path)!r}, header, [Traces("ch", points=6, dtype="i2", chunk_rows=4)])
assert w._traces["ch"]._pending is not None, "trace rows take the direct path"
for i in range(5):
    w.append_trace("ch", np.full(6, i, dtype="i2"), PREAMBLE)
w.end_step(0, "s0", "completed", start=0, end=1, clock_start=0, clock_end=1)
for i in range(5, 8):
    w.append_trace("ch", np.full(6, i, dtype="i2"), PREAMBLE)
w.flush()
os._exit(3)
"""
    import os
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 3


def test_traces_written_past_hdf5_survive_a_killed_writer_and_resume_mid_chunk(tmp_path):
    """Scope traces go into the file with pwritev (the appender's direct path): a killed writer's
    file is repaired and cut back to its last completed step (mid-chunk), and the resumed run's
    traces, also written directly, land after it."""
    path = tmp_path / "kill.h5"
    _killed_trace_run(path)
    with h5py.File(path, "r", swmr=True) as h5:
        assert h5[f"{schema.SCOPE}/ch"][:, 0].tolist() == list(range(8)), "every flushed trace is in the file"
    reopened = RunWriter.reopen(path)
    assert reopened.rows()[f"{schema.SCOPE}/ch"] == 5
    assert reopened._traces["ch"]._pending is not None, "the resumed run writes directly too"
    for i in range(50, 57):
        reopened.append_trace("ch", np.full(6, i, dtype="i2"), PREAMBLE)
    reopened.end_step(1, "s1", "completed", start=1, end=2, clock_start=1, clock_end=2)
    reopened.finish("completed", ended="t2")
    with h5py.File(path, "r") as h5:
        ds = h5[f"{schema.SCOPE}/ch"]
        assert ds[:].tolist() == [[i] * 6 for i in [*range(5), *range(50, 57)]]
        assert ds.id.get_create_plist().get_alloc_time() == h5py.h5d.ALLOC_TIME_EARLY


def test_a_run_closed_mid_step_resumes_with_its_traces_on_the_direct_path(tmp_path):
    """A run file closed cleanly but unfinished (no repair needed) reopens with the chunk cache
    off, so its traces take the direct path again, after the completed step's rows."""
    path = tmp_path / "closed.h5"
    header = RunHeader(protocol="closed", parameters={}, seed=1, started="t", steps_total=2)
    writer = RunWriter.create(path, header, [Traces("ch", points=4, dtype="i2", chunk_rows=3)])
    for i in range(4):
        writer.append_trace("ch", np.full(4, i, dtype="i2"), PREAMBLE)
    writer.end_step(0, "s0", "completed", start=0, end=1, clock_start=0, clock_end=1)
    writer.append_trace("ch", np.full(4, 9, dtype="i2"), PREAMBLE)  # the unfinished step's trace
    writer.close()
    reopened = RunWriter.reopen(path)
    assert reopened._traces["ch"]._pending is not None
    for i in (40, 41):
        reopened.append_trace("ch", np.full(4, i, dtype="i2"), PREAMBLE)
    reopened.end_step(1, "s1", "completed", start=1, end=2, clock_start=1, clock_end=2)
    reopened.finish("completed", ended="t2")
    with h5py.File(path, "r") as h5:
        assert h5[f"{schema.SCOPE}/ch"][:, 0].tolist() == [0, 1, 2, 3, 40, 41]


def test_the_writers_appenders_are_told_the_chunk_cache_of_their_file(tmp_path):
    """The writer asks its file once for the chunk cache and tells every appender: what each
    dataset's own access properties say (off: the traces take the direct path), on a
    created file and on a reopened one."""
    path = tmp_path / "cache.h5"
    header = RunHeader(protocol="cache", parameters={}, seed=1, started="t", steps_total=2)
    writer = RunWriter.create(path, header, [Stream("x", units="V"), Traces("ch", points=4, dtype="i2"),
                                             PulseHistory()])

    def told_right(w: RunWriter) -> None:
        for app in [*w._streams.values(), *w._pulses.values()]:
            cached = app.id.get_access_plist().get_chunk_cache()[1] > 0
            assert app._aligned == cached and not cached
        assert w._traces["ch"]._pending is not None

    told_right(writer)
    writer.end_step(0, "s0", "completed", start=0, end=1, clock_start=0, clock_end=1)
    writer.close()
    reopened = RunWriter.reopen(path)
    told_right(reopened)
    reopened.close()


def test_a_created_writer_takes_each_layout_read_once_from_the_skeleton(tmp_path):
    """A created writer's appenders and journal take the layouts read from the skeleton
    (not from each run file): they are those the run file's own datasets have, for every
    kind of growing dataset, in the first run file of a declaration and in the next."""
    header = RunHeader(protocol="layout", parameters={}, seed=1, started="t", steps_total=2)
    specs = [Stream("x", units="V", shape=(3,)), Stream("k", units="", dtype="i4"),
             Traces("ch", points=16, dtype="i1"), PulseHistory()]
    for k in range(2):
        writer = RunWriter.create(tmp_path / f"layout-{k}.h5", header, specs)
        appenders = [*writer._streams.values(), *writer._pulses.values()]
        assert len(appenders) == 3 + len(schema.PULSE_COLUMNS)
        for app in appenders:
            assert app.layout == Layout.of(app.id)
        assert writer._traces["ch"].layout.direct and not writer._streams["/entry/data/x"].layout.direct
        journal = writer.journal
        assert journal._dtypes == {**{c: ds.dtype for c, ds in journal._cols.items()},
                                   schema.ROWS: journal._rows_ds.dtype}
        writer.end_step(0, "s0", "completed", start=0, end=1, clock_start=0, clock_end=1)
        writer.close()
        run = open_run(tmp_path / f"layout-{k}.h5")
        assert [e.status for e in run.journal] == ["completed"]


def test_a_published_run_file_has_its_header_before_the_first_flush(tmp_path):
    """The run's own attributes, sample and instrument settings are written in SWMR mode
    before the file gets its name: a viewer opening it at once, or a writer killed before
    its first step, still finds them on disk."""
    path = tmp_path / "header.h5"
    header = RunHeader(protocol="early", parameters={"n": 3}, seed=4, started="t", steps_total=3,
                       sample={"chip": "c7"}, instrument_snapshot={"smu": {"nplc": (1.0, "")}})
    writer = RunWriter.create(path, header, [Stream("x", units="V")])
    # Another process: in this one HDF5 would share the writer's open file and its cache.
    code = ("import h5py, json, sys; f = h5py.File(sys.argv[1], 'r', swmr=True); e = f['/entry']; "
            "print(json.dumps([int(e.attrs['steps_total']), e.attrs['parameters'], f.attrs['file_name'], "
            "f['/entry/sample/chip'][()].decode(), 'nplc' in f['/entry/instrument/smu'].attrs]))")
    seen = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    writer.close()
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout) == [3, '{"n": 3}', "header.h5", "c7", True]
