"""The HDF5 run-file writer (schema: ``docs/hdf5-schema.md``, names from :mod:`analysis.schema`).

One file per run, NeXus-flavoured. Every object is created first, then the file
switches to SWMR mode, after which the writer only resizes, appends and flushes:
a viewer can follow a live run and a killed writer leaves a readable file whose
status still says "running" (the reader reports it as interrupted).

The step journal and the resume logic live in :mod:`protocols.engine.journal`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from analysis.schema import (
    AXES,
    CHANNEL,
    COLUMNS,
    DATA,
    ENTRY,
    LONG_NAME,
    PREAMBLE_FIELDS,
    PREAMBLE_SET,
    PULSE_COLUMNS,
    PULSES,
    RUN_ATTRIBUTES,
    RUNNING,
    SCHEMA_VERSION,
    SCOPE,
    SIGNAL,
    UNITS,
    VOLTS,
    RunAttr,
)
from instruments import __version__
from protocols.engine.appender import Appender
from protocols.engine.datasets import (
    Constant,
    Link,
    PulseHistory,
    Spec,
    Stream,
    Traces,
    check_specs,
)
from protocols.engine.h5io import LIBVER, RunFileError, open_h5
from protocols.engine.journal import Journal

LIVE_INTERVAL = 1.0  # s, longest time appended rows stay invisible to SWMR readers

__all__ = ["RunFileError", "RunHeader", "RunWriter", "open_h5", "LIBVER"]

log = logging.getLogger("rrambench.runfile")


@dataclass
class RunHeader:
    """What a run file says about its run, written at creation.

    ``started``: ISO 8601 UTC time. ``seed``: the run seed (protocol random streams
    use ``SeedSequence([seed, step_index])``). ``world_seed``: seed of the simulated
    world (None on hardware). ``bench_config``, ``identities``, ``settings``:
    JSON-serialisable snapshots of the bench.
    """

    protocol: str
    parameters: dict[str, Any]
    seed: int
    started: str
    steps_total: int
    simulated: bool = False
    world_seed: int | None = None
    bench_config: dict[str, Any] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    config_path: str = ""
    title: str = ""


class RunWriter:
    """Appends a run's data to its HDF5 file; owns the file while the run lasts.

    Not thread-safe: the engine calls it from the run's thread only.
    """

    def __init__(self, path: Path, h5: h5py.File, journal: Journal) -> None:
        self.path = path
        self._h5 = h5
        self.journal = journal
        self._streams: dict[str, Appender] = {}  # by HDF5 path, /entry/data and scope traces
        self._pulses: dict[str, Appender] = {}  # by column
        self._preambles: dict[str, tuple[float, ...]] = {}
        self._last_flush = time.monotonic()
        self._index_streams()

    # -- creation -----------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, header: RunHeader, specs: Sequence[Spec], *,
               signal: str | None = None) -> RunWriter:
        """Create the file, every group and dataset, then enter SWMR mode.

        Refuses to overwrite an existing file. ``signal``: the stream NeXus plots by
        default (the first :class:`Stream` when None).
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
        h5 = h5py.File(path, "x", libver=LIBVER)  # "x" also refuses a file created meanwhile
        try:
            _write_header(h5, path, header)
            _create_data(h5, specs, signal)
            journal = Journal.create(h5, [_stream_path(s) for s in specs if _is_growing(s)])
            h5.swmr_mode = True
        except BaseException:
            h5.close()
            path.unlink(missing_ok=True)
            raise
        return cls(path, h5, journal)

    @classmethod
    def reopen(cls, path: str | Path) -> RunWriter:
        """Reopen an unfinished run for ``--resume``: drop rows of the unfinished step.

        Every stream is cut back to its length at the last completed step, the
        journal to its completed prefix; the status goes back to "running".
        """
        path = Path(path)
        h5 = Journal.open_for_resume(path)
        try:
            journal = Journal.attach(h5)
            journal.truncate_to_completed()
            entry = h5[ENTRY]
            history = json.loads(entry.attrs.get(RunAttr.RESUMES, "[]"))
            history.append({"previous_status": str(entry.attrs[RunAttr.STATUS]),
                            "steps_completed": journal.completed})
            entry.attrs[RunAttr.RESUMES] = json.dumps(history)
            entry.attrs[RunAttr.STATUS] = RUNNING
            entry.attrs[RunAttr.ERROR] = ""
            entry.attrs[RunAttr.END_TIME] = ""
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
        """Append one acquisition of raw codes; the first sets the preamble attributes."""
        path = f"{SCOPE}/{name}"
        stream = self._streams.get(path)
        if stream is None:
            raise KeyError(f"no trace stream {name!r} declared")
        values = tuple(float(preamble[key]) for key, _ in PREAMBLE_FIELDS)
        known = self._preambles.get(path)
        if known is None:
            for (key, _), value in zip(PREAMBLE_FIELDS, values, strict=True):
                stream.dataset.attrs[key] = value
            stream.dataset.attrs[PREAMBLE_SET] = np.int8(1)
            self._preambles[path] = values
        elif known != values:
            raise ValueError(f"trace {name}: preamble changed within the stream; declare a new Traces stream")
        codes = np.asarray(codes)
        if codes.shape != stream.row_shape:
            raise ValueError(f"trace {name}: expected {stream.row_shape[0]} points, got shape {codes.shape}")
        stream.append(codes[np.newaxis])
        self._keep_live()

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
        for appender in [*self._streams.values(), *self._pulses.values()]:
            appender.write_out()
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
    def finish(self, status: str, *, error: str = "", ended: str) -> None:
        """Close the SWMR session, then record the final status, error and end time."""
        self.close()
        with open_h5(self.path, "r+") as h5:
            entry = h5[ENTRY]
            entry.attrs[RunAttr.STATUS] = status
            entry.attrs[RunAttr.ERROR] = error
            entry.attrs[RunAttr.END_TIME] = ended

    def close(self) -> None:
        if self._h5.id.valid:
            self.flush()
            self._h5.close()

    # -- internals ------------------------------------------------------------------
    def _keep_live(self) -> None:
        """Within long steps, flush at most every LIVE_INTERVAL so SWMR viewers follow."""
        if time.monotonic() - self._last_flush > LIVE_INTERVAL:
            self.flush()

    def _index_streams(self) -> None:
        counts = self.journal.current_rows()
        for path in self.journal.streams:
            if path == PULSES:
                group = self._h5[PULSES]
                n = counts.get(PULSES, group["step"].shape[0])
                self._pulses = {c: Appender(group[c], n) for c, *_ in PULSE_COLUMNS}
                continue
            ds = self._h5[path]
            self._streams[path] = Appender(ds, counts.get(path, ds.shape[0]))
            if path.startswith(SCOPE) and int(ds.attrs.get(PREAMBLE_SET, 0)):
                self._preambles[path] = tuple(float(ds.attrs[k]) for k, _ in PREAMBLE_FIELDS)


