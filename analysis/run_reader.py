"""Reading run files: ``open_run(path)`` (schema: ``docs/hdf5-schema.md``).

Works for complete, aborted, failed and killed runs alike, and on a run still
being written (the file is opened as an SWMR reader). Needs only h5py and numpy.
A file whose status still says "running" but whose writer process is gone (killed,
power cut) is reported as "interrupted".
"""

from __future__ import annotations

import functools
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from analysis.schema import (
    COMPLETED,
    ENTRY,
    INSTRUMENT,
    INSTRUMENT_NAMES,
    INTERRUPTED,
    JOURNAL,
    JOURNAL_COLUMNS,
    OUTCOME,
    RUN_FIELDS,
    RUNNING,
    SAMPLE,
    SCHEMA_VERSIONS,
    SCOPE,
    SETTINGS,
    SNAPSHOT_TIME,
    UNITS,
    RunAttr,
    RunField,
    data_path,
)

#: Paths of the run-state datasets (schema 1.1): read as the run's status, not listed as data.
RUN_FIELD_PATHS = frozenset(f"{ENTRY}/{name}" for name, *_ in RUN_FIELDS)
#: Datasets about the run rather than its data (not listed in ``Run.datasets``).
_NOT_DATA = RUN_FIELD_PATHS | {OUTCOME}
#: Groups about the run rather than its data: their datasets are not listed either.
_NOT_DATA_GROUPS = (f"{SAMPLE}/",)
#: HDF5 open errors no SWMR retry can cure: the reader reports them at once.
_FATAL_OPEN_ERRORS = ("truncated file", "file signature not found", "Is a directory")
#: Plain opens retried, ``_TRUNCATED_WAIT`` s apart, of a file that reads as truncated before
#: it counts as one (a live writer's window lasts milliseconds): 0.2 s more for a damaged file.
_TRUNCATED_RETRIES = 10
_TRUNCATED_WAIT = 0.02


class RunFileError(ValueError):
    """Not a readable rrambench run file (missing, truncated, not HDF5, not ours)."""


