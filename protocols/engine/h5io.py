"""Opening HDF5 run files with one file format and one kind of error; creating attributes fast."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from analysis.run_reader import RunFileError  # one error for an unreadable run file, writer and reader alike

# File format of HDF5 1.10: SWMR-capable and readable by the 1.10 tools (h5dump)
# still shipped by many distributions; "latest" would lock those out.
LIBVER = ("v110", "v110")


def open_h5(path: Path, mode: str, **kwargs: Any) -> h5py.File:
    """Open an HDF5 file, turning "not a file / not HDF5 / truncated" into RunFileError."""
    try:
        return h5py.File(path, mode, **kwargs)
    except FileNotFoundError:
        raise RunFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise RunFileError(f"{path}: not a readable HDF5 run file ({exc})") from None


def open_dataset(parent: h5py.Group, path: str) -> h5py.Dataset:
    """``parent[path]`` for a dataset, in half the time (no link-type and object-type lookups)."""
    return h5py.Dataset(h5py.h5d.open(parent.id, path.encode("utf-8")))


def open_dataset_id(parent: h5py.Group | h5py.h5g.GroupID, path: str) -> h5py.h5d.DatasetID:
    """The low-level id of dataset ``parent[path]``: for datasets only written to, which need
    no ``h5py.Dataset`` (making one asks HDF5 for its creation properties: ~20 us)."""
    return h5py.h5d.open(parent.id if isinstance(parent, h5py.Group) else parent, path.encode("utf-8"))


def open_group(parent: h5py.Group, path: str) -> h5py.Group:
    """``parent[path]`` for a group, in a third of the time."""
    return h5py.Group(h5py.h5g.open(parent.id, path.encode("utf-8")))


#: What h5py stores a Python ``str`` attribute as: a variable-length UTF-8 string.
_STR = h5py.string_dtype()


def new_attrs(obj: h5py.HLObject, values: Mapping[str, Any]) -> None:
    """Set attributes of ``obj`` as ``obj.attrs[k] = v`` would, fast for names it does not have yet.

    Same types and shapes as h5py gives them (``str`` and lists of them: variable-length
    UTF-8; numbers and bools: their numpy type), in a third of the time: h5py's
    ``attrs[k] = v`` makes two datatypes and a dataspace and looks the name up on every
    call (~130 us each); here those are made once per kind of value and reused (~40 us).
    Values of other kinds, and names ``obj`` already has, go through h5py's own ``attrs``.
    """
    oid = obj.id
    for name, value in values.items():
        data = _attr_data(value)
        if data is None:
            obj.attrs[name] = value
            continue
        htype, mtype, space = _attr_types(data.dtype.kind, data.dtype.str, data.shape)
        try:
            attr = h5py.h5a.create(oid, name.encode("utf-8"), htype, space)
        except OSError:  # the name exists (h5py replaces it); any other failure h5py raises again
            obj.attrs[name] = value
            continue
        try:
            attr.write(data, mtype=mtype)
        finally:
            attr.close()


def overwrite_attrs(obj: h5py.HLObject | h5py.h5o.ObjectID, values: Mapping[str, Any]) -> None:
    """Write new values into existing attributes of ``obj``, in place (type and shape kept,
    allowed in SWMR mode): numbers, and ``str`` into variable-length string attributes
    (the kinds :func:`new_attrs` makes). ~20 us each, where h5py's ``attrs.modify`` takes
    ~140 us; a quarter less than making the attribute. ``obj``: the object, or its low-level id."""
    oid = obj.id if isinstance(obj, h5py.HLObject) else obj
    for name, value in values.items():
        data = _attr_data(value)
        if data is None:
            raise TypeError(f"attribute {name}: cannot overwrite with a {type(value).__name__}")
        attr = h5py.h5a.open(oid, name.encode("utf-8"))
        try:  # the memory type made once per kind: h5py would make it anew, half the write's time
            attr.write(data, mtype=_attr_types(data.dtype.kind, data.dtype.str, data.shape)[1])
        finally:
            attr.close()


def _attr_data(value: Any) -> np.ndarray | None:
    """``value`` as the array h5py would write for it, or None for kinds left to h5py."""
    strings = isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value)
    if isinstance(value, str) or strings:
        return np.array(value, dtype=_STR)
    if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
        return np.asarray(value)
    return None


@functools.lru_cache(maxsize=64)
def _attr_types(kind: str, dtype: str, shape: tuple[int, ...]) -> tuple[Any, Any, Any]:
    """File type, memory type and dataspace of an attribute (h5py's ``AttributeManager.create``)."""
    np_type = _STR if kind == "O" else np.dtype(dtype)
    return (h5py.h5t.py_create(np_type, logical=True), h5py.h5t.py_create(np_type),
            h5py.h5s.create_simple(shape))
