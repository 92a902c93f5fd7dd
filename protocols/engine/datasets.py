"""What a protocol records, declared before the run starts.

A protocol returns a list of these from ``datasets()``; the writer creates every
HDF5 object from them before it switches the file to SWMR mode (after which no
object can be added). Steps then append rows through ``Protocol.record*``.

* :class:`Stream`: a growing dataset of rows of a fixed ``shape``
  (``/entry/data/<name>``), e.g. one conductance map per read.
* :class:`Constant`: a fixed array written at creation, e.g. an axis (row index).
* :class:`Traces`: raw oscilloscope codes (int8 for BYTE, int16 for WORD), one row
  per acquisition, with the scope preamble as attributes
  (``/entry/instrument/scope/<name>``).
* :class:`PulseHistory`: the per-pulse table of write-verify (``/entry/pulses``).
* :class:`Link`: a second path (an HDF5 soft link, as NeXus uses them) to one of
  the objects above, e.g. ``/entry/samples/final`` -> ``/entry/data/final``.
* :class:`Plot`: the run's default plot (``/entry/plot``, an NXdata group of links to
  declared streams and constants), what NeXus viewers draw when they open the file.

Paths, attribute names and table columns come from :mod:`analysis.schema`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from analysis.schema import DATA, ENTRY, PLOT, PULSES, SCOPE


@dataclass(frozen=True)
class Stream:
    """Rows of ``shape`` appended step by step to ``/entry/data/<name>``.

    ``units``: SI unit of the values ("S", "V", "s"; "" for dimensionless).
    ``axes``: one name per dimension of the full dataset (rows first), each the
    name of another stream or constant, or "." (NeXus convention).
    ``chunk_rows``: rows per HDF5 chunk (default: about 1 MiB per chunk).
    """

    name: str
    units: str
    shape: tuple[int, ...] = ()
    dtype: str = "f8"
    axes: tuple[str, ...] | None = None
    long_name: str = ""
    chunk_rows: int | None = None

    @property
    def path(self) -> str:
        return f"{DATA}/{self.name}"

    def chunks(self) -> tuple[int, ...]:
        row_bytes = max(1, int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize)
        rows = self.chunk_rows or max(1, min(4096, (1 << 20) // row_bytes))
        return (rows, *self.shape)


@dataclass(frozen=True)
class Constant:
    """A fixed array written once at creation to ``/entry/data/<name>`` (axes, targets)."""

    name: str
    units: str
    data: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    long_name: str = ""

    @property
    def path(self) -> str:
        return f"{DATA}/{self.name}"


@dataclass(frozen=True)
class Traces:
    """Raw scope codes, one row of ``points`` per acquisition.

    ``dtype``: "i1" (BYTE format) or "i2" (WORD format). The preamble
    (x/y increment, origin, reference) is stored as attributes at the first trace;
    every later trace of the stream must share it (a new scope setup is a new stream).
    Volts are ``(code - y_reference) * y_increment + y_origin``.
    """

    name: str
    points: int
    dtype: str = "i1"
    channel: str = ""
    chunk_rows: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in ("i1", "i2", "u1", "u2"):
            raise ValueError(f"Traces.dtype must be i1, i2, u1 or u2, got {self.dtype!r}")
        if self.points < 1:
            raise ValueError(f"Traces.points must be >= 1, got {self.points}")

    @property
    def path(self) -> str:
        return f"{SCOPE}/{self.name}"

    def chunks(self) -> tuple[int, int]:
        row_bytes = self.points * np.dtype(self.dtype).itemsize
        # About 1 MiB per chunk, like streams. The writer's rows bypass HDF5's chunk cache,
        # so a step-end flush writes the step's rows of its last, partial chunk, not the
        # whole chunk (twice, when it fills later): small chunks no longer save bytes, and
        # bigger ones cost fewer chunk-index updates (~15% of the writes' time at 256 KiB).
        rows = self.chunk_rows or max(1, min(1024, (1 << 20) // row_bytes))
        return (rows, self.points)


@dataclass(frozen=True)
class PulseHistory:
    """The per-pulse table (one per run): cell, polarity, amplitude, width, gate, read, time."""

    chunk_rows: int = 8192

    @property
    def path(self) -> str:
        return PULSES


@dataclass(frozen=True)
class Link:
    """``path`` resolves to the declared object at ``target`` (an HDF5 soft link).

    Both are absolute paths under ``/entry``; ``target`` must be the path of a
    declared stream, constant, trace stream or the pulse table. Nothing is copied:
    reading ``path`` reads ``target``, units and all, rows included as they grow.
    """

    path: str
    target: str

    def __post_init__(self) -> None:
        for what, value in (("path", self.path), ("target", self.target)):
            if not value.startswith(f"{ENTRY}/") or value.endswith("/") or "//" in value:
                raise ValueError(f"Link.{what} must be an absolute path under /entry/, got {value!r}")
        if self.path == self.target:
            raise ValueError(f"Link.path and Link.target are both {self.path!r}")


INTERPRETATIONS = ("", "spectrum", "image")


@dataclass(frozen=True)
class Plot:
    """The run's default plot: ``/entry/plot``, an NXdata group whose members are soft
    links to declared streams and constants of ``/entry/data`` (nothing is copied).

    ``signal``: the plotted stream or constant. ``axes``: one name per dimension of the
    signal (a declared stream or constant, or "."); for a 1-D signal, two axes (x, y) of
    its length make a scatter of (x, y) coloured by the signal. ``interpretation``:
    "spectrum" (each row of the signal is a curve over the last axis, e.g. a one-row
    stream of per-cell values against a per-cell constant), "image" or "".
    The file's ``/entry`` then names it as its default (``/entry/data`` otherwise).
    """

    signal: str
    axes: tuple[str, ...]
    interpretation: str = ""
    title: str = ""

    def __post_init__(self) -> None:
        if self.interpretation not in INTERPRETATIONS:
            raise ValueError(f"Plot.interpretation must be one of {INTERPRETATIONS}, got {self.interpretation!r}")

    @property
    def path(self) -> str:
        return PLOT

    @property
    def scatter(self) -> bool:
        """A 1-D signal over two axes (checked against the declarations by :func:`check_specs`)."""
        return len(self.axes) == 2 and self.interpretation == "" and "." not in self.axes


Spec = Stream | Constant | Traces | PulseHistory | Link | Plot


def check_specs(specs: Sequence[Spec]) -> None:
    """Refuse duplicate names and axes that name nothing declared."""
    names = [s.name for s in specs if isinstance(s, (Stream, Constant, Traces))]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"dataset name(s) declared twice: {', '.join(dupes)}")
    if sum(isinstance(s, PulseHistory) for s in specs) > 1:
        raise ValueError("PulseHistory declared twice")
    data_names = {s.name for s in specs if isinstance(s, (Stream, Constant))}
    _check_links(specs)
    _check_plot(specs)
    for s in specs:
        if isinstance(s, Stream) and s.axes is not None:
            if len(s.axes) != 1 + len(s.shape):
                raise ValueError(f"{s.name}: axes needs {1 + len(s.shape)} names, got {len(s.axes)}")
            missing = [a for a in s.axes if a != "." and a not in data_names]
            if missing:
                raise ValueError(f"{s.name}: axes name undeclared dataset(s) {', '.join(missing)}")


def data_ndim(spec: Stream | Constant) -> int:
    """Dimensions of the dataset a stream (rows first) or a constant makes."""
    return 1 + len(spec.shape) if isinstance(spec, Stream) else np.asarray(spec.data).ndim


def _check_plot(specs: Sequence[Spec]) -> None:
    """At most one plot; its signal and axes name declared streams or constants, one axis per
    dimension of the signal (two for a scatter of a 1-D signal)."""
    plots = [s for s in specs if isinstance(s, Plot)]
    if len(plots) > 1:
        raise ValueError("Plot declared twice")
    if not plots:
        return
    plot, data = plots[0], {s.name: s for s in specs if isinstance(s, (Stream, Constant))}
    missing = [n for n in (plot.signal, *plot.axes) if n != "." and n not in data]
    if missing:
        raise ValueError(f"Plot names undeclared dataset(s) {', '.join(missing)}")
    ndim = data_ndim(data[plot.signal])
    if plot.scatter and not (ndim == 1 and all(data_ndim(data[a]) == 1 for a in plot.axes)):
        raise ValueError(f"Plot: a scatter of {plot.signal} needs it and both axes 1-D")
    if not plot.scatter and len(plot.axes) != ndim:
        raise ValueError(f"Plot: {plot.signal} has {ndim} dimensions, axes names {len(plot.axes)}")


def _check_links(specs: Sequence[Spec]) -> None:
    """Each link names a declared object and takes a path no object or other link holds."""
    objects = {s.path for s in specs if not isinstance(s, Link)}
    links = [s.path for s in specs if isinstance(s, Link)]
    for link in (s for s in specs if isinstance(s, Link)):
        if link.target not in objects:
            raise ValueError(f"link {link.path}: target {link.target!r} names no declared dataset")
        taken = [o for o in objects if o == link.path or o.startswith(link.path + "/")
                 or link.path.startswith(o + "/")]
        if taken or links.count(link.path) > 1:
            raise ValueError(f"link {link.path}: path already used by {taken[0] if taken else 'another link'}")