@dataclass(frozen=True)
class DatasetInfo:
    """Shape, dtype and unit of one dataset (``units`` "" means dimensionless)."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    units: str


@dataclass(frozen=True)
class JournalEntry:
    """One journalled step: wall-clock times are POSIX s (UTC), clock times bench s."""

    index: int
    name: str
    status: str
    start: float
    end: float
    clock_start: float
    clock_end: float


@dataclass
class Run:
    """Everything a run file says about its run; arrays are read on demand."""

    path: Path
    status: str  # completed | aborted | failed | interrupted | running (writer alive)
    protocol: str
    parameters: dict[str, Any]
    steps_completed: int
    steps_total: int
    started: str
    ended: str | None
    error: str
    seed: int | None
    world_seed: int | None
    simulated: bool
    schema_version: str
    software_version: str
    bench_config: dict[str, Any] = field(default_factory=dict)
    instruments: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    journal: list[JournalEntry] = field(default_factory=list)
    datasets: dict[str, DatasetInfo] = field(default_factory=dict)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    simulated_parts: list[str] = field(default_factory=list)
    #: Key metrics of a completed run (``/entry/outcome``): name -> {"value", "units"}; {} otherwise.
    outcome: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The instruments' settings (``/entry/instrument/<name>``): instrument -> snapshot ("start",
    #: then "resume_<n>") -> {"time": ISO UTC, "settings": {name: {"value", "units"}}}.
    snapshot: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: Where the protocol came from (run attribute ``protocol_source``, schema 1.2): origin
    #: ("shipped", "file", "module"), reference, module, class, file, sha256; {} in older files.
    protocol_source: dict[str, str] = field(default_factory=dict)
    #: The sample measured (``/entry/sample``, schema 1.2): chip, wafer, die, operator, notes
    #: as set; {} when the run recorded none.
    sample: dict[str, str] = field(default_factory=dict)

    def read(self, path: str) -> np.ndarray:
        """The array at ``path`` (absolute, or relative to ``/entry/data``)."""
        with _guard(self.path, path), _open(self.path) as h5:
            return h5[data_path(path)][()]

    def attrs(self, path: str) -> dict[str, Any]:
        """Attributes of the object at ``path`` (absolute, or relative to ``/entry/data``)."""
        with _guard(self.path, path), _open(self.path) as h5:
            return {k: _plain(v) for k, v in h5[data_path(path)].attrs.items()}

    def trace_volts(self, name: str) -> np.ndarray:
        """Scope traces ``name`` in V, from the raw codes and the stored preamble."""
        with _guard(self.path, name), _open(self.path) as h5:
            ds = h5[f"{SCOPE}/{name}"]
            codes = ds[()].astype(np.float64)
            yinc, yorg, yref = (float(ds.attrs[k]) for k in ("y_increment", "y_origin", "y_reference"))
        return (codes - yref) * yinc + yorg

    def trace_time(self, name: str) -> np.ndarray:
        """Sample times in s of scope traces ``name``."""
        with _guard(self.path, name), _open(self.path) as h5:
            ds = h5[f"{SCOPE}/{name}"]
            points = ds.shape[1]
            xinc, xorg, xref = (float(ds.attrs[k]) for k in ("x_increment", "x_origin", "x_reference"))
        return (np.arange(points) - xref) * xinc + xorg

    def to_json(self) -> dict[str, Any]:
        """The stable ``rrambench info --json`` document."""
        return {
            "status": self.status,
            "protocol": self.protocol,
            "steps_completed": self.steps_completed,
            "steps_total": self.steps_total,
            "parameters": self.parameters,
            "started": self.started,
            "ended": self.ended,
            "error": self.error,
            "datasets": {
                p: {"shape": list(d.shape), "dtype": d.dtype, "units": d.units}
                for p, d in self.datasets.items()
            },
            "outcome": self.outcome,
            "snapshot": self.snapshot,
            "protocol_source": self.protocol_source,
            "sample": self.sample,
        }


def open_run(path: str | Path, *, isolate: bool = False, timeout: float | None = None) -> Run:
    """Read a run file's metadata, journal and dataset index.

    Raises :class:`RunFileError` for a missing, truncated or non-HDF5 file, or an
    HDF5 file that is not an rrambench run file.

    ``isolate``: first read the whole file in a separate process (see
    :mod:`analysis.isolation`), so a damaged file that would make the HDF5 library
    loop or crash becomes a RunFileError once the read makes no progress for
    ``timeout`` s (default ``isolation.CHECK_TIMEOUT``). The CLI and the GUI's run
    browser use it for every file a user hands in.
    """
    path = Path(path)
    if isolate:
        from analysis.isolation import CHECK_TIMEOUT, check_readable

        check_readable(path, timeout=CHECK_TIMEOUT if timeout is None else timeout)
    try:
        with _open(path) as h5:
            if ENTRY not in h5 or RunAttr.PROTOCOL not in h5[ENTRY].attrs:
                raise RunFileError(f"{path}: HDF5 file but not an rrambench run file (no /entry protocol)")
            a = {k: _plain(v) for k, v in h5[ENTRY].attrs.items()}
            schema = str(a.get(RunAttr.SCHEMA_VERSION, ""))
            if schema not in SCHEMA_VERSIONS:
                raise RunFileError(f"{path}: run-file schema {schema!r} unknown to this reader")
            journal = _journal(h5)
            datasets: dict[str, DatasetInfo] = {}
            h5.visititems(lambda name, obj: _index(datasets, name, obj))
            run = _run(path, a, schema, journal, datasets, run_state(h5))
            run.outcome, run.snapshot, run.sample = _outcome(h5), _snapshots(h5), _sample(h5)
            return run
    except RunFileError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError,
            UnicodeDecodeError, OverflowError) as exc:
        raise RunFileError(f"{path}: damaged or truncated run file ({type(exc).__name__}: {exc})") from None


def run_state(h5: h5py.File) -> tuple[str, str, str]:
    """(status, end_time, error) as the file stores them: the run-state datasets of
    ``/entry`` (schema 1.1), or the run attributes of the same names (schema 1.0)."""
    entry = h5[ENTRY]
    if RunField.STATUS in entry:
        return tuple(_plain(entry[name][()]) for name, *_ in RUN_FIELDS)
    return tuple(str(_plain(entry.attrs.get(name, ""))) for name, *_ in RUN_FIELDS)


def _run(path: Path, a: dict[str, Any], schema: str, journal: list[JournalEntry],
         datasets: dict[str, DatasetInfo], state: tuple[str, str, str]) -> Run:
    """Build the Run from the root attributes (any malformed value raises, and is reported)."""
    completed = 0
    for entry in journal:
        if entry.status != COMPLETED:
            break
        completed += 1
    status, ended, error = state
    if not status:
        raise ValueError("the run file records no status")
    if status == RUNNING and not _writer_alive(a):
        status = INTERRUPTED
    return Run(
        path=path,
        status=status,
        protocol=str(a[RunAttr.PROTOCOL]),
        parameters=_json(a, RunAttr.PARAMETERS, dict),
        steps_completed=completed,
        steps_total=int(a.get(RunAttr.STEPS_TOTAL, 0)),
        started=str(a.get(RunAttr.START_TIME, "")),
        ended=ended or None,
        error=error,
        seed=_json(a, RunAttr.SEED, (int, type(None)), "null"),
        world_seed=_json(a, RunAttr.WORLD_SEED, (int, type(None)), "null"),
        simulated=bool(a.get(RunAttr.SIMULATED, False)),
        schema_version=schema,
        software_version=str(a.get(RunAttr.SOFTWARE_VERSION, "")),
        bench_config=_json(a, RunAttr.BENCH_CONFIG, dict),
        instruments=_json(a, RunAttr.INSTRUMENTS, dict),
        settings=_json(a, RunAttr.INSTRUMENT_SETTINGS, dict),
        journal=journal,
        datasets=datasets,
        resumes=_json(a, RunAttr.RESUMES, list, "[]"),
        simulated_parts=[str(p) for p in _json(a, RunAttr.SIMULATED_PARTS, list, "[]")],
        protocol_source={str(k): str(v) for k, v in _json(a, RunAttr.PROTOCOL_SOURCE, dict).items()},
    )


def _outcome(h5: h5py.File) -> dict[str, dict[str, Any]]:
    """``/entry/outcome`` (schema 1.1; absent in 1.0 files): {} until a run completed."""
    if OUTCOME not in h5:
        return {}
    value = json.loads(_plain(h5[OUTCOME][()]) or "{}")
    if not isinstance(value, dict):
        raise ValueError("/entry/outcome is not a JSON object")
    return value


def _sample(h5: h5py.File) -> dict[str, str]:
    """``/entry/sample``: one string dataset per key (schema 1.2); {} when absent."""
    if SAMPLE not in h5:
        return {}
    return {key: str(_plain(ds[()])) for key, ds in h5[SAMPLE].items() if isinstance(ds, h5py.Dataset)}


def _snapshots(h5: h5py.File) -> dict[str, dict[str, dict[str, Any]]]:
    """Every instrument group holding settings (attribute ``settings``), and its resume subgroups."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if INSTRUMENT not in h5:
        return out
    order = {name: k for k, name in enumerate(INSTRUMENT_NAMES)}
    for name in sorted(h5[INSTRUMENT], key=lambda n: (order.get(n, len(order)), n)):
        group = h5[INSTRUMENT][name]
        if not isinstance(group, h5py.Group):
            continue
        snapshots = {"start": _settings(group)} if SETTINGS in group.attrs else {}  # none: a resumed 1.0 file
        resumes = [k for k, g in group.items() if isinstance(g, h5py.Group) and SETTINGS in g.attrs]
        for key in sorted(resumes, key=lambda k: int(k.rsplit("_", 1)[-1])):
            snapshots[key] = _settings(group[key])
        if snapshots:
            out[name] = snapshots
    return out


