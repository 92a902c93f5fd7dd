"""What the run catalogue knows about a run, read cheaply from its run file.

:func:`read_record` reads only what the catalogue indexes (the run attributes of
``/entry``, the run state, the journal's status column, the outcome and the sample),
through h5py's low-level interface: indexing a folder of a thousand runs must cost
little more than opening each file once, and the high-level attribute access costs
several times an open per attribute. :func:`analysis.run_reader.open_run` stays the
reader of record (datasets, snapshots, journal entries); this one never reads data.

A record is a plain JSON-serialisable dict (``RECORD_KEYS``): the watched helper
process of :mod:`analysis.isolation` sends it back as one line. Standard library,
numpy and h5py only, so that helper starts without SQLAlchemy.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from analysis.run_reader import RunFileError, _open_id, _writer_alive
from analysis.schema import (
    CATALOGUE_KEYS,
    COMPLETED,
    ENTRY,
    ERROR_BYTES,
    INTERRUPTED,
    JOURNAL,
    OUTCOME,
    OUTCOME_BYTES,
    RUN_FIELDS,
    RUNNING,
    SAMPLE,
    SCHEMA_VERSIONS,
    STATUS_BYTES,
    TIME_BYTES,
    RunAttr,
    RunField,
)

#: The sample keys the catalogue has a column for (filters such as ``--chip``); other keys
#: stay in the record's ``sample`` dict.
SAMPLE_KEYS = ("chip", "wafer", "die", "operator", "notes")
#: Every key of a record, in the catalogue's column order.
RECORD_KEYS = ("host", "path", "folder", "protocol", "status", "steps_completed", "steps_total", "started",
               "ended", "error", "simulated", "instruments", "sample", "parameters", "outcome", "seed",
               "world_seed", "writer_pid", "schema_version")

_ATTRS = (RunAttr.SCHEMA_VERSION, RunAttr.PROTOCOL, RunAttr.PARAMETERS, RunAttr.START_TIME, RunAttr.SEED,
          RunAttr.WORLD_SEED, RunAttr.SIMULATED, RunAttr.STEPS_TOTAL, RunAttr.INSTRUMENTS)
#: Datasets of ``/entry`` read by their name in it.
_IN_ENTRY = {OUTCOME: OUTCOME.removeprefix(f"{ENTRY}/")}
_WRITER = (RunAttr.WRITER_PID, RunAttr.WRITER_HOST)  # read only for a file that still says "running"


def new_record(path: str | Path, **fields: Any) -> dict[str, Any]:
    """A record of the run file at ``path`` on this host; ``fields`` are the other keys."""
    # strings, not Path objects, and the host name asked once: a reindex makes a thousand records
    path = os.path.abspath(path)
    record = {"host": _host(), "path": path, "folder": os.path.dirname(path)}
    record.update(fields)
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"record of {path} lacks {', '.join(missing)}")
    return record


@functools.cache
def _host() -> str:
    return socket.gethostname()


def read_record(path: str | Path) -> dict[str, Any]:
    """The catalogue record of the run file at ``path``; RunFileError if it is not a readable run file.

    A "running" file whose writer is gone reads "interrupted", as in ``open_run``. Run
    it in the watched helper (:func:`analysis.isolation.read_records`) for files of
    unknown health: a damaged file can make the HDF5 library loop.
    """
    fid = _open_id(Path(path))
    try:
        try:
            entry = h5py.h5g.open(fid, ENTRY.encode())
        except KeyError:
            raise RunFileError(f"{path}: HDF5 file but not an rrambench run file (no /entry)") from None
        fixed = _fixed_fields(path, fid, entry)
        status, ended, error = _run_state(entry)
        if status == RUNNING:
            fixed.update({name: _attr(entry, name) for name in _WRITER})
        # the engine ends a run "completed" only after its last step: the journal need not be read
        completed = int(fixed["steps_total"] or 0) if status == COMPLETED else _completed_steps(fid)
        outcome = {}
        if status == COMPLETED:
            outcome = json.loads(_optional(entry, _IN_ENTRY[OUTCOME], f"S{OUTCOME_BYTES}") or "{}")
    except RunFileError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError,
            UnicodeDecodeError, OverflowError) as exc:
        raise RunFileError(f"{path}: damaged or truncated run file ({type(exc).__name__}: {exc})") from None
    finally:
        fid.close()
    if not status:
        raise RunFileError(f"{path}: damaged run file (it records no status)")
    if status == RUNNING and not _writer_alive(fixed):
        status = INTERRUPTED
    if not isinstance(outcome, dict):
        raise RunFileError(f"{path}: damaged run file (/entry/outcome is not a JSON object)")
    return new_record(
        path, protocol=str(fixed["protocol"]), status=status, steps_completed=completed,
        steps_total=int(fixed["steps_total"] or 0), started=str(fixed["started"] or ""), ended=ended or None,
        error=error, simulated=bool(fixed["simulated"]), instruments=fixed["instruments"], sample=fixed["sample"],
        parameters=fixed["parameters"], outcome=outcome, seed=fixed["seed"], world_seed=fixed["world_seed"],
        writer_pid=int(fixed.get(RunAttr.WRITER_PID) or 0), schema_version=str(fixed["schema_version"]))


def _fixed_fields(path: Path, fid: h5py.h5f.FileID, entry: Any) -> dict[str, Any]:
    """What never changes after creation (``CATALOGUE_KEYS``), checked: from the ``catalogue``
    attribute (one read, schema 1.3), else from the run attributes and ``/entry/sample``."""
    text = _attr(entry, RunAttr.CATALOGUE)
    if text is not None:
        fixed = json.loads(text)
        if not isinstance(fixed, dict) or set(fixed) != set(CATALOGUE_KEYS):
            raise RunFileError(f"{path}: damaged run file (attribute {RunAttr.CATALOGUE!r} is not its JSON object)")
    else:
        a = {name: _attr(entry, name) for name in _ATTRS}
        fixed = {"schema_version": a[RunAttr.SCHEMA_VERSION], "protocol": a[RunAttr.PROTOCOL],
                 "started": a[RunAttr.START_TIME], "simulated": a[RunAttr.SIMULATED],
                 "steps_total": a[RunAttr.STEPS_TOTAL], "sample": _sample(fid),
                 **{key: _loads(a[name], default) for key, name, default in (
                     ("parameters", RunAttr.PARAMETERS, "{}"), ("instruments", RunAttr.INSTRUMENTS, "{}"),
                     ("seed", RunAttr.SEED, "null"), ("world_seed", RunAttr.WORLD_SEED, "null"))}}
    if fixed["protocol"] is None:
        raise RunFileError(f"{path}: HDF5 file but not an rrambench run file (no /entry protocol)")
    if fixed["schema_version"] not in SCHEMA_VERSIONS:
        raise RunFileError(f"{path}: run-file schema {fixed['schema_version']!r} unknown to this reader")
    for key, kind in (("parameters", dict), ("instruments", dict), ("sample", dict),
                      ("seed", (int, type(None))), ("world_seed", (int, type(None)))):
        if not isinstance(fixed[key], kind) or isinstance(fixed[key], bool):
            raise RunFileError(f"{path}: damaged run file ({key} is not a JSON {kind})")
    return fixed


def _attr(obj: Any, name: str) -> Any:
    """Attribute ``name`` of the low-level object ``obj`` as a plain value; None if absent."""
    try:
        attr = h5py.h5a.open(obj, name.encode())
    except KeyError:
        return None
    # The run attributes are scalars, mostly variable-length strings: read each as the schema
    # says with a memory type built once (asking an attribute its type and shape costs more
    # than the read); anything else fails that read and is read as it is.
    dtype, mtype = _KNOWN.get(name, _VLEN)
    out = np.zeros((), dtype=dtype)  # zeros, not empty: h5py frees what the object array held
    try:
        attr.read(out, mtype=mtype)
    except Exception:
        out = np.zeros(attr.shape, dtype=attr.dtype)
        attr.read(out)
    return _plain(out[()])


_VLEN = (h5py.string_dtype("utf-8"), h5py.h5t.py_create(h5py.string_dtype("utf-8")))
_KNOWN = {RunAttr.SIMULATED: (np.dtype(bool), h5py.h5t.py_create(np.dtype(bool))),
          RunAttr.STEPS_TOTAL: (np.dtype("i8"), h5py.h5t.py_create(np.dtype("i8"))),
          RunAttr.WRITER_PID: (np.dtype("i8"), h5py.h5t.py_create(np.dtype("i8")))}


def _dataset(loc: Any, path: str, dtype: str | None = None, shape: Any = None) -> Any:
    """The whole (small) dataset at ``path`` (from the file or group id ``loc``) as a plain
    value (an array if it is not scalar).

    ``dtype``: what the schema says it is, read without asking (``shape(ds)``: its shape; scalar
    if None)."""
    ds = h5py.h5d.open(loc, path.encode())
    if dtype is not None:
        out = np.zeros(() if shape is None else shape(ds), dtype=dtype)
        try:
            ds.read(h5py.h5s.ALL, h5py.h5s.ALL, out, mtype=_fixed_type(dtype))
            return _plain(out[()]) if out.ndim == 0 else out
        except Exception:
            pass  # not as the schema says: read it as it is
    out = np.zeros(ds.shape, dtype=ds.dtype)
    if out.size:
        ds.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return _plain(out[()]) if out.ndim == 0 else out


@functools.cache
def _fixed_type(dtype: Any) -> Any:
    return h5py.h5t.py_create(np.dtype(dtype))


def _optional(loc: Any, path: str, dtype: str | None = None, shape: Any = None) -> Any:
    """:func:`_dataset`, or None where the file (or group) has no such dataset."""
    try:
        return _dataset(loc, path, dtype, shape)
    except KeyError:
        return None


def _run_state(entry: Any) -> tuple[str, str, str]:
    """(status, end time, error) of the ``/entry`` group ``entry``: the run-state datasets
    (schema 1.1) or attributes (1.0). Opened from the group, not the file: each open by
    absolute path looks up ``/entry`` again."""
    try:
        status = str(_dataset(entry, RunField.STATUS, f"S{STATUS_BYTES}"))
    except KeyError:  # schema 1.0: the run state is in attributes
        return tuple(str(_attr(entry, name) or "") for name, *_ in RUN_FIELDS)
    ended = str(_dataset(entry, RunField.END_TIME, f"S{TIME_BYTES}"))
    # an error only where a run did not complete (it is 4 kB of mostly nothing)
    error = "" if status == COMPLETED else str(_dataset(entry, RunField.ERROR, f"S{ERROR_BYTES}"))
    return status, ended, error


def _completed_steps(fid: h5py.h5f.FileID) -> int:
    """Leading completed steps of the journal (its status column only)."""
    column = _optional(fid, f"{JOURNAL}/status", f"S{STATUS_BYTES}", lambda ds: ds.shape)
    done = 0
    for status in () if column is None else column:
        if _plain(status) != COMPLETED:
            break
        done += 1
    return done


def _sample(fid: h5py.h5f.FileID) -> dict[str, str]:
    """The NXsample group: key -> text (empty values dropped); {} in files without one."""
    try:
        group = h5py.h5g.open(fid, SAMPLE.encode())
    except KeyError:
        return {}
    out: dict[str, str] = {}
    for i in range(group.get_num_objs()):
        name = group.get_objname_by_idx(i).decode("utf-8")
        if group.get_objtype_by_idx(i) != h5py.h5g.DATASET:
            continue
        value = _dataset(fid, f"{SAMPLE}/{name}", _VLEN[0])
        text = str(value) if not isinstance(value, np.ndarray) else " ".join(str(_plain(v)) for v in value)
        if text:
            out[name] = text
    return out


def _loads(text: str | None, default: str) -> Any:
    return json.loads(text if text is not None else default)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8").rstrip("\x00")
    if isinstance(value, np.generic):
        return value.item()
    return value