def _is_growing(spec: Spec) -> bool:
    return isinstance(spec, (Stream, Traces, PulseHistory))


def _stream_path(spec: Spec) -> str:
    return spec.path


def _write_header(h5: h5py.File, path: Path, header: RunHeader) -> None:
    h5.attrs["NX_class"] = "NXroot"
    h5.attrs["default"] = "entry"
    h5.attrs["file_name"] = path.name
    h5.attrs["file_time"] = header.started
    h5.attrs["creator"] = f"rrambench {__version__}"
    h5.attrs["HDF5_Version"] = h5py.version.hdf5_version
    h5.attrs["h5py_version"] = h5py.version.version
    entry = h5.create_group(ENTRY)
    entry.attrs["NX_class"] = "NXentry"
    entry.attrs["default"] = "data"
    values = {
        RunAttr.SCHEMA_VERSION: SCHEMA_VERSION,
        RunAttr.SOFTWARE_VERSION: __version__,
        RunAttr.PROTOCOL: header.protocol,
        RunAttr.TITLE: header.title or header.protocol,
        RunAttr.PARAMETERS: json.dumps(header.parameters, sort_keys=True),
        RunAttr.BENCH_CONFIG: json.dumps(header.bench_config, sort_keys=True, default=str),
        RunAttr.INSTRUMENTS: json.dumps(header.identities, sort_keys=True),
        RunAttr.INSTRUMENT_SETTINGS: json.dumps(header.settings, sort_keys=True, default=str),
        RunAttr.CONFIG_PATH: header.config_path,
        RunAttr.START_TIME: header.started,
        RunAttr.END_TIME: "",
        RunAttr.STATUS: RUNNING,
        RunAttr.ERROR: "",
        RunAttr.SEED: json.dumps(header.seed),
        RunAttr.WORLD_SEED: json.dumps(header.world_seed),
        RunAttr.SIMULATED: bool(header.simulated),
        RunAttr.STEPS_TOTAL: int(header.steps_total),
        RunAttr.WRITER_PID: os.getpid(),
        RunAttr.WRITER_HOST: socket.gethostname(),
        RunAttr.RESUMES: "[]",
    }
    for key in RUN_ATTRIBUTES:  # every run attribute of the schema, none else
        entry.attrs[key] = values[key]