def _settings(group: h5py.Group) -> dict[str, Any]:
    """One snapshot: when it was taken and each setting's value and unit."""
    a = group.attrs
    names = [str(_plain(n)) for n in np.atleast_1d(a[SETTINGS])]
    return {"time": str(_plain(a.get(SNAPSHOT_TIME, ""))),
            "settings": {n: {"value": _plain(a[n]), "units": str(_plain(a.get(f"{n}_units", "")))} for n in names}}


def _json(attrs: dict[str, Any], key: str, kind: type | tuple[type, ...], default: str = "{}") -> Any:
    """A JSON-valued attribute, checked to be of the expected kind."""
    value = json.loads(attrs.get(key, default))
    if not isinstance(value, kind):
        raise ValueError(f"attribute {key!r} is not a JSON {kind}")
    return value


def _open(path: Path) -> h5py.File:
    """Open for reading: plainly first, as an SWMR reader if a writer holds the file (:func:`_open_id`)."""
    return h5py.File(_open_id(path))


def _open_id(path: Path) -> h5py.h5f.FileID:
    """Open for reading through the low-level interface (half the cost of ``h5py.File``).

    Plainly first, as an SWMR reader if a writer holds the file. The plain open checks
    the file's end against the size its superblock records, so a truncated file fails at
    once; an SWMR reader skips that check (a live file grows) and would retry every
    metadata read of a truncated file for minutes. A file marked open for writing (a live
    run, or one left by a killed writer) refuses the plain open and is opened as an SWMR
    reader.
    """
    name = os.fsencode(path)
    reason = ""
    for retry in range(_TRUNCATED_RETRIES + 1):
        try:
            return h5py.h5f.open(name, h5py.h5f.ACC_RDONLY, fapl=_fapl())
        except OSError as exc:
            if not path.exists():  # asked only on failure: a reindex opens a thousand good files
                raise RunFileError(f"{path}: no such file") from None
            if path.is_dir():
                raise RunFileError(f"{path}: a folder, not a run file") from None
            # A live run's writer can flush a superblock whose end of file lies past the bytes
            # written so far (space allocated, its data on the way): for a moment the file reads
            # as truncated. It is one again a few ms later; a damaged file stays truncated.
            if "truncated file" in str(exc) and retry < _TRUNCATED_RETRIES:
                time.sleep(_TRUNCATED_WAIT)
                continue
            if any(text in str(exc) for text in _FATAL_OPEN_ERRORS):
                raise RunFileError(f"{path}: not a readable HDF5 run file ({_reason(exc)})") from None
            # the reason, not the exception: its traceback would hold the callers' frames (and the
            # objects they open on the file) in a reference cycle, and the file open in this process
            # until the garbage collector ran: a resume's read-write open then fails "already open
            # for read-only"
            reason = _reason(exc)
            break
    try:
        return h5py.h5f.open(name, h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=_fapl())
    except OSError:
        raise RunFileError(f"{path}: not a readable HDF5 run file ({reason})") from None


