"""The HDF5 run-file writer (schema: ``docs/hdf5-schema.md``, names from :mod:`analysis.schema`).

One file per run, NeXus-flavoured. Every object is created first, then the file
switches to SWMR mode, after which the writer only resizes, appends and flushes:
a viewer can follow a live run and a killed writer leaves a readable file whose
status still says "running" (the reader reports it as interrupted).

The step journal and the resume logic live in :mod:`protocols.engine.journal`.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from time import monotonic
from types import MappingProxyType
from typing import Any

import h5py
import numpy as np

from analysis.run_reader import run_state
from analysis.schema import (
    AXES,
    CATALOGUE_KEYS,
    CHANNEL,
    COLUMNS,
    COORDINATES,
    DATA,
    ENTRY,
    ERROR_BYTES,
    INSTRUMENT,
    INTERPRETATION,
    JOURNAL,
    JOURNAL_COLUMNS,
    LONG_NAME,
    OUTCOME,
    OUTCOME_BYTES,
    PLOT,
    PREAMBLE_FIELDS,
    PREAMBLE_SET,
    PULSE_COLUMNS,
    PULSES,
    RESUME_SNAPSHOT,
    ROWS,
    RUN_ATTRIBUTES,
    RUN_FIELDS,
    RUNNING,
    SAMPLE,
    SCHEMA_VERSION,
    SCOPE,
    SETTINGS,
    SIGNAL,
    SNAPSHOT_TIME,
    UNITS,
    VOLTS,
    RunAttr,
    RunField,
    instrument_path,
)
from instruments import __version__
from protocols.engine.appender import Appender, Layout, direct_rows_dcpl
from protocols.engine.datasets import (
    Constant,
    Link,
    Plot,
    PulseHistory,
    Spec,
    Stream,
    Traces,
    check_specs,
)
from protocols.engine.h5io import (
    LIBVER,
    RunFileError,
    new_attrs,
    open_dataset_id,
    open_group,
    open_h5,
    overwrite_attrs,
)
from protocols.engine.journal import Journal

LIVE_INTERVAL = 1.0  # s, longest time appended rows stay invisible to SWMR readers
_PREAMBLE_KEYS = tuple(key for key, _ in PREAMBLE_FIELDS)

__all__ = ["RunFileError", "RunHeader", "RunWriter", "open_h5", "LIBVER"]

log = logging.getLogger("rrambench.runfile")


@dataclass
class RunHeader:
    """What a run file says about its run, written at creation.

    ``started``: ISO 8601 UTC time. ``seed``: the run seed (protocol random streams
    use ``SeedSequence([seed, step_index])``). ``world_seed``: seed of the simulated
    bench's world (None on hardware and when no bench was opened). ``simulated``: the
    data come from simulation (the simulated bench, or a simulated-only protocol);
    ``simulated_parts``: what the protocol simulates whatever the bench
    (``Protocol.simulated_parts``). ``bench_config``, ``identities``, ``settings``:
    JSON-serialisable snapshots of the bench.
    """

    protocol: str
    parameters: dict[str, Any]
    seed: int
    started: str
    steps_total: int
    simulated: bool = False
    simulated_parts: list[str] = field(default_factory=list)
    world_seed: int | None = None
    bench_config: dict[str, Any] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    #: Each instrument's settings when the run started (``Bench.instrument_settings``): by
    #: instrument name, setting -> (value, unit); written to ``/entry/instrument/<name>``.
    instrument_snapshot: dict[str, Mapping[str, tuple[Any, str]]] = field(default_factory=dict)
    config_path: str = ""
    title: str = ""
    #: Where the protocol came from (``registry.protocol_source``): run attribute ``protocol_source``.
    protocol_source: dict[str, str] = field(default_factory=dict)
    #: The sample measured (``[sample]`` and ``--sample``: chip, wafer, die, operator, notes): ``/entry/sample``.
    sample: dict[str, str] = field(default_factory=dict)


class RunWriter:
    """Appends a run's data to its HDF5 file; owns the file while the run lasts.

    Not thread-safe: the engine calls it from the run's thread only.
    """

    def __init__(self, path: Path, h5: h5py.File, journal: Journal, *, fresh: bool = False,
                 layouts: Mapping[str, Layout] | None = None) -> None:
        """``fresh``: the file was just created (no rows, no preamble: nothing to read back) by
        :meth:`create`, which gives the ``layouts`` of its growing datasets by HDF5 path (read
        once from its skeleton) and opened it with :func:`_writer_fapl`."""
        self.path = path
        self._h5 = h5
        self.journal = journal
        self._streams: dict[str, Appender] = {}  # by HDF5 path, /entry/data and scope traces
        self._traces: dict[str, Appender] = {}  # the scope traces of _streams, by name
        self._pulses: dict[str, Appender] = {}  # by column
        self._preambles: dict[str, tuple[float, ...]] = {}  # by trace name
        self._preamble_seen: dict[str, dict[str, float]] = {}  # the last preamble mapping accepted, by trace name
        self._last_flush = time.monotonic()
        self._index_streams(fresh, layouts or {})

    # -- creation -----------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, header: RunHeader, specs: Sequence[Spec], *,
               signal: str | None = None) -> RunWriter:
        """Create the file, every group and dataset, in SWMR mode.

        Refuses to overwrite an existing file. ``signal``: the stream NeXus plots by
        default (the first :class:`Stream` when None).

        The file is built under a hidden name and linked to ``path`` only once it is in
        SWMR mode: a viewer that polls the folder (``info --follow``, the GUI's browser)
        and opens a file mid-creation would hold the lock the writer's read-write open
        needs and end the run before it began. A writer killed meanwhile leaves only the
        hidden file, never a half-made run file.
        """
        path = Path(path)
        check_specs(specs)
        streams = [s for s in specs if isinstance(s, Stream)]
        if signal is None and streams:
            signal = streams[0].name
        if signal is not None and signal not in {s.name for s in specs if isinstance(s, (Stream, Constant))}:
            raise ValueError(f"signal {signal!r} names no declared stream")
        if path.exists():
            raise FileExistsError(f"{path} exists; run files are never overwritten")
        session, run = _header_attrs(header)
        image, layouts = _skeleton_image(tuple(s for s in specs if not isinstance(s, Constant)), signal, session)
        building = path.with_name(f".{path.name}.{os.getpid()}.creating")
        out = os.open(building, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        h5, published = None, False
        try:
            try:  # unbuffered: the image is written in one call
                _write_all(out, image)
            finally:
                os.close(out)
            # In SWMR write mode from the open: no reader can open the file under its hidden
            # name, so this run's own objects (header, sample, constants, snapshot) are made
            # in SWMR mode safely, and the switch later, which evicts every object from
            # HDF5's cache to read it again, is not needed (~0.1 ms).
            h5 = h5py.File(h5py.h5f.open(os.fsencode(building), h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE,
                                         fapl=_writer_fapl()))
            _write_header(h5, path, header, run)
            _write_sample(h5, header.sample)
            _create_constants(h5, specs)
            _write_snapshot(h5, header.instrument_snapshot, header.started)
            h5.flush()  # what this run added is on disk before anyone can open the file, or be left with it
            _publish(building, path)
            published = True
            journal = Journal.attach(h5, [_stream_path(s) for s in specs if _is_growing(s)],
                                     {name: layouts[f"{JOURNAL}/{name}"].dtype for name in _JOURNAL_DATASETS})
            return cls(path, h5, journal, fresh=True, layouts=layouts)
        except BaseException:
            if h5 is not None:
                h5.close()
            building.unlink(missing_ok=True)
            if published:
                path.unlink(missing_ok=True)
            raise

    @classmethod
    def reopen(cls, path: str | Path, *,
               instrument_snapshot: Mapping[str, Mapping[str, tuple[Any, str]]] | None = None,
               protocol_sha256: str = "") -> RunWriter:
        """Reopen an unfinished run for ``--resume``: drop rows of the unfinished step.

        Every stream is cut back to its length at the last completed step, the
        journal to its completed prefix; the status goes back to "running".
        ``instrument_snapshot``: the instruments' settings now, recorded as
        ``/entry/instrument/<name>/resume_<n>`` (n: this resume's number).
        ``protocol_sha256``: the protocol's source hash now, kept in this resume's entry of
        ``resumes`` (a ``--force`` resume of a changed source shows there).
        """
        path = Path(path)
        h5 = Journal.open_for_resume(path)
        try:
            journal = Journal.attach(h5)
            journal.truncate_to_completed()
            entry = h5[ENTRY]
            history = json.loads(entry.attrs.get(RunAttr.RESUMES, "[]"))
            history.append({"previous_status": run_state(h5)[0], "steps_completed": journal.completed,
                            **({"protocol_sha256": protocol_sha256} if protocol_sha256 else {})})
            entry.attrs[RunAttr.RESUMES] = json.dumps(history)
            if RunField.STATUS not in entry:  # schema 1.0: the run state moves to its datasets
                for name, *_ in RUN_FIELDS:
                    entry.attrs.pop(name, None)
                _create_run_state(entry)
                entry.attrs[RunAttr.SCHEMA_VERSION] = "1.1"  # what moved; 1.2's source and sample it lacks
            _write_run_state(h5, RUNNING, error="", ended="")
            _create_outcome(h5)
            _write_snapshot(h5, instrument_snapshot or {}, _utc_now(), RESUME_SNAPSHOT.format(len(history)))
            entry.attrs[RunAttr.WRITER_PID] = os.getpid()
            entry.attrs[RunAttr.WRITER_HOST] = socket.gethostname()
            h5.swmr_mode = True
        except BaseException:
            h5.close()
            raise
        return cls(path, h5, journal)

    # -- appending ------------------------------------------------------------------
    def append(self, name: str, rows: np.ndarray) -> None:
        """Append ``rows`` (shape ``(n, *stream.shape)``) to stream ``name``."""
        stream = self._streams.get(f"{DATA}/{name}")
        if stream is None:
            raise KeyError(f"no stream {name!r} declared")
        rows = np.asarray(rows)
        if rows.shape[1:] != stream.row_shape:
            raise ValueError(f"{name}: rows of shape {rows.shape[1:]} do not fit stream rows {stream.row_shape}")
        stream.append(rows)
        self._keep_live()

    def append_trace(self, name: str, codes: np.ndarray, preamble: Mapping[str, float]) -> None:
        """Append one acquisition of raw codes; the first sets the preamble attributes.

        ``codes`` is kept by reference until written (the trace stream's appender takes
        the direct path, :mod:`protocols.engine.appender`): the caller must not change it
        in place before the next flush.
        """
        stream = self._traces.get(name)
        if stream is None:
            raise KeyError(f"no trace stream {name!r} declared")
        # The preamble mapping equal to the last one accepted needs no other check (one
        # comparison in C): picking and converting its values on every acquisition cost
        # as much as copying the trace.
        if preamble != self._preamble_seen.get(name):
            self._check_preamble(name, stream, preamble)
        if type(codes) is not np.ndarray or codes.shape != stream.row_shape:
            codes = np.asarray(codes)
            if codes.shape != stream.row_shape:
                raise ValueError(f"trace {name}: expected {stream.row_shape[0]} points, got shape {codes.shape}")
        stream.append_row(codes)
        if monotonic() - self._last_flush > LIVE_INTERVAL:  # _keep_live, inline: once per acquisition
            self.flush()

    def _check_preamble(self, name: str, stream: Appender, preamble: Mapping[str, float]) -> None:
        """The first preamble of a trace stream sets its attributes; later ones must equal it."""
        known = self._preambles.get(name)
        # Compared as given first (numpy and Python numbers compare by value).
        if known is None or tuple(map(preamble.__getitem__, _PREAMBLE_KEYS)) != known:
            values = tuple(float(preamble[key]) for key in _PREAMBLE_KEYS)
            if known is None:  # in place: the attributes exist (NaN, "not set")
                overwrite_attrs(stream.id, {**dict(zip(_PREAMBLE_KEYS, values, strict=True)),
                                                 PREAMBLE_SET: np.int8(1)})
                self._preambles[name] = values
            elif known != values:
                raise ValueError(f"trace {name}: preamble changed within the stream; declare a new Traces stream")
        self._preamble_seen[name] = dict(preamble)

    def append_pulses(self, step: int, columns: Mapping[str, Any]) -> None:
        """Append a batch of pulses: every pulse column except ``step`` (arrays broadcast)."""
        if not self._pulses:
            raise KeyError("no PulseHistory declared")
        names = [c for c, *_ in PULSE_COLUMNS if c != "step"]
        missing = sorted(set(names) - set(columns))
        extra = sorted(set(columns) - set(names))
        if missing or extra:
            raise ValueError(f"pulse columns: missing {missing}, unknown {extra}")
        arrays = np.broadcast_arrays(*(np.asarray(columns[c]) for c in names))
        k = arrays[0].size
        for column, values in zip(["step", *names], [np.full(k, step), *arrays], strict=True):
            self._pulses[column].append(values.ravel())
        self._keep_live()

    def read(self, name: str) -> np.ndarray:
        """Every row of stream ``name`` recorded so far in this run, earlier sessions' included.

        Rows of a step a resume dropped are not there. Read through the writer's own
        handle (the file is in SWMR write mode); the step's buffered rows are written
        out first. Returns a new array of shape ``(rows, *stream.shape)``.
        """
        stream = self._streams.get(f"{DATA}/{name}")
        if stream is None:
            raise KeyError(f"no stream {name!r} declared")
        stream.write_out()
        return stream.dataset[: stream.rows]

    def flush(self) -> None:
        """Write buffered rows; make everything visible to SWMR readers."""
        self._write_out()
        self._h5.flush()
        self._last_flush = time.monotonic()

    def end_step(self, index: int, name: str, status: str, *, start: float, end: float,
                 clock_start: float, clock_end: float) -> None:
        """Flush the step's data, then journal the step and flush again."""
        self.flush()
        self.journal.append(index, name, status, start=start, end=end,
                            clock_start=clock_start, clock_end=clock_end, rows=self.rows())
        self._h5.flush()

    def rows(self) -> dict[str, int]:
        """Current row count of every growing object (streams, traces, pulse table)."""
        counts = {path: a.rows for path, a in self._streams.items()}
        if self._pulses:
            counts[PULSES] = self._pulses["step"].rows
        return counts

    # -- ending -----------------------------------------------------------------------
    def write_outcome(self, outcome: Mapping[str, tuple[Any, str]]) -> None:
        """Record the run's key metrics (``Protocol.outcome``: name -> (value, unit)) in
        ``/entry/outcome`` as ``{name: {"value": v, "units": u}}`` JSON; in place, so
        also in SWMR mode. An outcome too long for the dataset is logged and left out."""
        text = json.dumps({k: {"value": _json_value(v), "units": u} for k, (v, u) in outcome.items()})
        data = text.encode("utf-8")
        if len(data) > OUTCOME_BYTES:
            log.warning("%s: outcome of %d bytes exceeds %d; not recorded", self.path.name, len(data), OUTCOME_BYTES)
            return
        self._h5[OUTCOME][()] = np.bytes_(data)
        self._h5.flush()

    def finish(self, status: str, *, error: str = "", ended: str) -> None:
        """Record the final status, error and end time, then close the file.

        Written in SWMR mode into the run-state datasets created with the file: no
        reopening, so SWMR readers holding the file (viewers, ``info --follow``) do
        not stand in the way, and they see the end of the run.
        """
        if self._h5.id.valid:
            self.flush()
            _write_run_state(self._h5, status, error=error, ended=ended)
        self.close()

    def close(self) -> None:
        if self._h5.id.valid:
            self._write_out()
            self._h5.close()  # closing flushes: a flush() first would write the metadata twice

    # -- internals ------------------------------------------------------------------
    def _write_out(self) -> None:
        """Write every appender's buffered rows (visible to readers after the next flush)."""
        for appender in [*self._streams.values(), *self._pulses.values()]:
            appender.write_out()

    def _keep_live(self) -> None:
        """Within long steps, flush at most every LIVE_INTERVAL so SWMR viewers follow."""
        if time.monotonic() - self._last_flush > LIVE_INTERVAL:
            self.flush()

    def _index_streams(self, fresh: bool, layouts: Mapping[str, Layout]) -> None:
        counts = self.journal.current_rows()
        # The file's driver and chunk cache, for all appenders: those of the writer's own
        # access properties for a file it created, else asked of the file once.
        sec2, cache = _access(_writer_fapl() if fresh else self._h5.id.get_access_plist())
        fd = self._h5.id.get_vfd_handle() if sec2 else None  # for the direct path
        for path in self.journal.streams:
            if path == PULSES:
                group = open_group(self._h5, PULSES)
                n = 0 if fresh else counts.get(PULSES, open_dataset_id(group, "step").shape[0])
                self._pulses = {c: Appender(open_dataset_id(group, c), n, chunk_cache=cache,
                                            layout=layouts.get(f"{PULSES}/{c}")) for c, *_ in PULSE_COLUMNS}
                continue
            dsid = open_dataset_id(self._h5, path)
            stream = self._streams[path] = Appender(dsid, 0 if fresh else counts.get(path, dsid.shape[0]), fd=fd,
                                                    chunk_cache=cache, layout=layouts.get(path))
            if path.startswith(f"{SCOPE}/"):
                name = path.rsplit("/", 1)[1]
                self._traces[name] = stream
                if not fresh and int(stream.dataset.attrs.get(PREAMBLE_SET, 0)):
                    self._preambles[name] = tuple(float(stream.dataset.attrs[k]) for k, _ in PREAMBLE_FIELDS)


@functools.cache
def _writer_fapl() -> h5py.h5p.PropFAID:
    """How the writer opens its files: HDF5 1.10's format, the chunk cache off (see
    ``appender``). Made once: h5py makes a new one for every ``h5py.File`` (~50 us)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(*(getattr(h5py.h5f, f"LIBVER_{v.upper()}") for v in LIBVER))
    mdc, slots, _, w0 = fapl.get_cache()
    fapl.set_cache(mdc, slots, 0, w0)
    return fapl


def _access(fapl: h5py.h5p.PropFAID) -> tuple[bool, bool]:
    """(on the POSIX driver, with a chunk cache) of files opened with ``fapl``."""
    return fapl.get_driver() == h5py.h5fd.SEC2, fapl.get_cache()[2] > 0


def _is_growing(spec: Spec) -> bool:
    return isinstance(spec, (Stream, Traces, PulseHistory))


def _stream_path(spec: Spec) -> str:
    return spec.path


def _skeleton_image(specs: tuple[Spec, ...], signal: str | None,
                    session: tuple[tuple[str, Any], ...]) -> tuple[bytes, Mapping[str, Layout]]:
    """The run file of ``specs`` (constants aside) before its run, as a file image, with the
    run attributes ``session`` (those a bench session repeats from run to run); and the
    :class:`Layout` of each dataset it appends to (streams, traces, pulse and journal
    columns) by HDF5 path, read from the image once rather than from each run file.

    Built once per declaration in a process (:func:`_build_skeleton`, cached) and
    written out for each run: creating the ~20 objects and ~50 attributes that do not
    depend on the run took 10-15 ms through h5py, writing the image takes microseconds.
    The session's attributes are added to a copy of that image, cached too: the runs of
    a protocol on one bench repeat them, and each cost ~40 us to add to the file.
    """
    process = (os.getpid(), socket.gethostname())  # the writer's attributes: a forked child builds its own
    try:
        hash(specs)
    except TypeError:  # a spec holding a list: nothing to cache it by
        image, layouts = _build_skeleton.__wrapped__(specs, signal, process)
        return _with_entry_attrs(image, session), layouts
    return _session_image(specs, signal, process, session)


@functools.lru_cache(maxsize=8)
def _session_image(specs: tuple[Spec, ...], signal: str | None, process: tuple[int, str],
                   session: tuple[tuple[str, Any], ...]) -> tuple[bytes, Mapping[str, Layout]]:
    image, layouts = _build_skeleton(specs, signal, process)
    return _with_entry_attrs(image, session), layouts


def _with_entry_attrs(image: bytes, attrs: tuple[tuple[str, Any], ...]) -> bytes:
    """``image`` with ``attrs`` added to ``/entry``: opened in memory (HDF5's core driver)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fapl_core(backing_store=False)
    fapl.set_file_image(image)
    fapl.set_libver_bounds(*(getattr(h5py.h5f, f"LIBVER_{v.upper()}") for v in LIBVER))
    name = f"skeleton-{os.getpid()}-{next(_SKELETONS)}.h5"  # the core driver's files are named, never written
    h5 = h5py.File(h5py.h5f.open(name.encode(), h5py.h5f.ACC_RDWR, fapl=fapl))
    try:
        new_attrs(open_group(h5, ENTRY), dict(attrs))
        h5.flush()
        return h5.id.get_file_image()
    finally:
        h5.close()


@functools.lru_cache(maxsize=8)
def _build_skeleton(specs: tuple[Spec, ...], signal: str | None,
                    process: tuple[int, str]) -> tuple[bytes, Mapping[str, Layout]]:
    """Every group and dataset of ``specs`` with their attributes, the run state, the
    outcome, the journal and the run attributes of this process, in an in-memory file;
    its image (a few kB) and the layouts of the datasets appended to (:func:`_skeleton_image`)."""
    name = f"skeleton-{os.getpid()}-{next(_SKELETONS)}.h5"  # the core driver's files are named, never written
    h5 = h5py.File(name, "w", driver="core", backing_store=False, libver=LIBVER)
    try:
        new_attrs(h5, {"NX_class": "NXroot", "default": "entry", "creator": f"rrambench {__version__}",
                       "HDF5_Version": h5py.version.hdf5_version, "h5py_version": h5py.version.version,
                       **_ROOT_RUN_ATTRS})
        gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        gcpl.set_attr_phase_change(64, 6)  # its ~25 attributes in the object header: a third faster to add
        entry = h5py.Group(h5py.h5g.create(h5.id, ENTRY.encode(), gcpl=gcpl))
        new_attrs(entry, {"NX_class": "NXentry", "default": "data", RunAttr.SCHEMA_VERSION: SCHEMA_VERSION,
                          RunAttr.SOFTWARE_VERSION: __version__, RunAttr.WRITER_PID: process[0],
                          RunAttr.WRITER_HOST: process[1], RunAttr.RESUMES: "[]", **_run_attr_blanks()})
        _create_run_state(entry)
        _create_data(h5, specs, signal)
        _create_outcome(h5)
        growing = [_stream_path(s) for s in specs if _is_growing(s)]
        Journal.create(h5, growing)
        paths = [*(p for p in growing if p != PULSES), *(f"{JOURNAL}/{name}" for name in _JOURNAL_DATASETS),
                 *((f"{PULSES}/{c}" for c, *_ in PULSE_COLUMNS) if PULSES in growing else ())]
        layouts = MappingProxyType({p: Layout.of(open_dataset_id(h5, p)) for p in paths})  # shared: read-only
        h5.flush()
        return h5.id.get_file_image(), layouts
    finally:
        h5.close()


_SKELETONS = itertools.count()
#: The datasets of the journal group.
_JOURNAL_DATASETS = (*(c for c, *_ in JOURNAL_COLUMNS), ROWS)
#: Run attributes the skeleton holds (the same for every run of a process).
_PROCESS_ATTRS = frozenset({RunAttr.SCHEMA_VERSION, RunAttr.SOFTWARE_VERSION, RunAttr.WRITER_PID,
                            RunAttr.WRITER_HOST, RunAttr.RESUMES})
#: Run attributes a bench session repeats from run to run of a protocol (in the cached image).
_SESSION_ATTRS = frozenset({RunAttr.PROTOCOL, RunAttr.TITLE, RunAttr.BENCH_CONFIG, RunAttr.INSTRUMENTS,
                            RunAttr.INSTRUMENT_SETTINGS, RunAttr.CONFIG_PATH, RunAttr.SIMULATED,
                            RunAttr.SIMULATED_PARTS, RunAttr.PROTOCOL_SOURCE})
#: The root's attributes of each run's own (NeXus NXroot), blank in the skeleton.
_ROOT_RUN_ATTRS = {"file_name": "", "file_time": ""}
#: Run attributes of each run's own, blank in the skeleton and written into each run file.
_RUN_ATTRS = tuple(key for key in RUN_ATTRIBUTES if key not in _PROCESS_ATTRS | _SESSION_ATTRS)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _publish(building: Path, path: Path) -> None:
    """Give the finished skeleton at ``building`` its name ``path``; never overwrite one."""
    try:
        os.link(building, path)  # atomic, and refuses a file created meanwhile as open(..., "x") would
    except FileExistsError:
        raise FileExistsError(f"{path} exists; run files are never overwritten") from None
    except OSError:  # a file system without hard links: check, then rename (a narrow race, no link)
        if path.exists():
            raise FileExistsError(f"{path} exists; run files are never overwritten") from None
        os.rename(building, path)
        return
    building.unlink()


#: ``json.dumps(value, sort_keys=True)`` and the same with ``default=str``, their encoders made
#: once (``json.dumps`` makes one per call given any option: a sixth of a header's time).
_sorted_json = json.JSONEncoder(sort_keys=True).encode
_sorted_json_str = json.JSONEncoder(sort_keys=True, default=str).encode


def _header_attrs(header: RunHeader) -> tuple[tuple[tuple[str, Any], ...], dict[str, Any]]:
    """The run attributes of ``/entry`` from ``header``: (those of the session, sorted
    name-value pairs; those of this run). Every run attribute of the schema but the
    process's, which the skeleton holds."""
    values = {
        RunAttr.PROTOCOL: header.protocol,
        RunAttr.TITLE: header.title or header.protocol,
        RunAttr.PARAMETERS: _sorted_json(header.parameters),
        RunAttr.BENCH_CONFIG: _sorted_json_str(header.bench_config),
        RunAttr.INSTRUMENTS: _sorted_json(header.identities),
        RunAttr.INSTRUMENT_SETTINGS: _sorted_json_str(header.settings),
        RunAttr.CONFIG_PATH: header.config_path,
        RunAttr.START_TIME: header.started,
        RunAttr.SEED: json.dumps(header.seed),
        RunAttr.WORLD_SEED: json.dumps(header.world_seed),
        RunAttr.SIMULATED: bool(header.simulated),
        RunAttr.SIMULATED_PARTS: json.dumps(list(header.simulated_parts)),
        RunAttr.STEPS_TOTAL: int(header.steps_total),
        RunAttr.PROTOCOL_SOURCE: _sorted_json(header.protocol_source),
        RunAttr.CATALOGUE: _sorted_json_str(dict(zip(CATALOGUE_KEYS, (
            SCHEMA_VERSION, header.protocol, header.parameters, header.started, header.seed, header.world_seed,
            bool(header.simulated), int(header.steps_total), header.identities,
            {k: str(v) for k, v in header.sample.items() if str(v)}), strict=True))),
    }
    session = tuple(sorted((key, values[key]) for key in _SESSION_ATTRS))
    return session, {key: values[key] for key in _RUN_ATTRS}


def _write_header(h5: h5py.File, path: Path, header: RunHeader, run: Mapping[str, Any]) -> None:
    """The run's own attributes: of the root (file name and time) and ``run`` of ``/entry``,
    written over the skeleton's blanks (a quarter faster than making them; the object
    headers keep their size)."""
    overwrite_attrs(h5, {"file_name": path.name, "file_time": header.started})
    overwrite_attrs(open_group(h5, ENTRY), run)


@functools.cache
def _run_attr_blanks() -> dict[str, Any]:
    """Blank values of the kind of each run attribute of a run's own (``_RUN_ATTRS``), for the
    skeleton: an empty string, or the number 0 of its type."""
    _, run = _header_attrs(RunHeader(protocol="", parameters={}, seed=0, started="", steps_total=0))
    return {key: "" if isinstance(value, str) else type(value)() for key, value in run.items()}


def _write_sample(h5: h5py.File, sample: Mapping[str, str]) -> None:
    """``/entry/sample`` (NXsample), one UTF-8 string dataset per key; none without a sample."""
    if not sample:
        return
    group = h5.create_group(SAMPLE, track_order=True)  # read back in the order given
    group.attrs["NX_class"] = "NXsample"
    for key, value in sample.items():
        ds = group.create_dataset(key, data=str(value), dtype=h5py.string_dtype("utf-8"))
        new_attrs(ds, {UNITS: "", LONG_NAME: f"sample {key}"})


def _create_run_state(entry: h5py.Group) -> None:
    """The run-state datasets, before SWMR starts: fixed-size, storage allocated, "running"."""
    for name, dtype, meaning in RUN_FIELDS:
        ds = entry.create_dataset(name, data=np.bytes_(RUNNING if name == RunField.STATUS else b""), dtype=dtype)
        new_attrs(ds, {UNITS: "", LONG_NAME: meaning})


def _write_run_state(h5: h5py.File, status: str, *, error: str, ended: str) -> None:
    """Overwrite the run-state datasets in place (allowed in SWMR mode); the status last,
    after a flush, so a reader that sees the final status also sees the end time and error."""
    entry = h5[ENTRY]
    entry[RunField.END_TIME][()] = np.bytes_(ended.encode("utf-8"))
    entry[RunField.ERROR][()] = np.bytes_(_cut_utf8(error, ERROR_BYTES))
    h5.flush()
    entry[RunField.STATUS][()] = np.bytes_(status.encode("utf-8"))
    h5.flush()


def _cut_utf8(text: str, size: int) -> bytes:
    """``text`` as UTF-8 in at most ``size`` bytes, cut at a character boundary and marked."""
    data = text.encode("utf-8")
    if len(data) <= size:
        return data
    mark = b" [cut]"
    return data[: size - len(mark)].decode("utf-8", "ignore").encode("utf-8") + mark


def _create_data(h5: h5py.File, specs: Sequence[Spec], signal: str | None) -> None:
    """``/entry/data`` and every declared object but the constants (:func:`_create_constants`).

    Growing datasets never write fill values (``fill_time="never"``): with the writer's
    chunk cache off their rows go straight to the file, and a step's partial chunk is
    written once, not padded with fill values first.
    """
    data = h5.create_group(DATA)
    attrs: dict[str, Any] = {"NX_class": "NXdata"}
    if signal is not None:
        attrs[SIGNAL] = signal
        spec = next((s for s in specs if getattr(s, "name", None) == signal), None)
        if isinstance(spec, Stream) and spec.axes is not None:
            attrs[AXES] = list(spec.axes)
            attrs.update({f"{axis}_indices": i for i, axis in enumerate(spec.axes) if axis != "."})
    new_attrs(data, attrs)
    for spec in specs:
        if isinstance(spec, Stream):
            ds = data.create_dataset(spec.name, shape=(0, *spec.shape), maxshape=(None, *spec.shape),
                                     dtype=spec.dtype, chunks=spec.chunks(), fill_time="never")
            new_attrs(ds, {UNITS: spec.units, LONG_NAME: spec.long_name or spec.name})
        elif isinstance(spec, Traces):
            _create_traces(h5, spec)
        elif isinstance(spec, PulseHistory):
            _create_pulses(h5, spec)
    for spec in specs:
        if isinstance(spec, Link):
            _create_link(h5, spec)
        elif isinstance(spec, Plot):
            _create_plot(h5, spec)


def _create_constants(h5: h5py.File, specs: Sequence[Spec]) -> None:
    """The declared constants, in ``/entry/data`` (their values differ from run to run)."""
    constants = [s for s in specs if isinstance(s, Constant)]
    if not constants:
        return
    data = h5[DATA]
    for spec in constants:
        ds = data.create_dataset(spec.name, data=np.asarray(spec.data))
        new_attrs(ds, {UNITS: spec.units, LONG_NAME: spec.long_name or spec.name})


def _create_link(h5: h5py.File, spec: Link) -> None:
    """A soft link; groups on its way that do not exist yet become NXcollections."""
    parent, name = spec.path.rsplit("/", 1)
    if parent not in h5:
        new_attrs(h5.require_group(parent), {"NX_class": "NXcollection"})
    h5[parent][name] = h5py.SoftLink(spec.target)


def _create_traces(h5: h5py.File, spec: Traces) -> None:
    if SCOPE not in h5:
        scope = h5.require_group(SCOPE)
        new_attrs(scope.parent, {"NX_class": "NXinstrument"})
        new_attrs(scope, {"NX_class": "NXcollection"})
    # Chunks allocated as the extent grows: the appender writes the traces into them itself.
    ds = h5[SCOPE].create_dataset(spec.name, shape=(0, spec.points), maxshape=(None, spec.points),
                                  dtype=spec.dtype, chunks=spec.chunks(), fill_time="never", dcpl=direct_rows_dcpl())
    new_attrs(ds, {UNITS: "counts", CHANNEL: spec.channel, PREAMBLE_SET: np.int8(0),
                   VOLTS: "(code - y_reference) * y_increment + y_origin",
                   **{key: np.nan for key, _ in PREAMBLE_FIELDS},
                   **{f"{key}_units": unit for key, unit in PREAMBLE_FIELDS}})


def _create_pulses(h5: h5py.File, spec: PulseHistory) -> None:
    group = h5.create_group(PULSES)
    new_attrs(group, {"NX_class": "NXcollection", COLUMNS: [c for c, *_ in PULSE_COLUMNS]})
    for column, dtype, unit, meaning in PULSE_COLUMNS:
        ds = group.create_dataset(column, shape=(0,), maxshape=(None,), dtype=dtype,
                                  chunks=(spec.chunk_rows,), fill_time="never")
        new_attrs(ds, {UNITS: unit, LONG_NAME: meaning})


# -- the default plot, the outcome, the instruments' settings -----------------------------
def _create_plot(h5: h5py.File, plot: Plot) -> None:
    """``/entry/plot``: an NXdata of soft links to the declared datasets, /entry's default."""
    group = h5.create_group(PLOT)
    attrs: dict[str, Any] = {"NX_class": "NXdata", SIGNAL: plot.signal, AXES: list(plot.axes)}
    attrs.update({f"{axis}_indices": 0 if plot.scatter else i for i, axis in enumerate(plot.axes) if axis != "."})
    if plot.scatter:  # nexusformat draws a 1-D signal over its (y, x) coordinates as a scatter
        attrs[COORDINATES] = [plot.axes[1], plot.axes[0]]
    if plot.interpretation:
        attrs[INTERPRETATION] = plot.interpretation
    if plot.title:
        attrs["title"] = plot.title
    new_attrs(group, attrs)
    for name in {plot.signal, *plot.axes} - {"."}:  # streams and constants alike live in /entry/data
        group[name] = h5py.SoftLink(f"{DATA}/{name}")
    h5[ENTRY].attrs["default"] = PLOT.rsplit("/", 1)[1]


def _create_outcome(h5: h5py.File) -> None:
    """``/entry/outcome``, fixed-size and empty ("{}") until a completed run records its metrics."""
    entry = h5[ENTRY]
    name = OUTCOME.rsplit("/", 1)[1]
    if name in entry:
        entry[name][()] = np.bytes_(b"{}")
        return
    ds = entry.create_dataset(name, data=np.bytes_(b"{}"), dtype=f"S{OUTCOME_BYTES}")
    new_attrs(ds, {UNITS: "", LONG_NAME: "key metrics of a completed run, JSON {name: {value, units}}"})


def _write_snapshot(h5: h5py.File, snapshot: Mapping[str, Mapping[str, tuple[Any, str]]], taken: str,
                    subgroup: str = "") -> None:
    """Each instrument's settings as attributes of ``/entry/instrument/<name>`` (or of its
    ``subgroup``): ``<setting>`` and ``<setting>_units``, names listed in ``settings``."""
    if not snapshot:
        return
    new_attrs(h5.require_group(INSTRUMENT), {"NX_class": "NXinstrument"})
    for name, settings in snapshot.items():
        group = h5.require_group(instrument_path(name))
        new_attrs(group, {"NX_class": "NXcollection"})
        if subgroup:
            group = group.require_group(subgroup)
            new_attrs(group, {"NX_class": "NXcollection"})
        attrs: dict[str, Any] = {SETTINGS: list(settings), SNAPSHOT_TIME: taken}
        for key, (value, unit) in settings.items():
            attrs[key] = "" if value is None else value
            attrs[f"{key}_units"] = unit
        new_attrs(group, attrs)


def _json_value(value: Any) -> Any:
    """A metric as strict JSON: numpy scalars as Python numbers, NaN and infinities as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