def _create_data(h5: h5py.File, specs: Sequence[Spec], signal: str | None) -> None:
    data = h5.create_group(DATA)
    data.attrs["NX_class"] = "NXdata"
    if signal is not None:
        data.attrs[SIGNAL] = signal
        spec = next(s for s in specs if getattr(s, "name", None) == signal)
        if isinstance(spec, Stream) and spec.axes is not None:
            data.attrs[AXES] = list(spec.axes)
            for i, axis in enumerate(spec.axes):
                if axis != ".":
                    data.attrs[f"{axis}_indices"] = i
    for spec in specs:
        if isinstance(spec, Stream):
            ds = data.create_dataset(spec.name, shape=(0, *spec.shape), maxshape=(None, *spec.shape),
                                     dtype=spec.dtype, chunks=spec.chunks())
            ds.attrs[UNITS] = spec.units
            ds.attrs[LONG_NAME] = spec.long_name or spec.name
        elif isinstance(spec, Constant):
            ds = data.create_dataset(spec.name, data=np.asarray(spec.data))
            ds.attrs[UNITS] = spec.units
            ds.attrs[LONG_NAME] = spec.long_name or spec.name
        elif isinstance(spec, Traces):
            _create_traces(h5, spec)
        elif isinstance(spec, PulseHistory):
            _create_pulses(h5, spec)
    for spec in specs:
        if isinstance(spec, Link):
            _create_link(h5, spec)


def _create_link(h5: h5py.File, spec: Link) -> None:
    """A soft link; groups on its way that do not exist yet become NXcollections."""
    parent, name = spec.path.rsplit("/", 1)
    if parent not in h5:
        group = h5.require_group(parent)
        group.attrs["NX_class"] = "NXcollection"
    h5[parent][name] = h5py.SoftLink(spec.target)


def _create_traces(h5: h5py.File, spec: Traces) -> None:
    scope = h5.require_group(SCOPE)
    scope.parent.attrs["NX_class"] = "NXinstrument"
    scope.attrs["NX_class"] = "NXcollection"
    ds = scope.create_dataset(spec.name, shape=(0, spec.points), maxshape=(None, spec.points),
                              dtype=spec.dtype, chunks=spec.chunks())
    ds.attrs[UNITS] = "counts"
    ds.attrs[CHANNEL] = spec.channel
    ds.attrs[PREAMBLE_SET] = np.int8(0)
    ds.attrs[VOLTS] = "(code - y_reference) * y_increment + y_origin"
    for key, unit in PREAMBLE_FIELDS:
        ds.attrs[key] = np.nan
        ds.attrs[f"{key}_units"] = unit


def _create_pulses(h5: h5py.File, spec: PulseHistory) -> None:
    group = h5.create_group(PULSES)
    group.attrs["NX_class"] = "NXcollection"
    group.attrs[COLUMNS] = [c for c, *_ in PULSE_COLUMNS]
    for column, dtype, unit, meaning in PULSE_COLUMNS:
        ds = group.create_dataset(column, shape=(0,), maxshape=(None,), dtype=dtype,
                                  chunks=(spec.chunk_rows,))
        ds.attrs[UNITS] = unit
        ds.attrs[LONG_NAME] = meaning