@functools.cache
def _fapl() -> h5py.h5p.PropFAID:
    """The file-access properties of a read (HDF5's defaults, as ``h5py.File`` sets them)."""
    return h5py.h5p.create(h5py.h5p.FILE_ACCESS)


def _reason(exc: OSError) -> str:
    """The HDF5 library's reason, without h5py's "Unable to synchronously open file" wrapping."""
    text = " ".join(str(exc).split())  # one line
    inner = text.find("(")
    return text[inner + 1:-1] if inner >= 0 and text.endswith(")") else text


@contextmanager
def _guard(file: Path, what: str) -> Iterator[None]:
    """Report damage found while reading ``what`` as a RunFileError naming both."""
    try:
        yield
    except RunFileError:
        raise
    except KeyError:
        raise RunFileError(f"{file}: no object {what!r} in this run file") from None
    except (OSError, RuntimeError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise RunFileError(f"{file}: cannot read {what!r}: damaged run file ({exc})") from None


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _journal(h5: h5py.File) -> list[JournalEntry]:
    if JOURNAL not in h5:
        return []
    g = h5[JOURNAL]
    return journal_entries({c: g[c] for c, *_ in JOURNAL_COLUMNS})


def journal_entries(columns: dict[str, h5py.Dataset], start: int = 0) -> list[JournalEntry]:
    """Journal rows from ``start`` on, as far as every column holds them (a live writer
    grows the columns one after the other); ``columns``: the journal datasets by name."""
    n = min(ds.shape[0] for ds in columns.values())
    cols = {c: ds[start:n] for c, ds in columns.items()}
    return [
        JournalEntry(
            index=int(cols["index"][i]),
            name=cols["name"][i].decode("utf-8"),
            status=cols["status"][i].decode("utf-8"),
            start=float(cols["start"][i]),
            end=float(cols["end"][i]),
            clock_start=float(cols["clock_start"][i]),
            clock_end=float(cols["clock_end"][i]),
        )
        for i in range(max(0, n - start))
    ]


def _index(out: dict[str, DatasetInfo], name: str, obj: Any) -> None:
    if isinstance(obj, h5py.Dataset) and "/" + name not in _NOT_DATA and not ("/" + name).startswith(_NOT_DATA_GROUPS):
        units = obj.attrs.get(UNITS)
        out["/" + name] = DatasetInfo(
            path="/" + name,
            shape=tuple(int(n) for n in obj.shape),
            dtype=str(obj.dtype),
            units=None if units is None else str(_plain(units)),
        )


def _writer_alive(attrs: dict[str, Any]) -> bool:
    """Is the process that wrote this "running" file still alive on this host?"""
    if attrs.get(RunAttr.WRITER_HOST) != socket.gethostname():
        return False  # cannot tell across hosts: report what the file shows as interrupted
    pid = int(attrs.get(RunAttr.WRITER_PID, -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # zombie: dead
    except OSError:
        return True
