"""Typed views of run files, one per kind of data, over :func:`analysis.open_run`.

A loader reads what a protocol recorded into a small dataclass of numpy arrays in
SI units (S, V, A, s). Loaders are keyed on the datasets a file holds, not on the
protocol name alone, so a file from any protocol that recorded, say, a target and
a programmed conductance gets the programming view. Every loader works on a file
left by a killed writer: growing datasets are read as far as they were flushed and
streams that belong together are cut to their common length.

Scope traces live in :mod:`analysis.traces` (streamed, never read whole) and are
re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from analysis.run_reader import Run
from analysis.schema import DATA, PULSE_COLUMNS, PULSES, data_path
from analysis.traces import TraceEnvelope, TraceStream, load_traces, trace_envelope

__all__ = ["TraceEnvelope", "TraceStream", "load_traces", "trace_envelope"]  # re-exported, with the loaders


def has(run: Run, name: str) -> bool:
    """Does the run hold dataset ``name`` (absolute, or relative to ``/entry/data``)?"""
    return data_path(name) in run.datasets


def optional(run: Run, *names: str) -> np.ndarray | None:
    """The first of ``names`` the run holds, as an array; None if it holds none of them."""
    for name in names:
        if has(run, name):
            return np.asarray(run.read(name))
    return None


def units(run: Run, name: str) -> str:
    """The ``units`` attribute of dataset ``name`` ("" dimensionless or absent)."""
    info = run.datasets.get(data_path(name))
    return (info.units or "") if info else ""


def common_length(*arrays: np.ndarray | None) -> list[np.ndarray | None]:
    """Cut row-aligned streams to their common length (a killed writer may leave one row ahead)."""
    present = [a for a in arrays if a is not None]
    n = min((len(a) for a in present), default=0)
    return [None if a is None else a[:n] for a in arrays]


def growing_streams(run: Run) -> dict[str, tuple[int, ...]]:
    """Shape of every dataset under ``/entry/data`` (name -> shape)."""
    return {p.rsplit("/", 1)[1]: info.shape for p, info in run.datasets.items()
            if p.startswith(DATA + "/")}


# -- pulse history ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PulseTable:
    """A pulse history in recording order (arrays of equal length, one row per pulse).

    macro, row, col: cell address; polarity: +1 SET / -1 RESET; amplitude: V
    (magnitude); width: s; gate: V; read: verify read after the pulse, S; time: bench
    clock at the pulse, s (equal within one batch); step: index of the step that
    applied the pulse (None for a history not read from a run file).
    """

    macro: np.ndarray
    row: np.ndarray
    col: np.ndarray
    polarity: np.ndarray
    amplitude: np.ndarray
    width: np.ndarray
    gate: np.ndarray
    read: np.ndarray
    time: np.ndarray
    step: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.macro)
        for name, column in self._columns().items():
            if len(column) != n:
                raise ValueError(f"pulse column {name!r} has {len(column)} rows, macro has {n}")

    def __len__(self) -> int:
        return len(self.macro)

    def finite(self) -> PulseTable:
        """The pulses whose verify read and time are finite numbers."""
        ok = np.isfinite(np.asarray(self.read, float)) & np.isfinite(np.asarray(self.time, float))
        return PulseTable(**{name: np.asarray(column)[ok] for name, column in self._columns().items()})

    def _columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def load_pulses(run: Run) -> PulseTable | None:
    """The run's pulse table, None if the protocol declared none (cut to its shortest column)."""
    names = [column for column, *_ in PULSE_COLUMNS]
    if f"{PULSES}/{names[0]}" not in run.datasets:
        return None
    columns = common_length(*(run.read(f"{PULSES}/{c}") for c in names))
    return PulseTable(**dict(zip(names, columns, strict=True)))


# -- programming (write-verify, multilevel, pattern, program-model) ---------------------------
@dataclass(frozen=True)
class ProgrammingData:
    """Targets and outcome of programming cells (all conductances in S).

    ``target`` (n,); ``programmed`` (passes, n) read-back after each pass (last row is
    final); ``pulses_per_cell``, ``converged``, ``stuck`` of the last pass; ``readback``
    (reads, n) later reads if any; ``level`` (n,) level index and ``level_target``
    (levels,) S for multilevel runs; ``rms_error`` (iterations,) S; cell coordinates.
    """

    target: np.ndarray
    programmed: np.ndarray
    pulses_per_cell: np.ndarray | None
    converged: np.ndarray | None
    stuck: np.ndarray | None
    rms_error: np.ndarray | None
    readback: np.ndarray | None
    level: np.ndarray | None
    level_target: np.ndarray | None
    cell_macro: np.ndarray | None
    cell_row: np.ndarray | None
    cell_col: np.ndarray | None
    stuck_cells: np.ndarray | None = None
    pulses: PulseTable | None = None
    prefix: str = ""

    @property
    def final(self) -> np.ndarray:
        """Final read-back (S) of each cell; NaN where no pass completed (killed run)."""
        if len(self.programmed):
            return self.programmed[-1].astype(float)
        return np.full(self.target.shape, np.nan)

    @property
    def failed(self) -> np.ndarray | None:
        """Cells that failed to program in the last pass, (n,) bool: stuck or not converged.
        None when the run recorded neither flag (program-model, sample)."""
        if self.stuck is None and self.converged is None:
            return None
        bad = np.zeros(self.target.shape, bool)
        if self.stuck is not None and np.size(self.stuck) == bad.size:
            bad |= np.asarray(self.stuck, bool).ravel()
        if self.converged is not None and np.size(self.converged) == bad.size:
            bad |= ~np.asarray(self.converged, bool).ravel()
        return bad


def programming_prefixes(run: Run) -> list[str]:
    """Prefixes of the programming outcomes a run holds ("" for ``programmed``; e.g. "layer1_")."""
    names = growing_streams(run)
    found = sorted(n[: -len("programmed")] for n in names if n.endswith("programmed")
                   and f"{n[: -len('programmed')]}pulses_per_cell" in names)
    if not found and "programmed_conductance" in names and "target_conductance" in names:
        found = [""]  # program-model: conductances of the weight pairs
    return found


def load_programming(run: Run, prefix: str = "") -> ProgrammingData | None:
    """The programming view of the run (streams named ``<prefix>programmed`` etc.), or None."""
    target = optional(run, f"{prefix}target", "target", "target_conductance")
    programmed = optional(run, f"{prefix}programmed", "programmed_conductance")
    if target is None or programmed is None:
        return None
    target = target.astype(float).ravel()
    last = {k: optional(run, f"{prefix}{k}") for k in ("pulses_per_cell", "converged", "stuck")}
    programmed, *rest = common_length(programmed, *last.values())
    last = {k: (None if v is None or not len(v) else v[-1]) for k, v in zip(last, rest, strict=True)}
    return ProgrammingData(
        target=target, programmed=programmed.astype(float), **last,
        rms_error=optional(run, f"{prefix}rms_error"), readback=optional(run, f"{prefix}readback"),
        level=optional(run, "level"), level_target=optional(run, "level_target"),
        cell_macro=_cells(run, "cell_macro"), cell_row=_cells(run, "cell_row"),
        cell_col=_cells(run, "cell_col"), stuck_cells=optional(run, "stuck_cells"),
        pulses=load_pulses(run), prefix=prefix,
    )


def _cells(run: Run, name: str) -> np.ndarray | None:
    """Cell coordinates: a constant (n,), or the last row of a stream (rows, n)."""
    a = optional(run, name)
    if a is None or a.ndim == 1:
        return a
    return a[-1] if len(a) else None


# -- conductance maps ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MapStack:
    """Conductance maps ``maps`` (n, rows, cols) in S with their bench ``time`` (n,) s and
    ``macro`` (n,) when recorded."""

    name: str
    maps: np.ndarray
    time: np.ndarray | None
    macro: np.ndarray | None
    unit: str = "S"


def map_streams(run: Run) -> list[str]:
    """Names of the streams that hold 2-D maps per row with units S (conductance maps)."""
    return [n for n, shape in growing_streams(run).items()
            if len(shape) == 3 and units(run, n) == "S"]


def load_maps(run: Run, name: str) -> MapStack:
    """Stream ``name`` as a stack of maps, with the ``time`` and ``macro`` streams if present."""
    maps, time, macro = common_length(run.read(name), optional(run, "time"), optional(run, "macro"))
    return MapStack(name, maps.astype(float), time, macro, units(run, name))


# -- generic named streams ---------------------------------------------------------------------
@dataclass
class Streams:
    """Named arrays of one run (SI, units by name): what a figure family needs, nothing more."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray | None:
        return self.arrays.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.arrays


def load_streams(run: Run, names: list[str] | None = None) -> Streams:
    """Every (or the named) dataset under ``/entry/data`` with its units; missing names are skipped."""
    wanted = list(growing_streams(run)) if names is None else [n for n in names if has(run, n)]
    return Streams({n: np.asarray(run.read(n)) for n in wanted}, {n: units(run, n) for n in wanted})


# -- per-protocol views ---------------------------------------------------------------------------
@dataclass(frozen=True)
class IVData:
    """Quasi-static sweeps: ``voltage``/``current`` (cycles, points) in V/A, ``cell`` (cycles, 3)
    (macro, row, col), ``cycle`` (cycles,) index on its cell; ``v_set``/``v_reset`` (cycles,) V
    as the protocol extracted them (None if not recorded)."""

    voltage: np.ndarray
    current: np.ndarray
    cell: np.ndarray | None
    cycle: np.ndarray | None
    v_set: np.ndarray | None
    v_reset: np.ndarray | None


def load_iv(run: Run) -> IVData | None:
    """The I-V view (streams ``voltage`` in V and ``current`` in A), or None."""
    if not (has(run, "voltage") and has(run, "current")):
        return None
    v, i, cell, cycle, v_set, v_reset = common_length(
        run.read("voltage"), run.read("current"), optional(run, "cell"), optional(run, "cycle"),
        optional(run, "v_set"), optional(run, "v_reset"))
    if v.ndim == 1:  # one sweep stored point by point
        v, i = v[None, :], i[None, :]
    return IVData(v.astype(float), i.astype(float), cell, cycle, v_set, v_reset)


@dataclass(frozen=True)
class RetentionData:
    """Reads after programming: ``time`` (T,) s since programming, ``g`` (T, n) S, the
    cells' ``level`` (n,) index, ``level_target`` (L,) S and ``target`` (n,) S."""

    time: np.ndarray
    g: np.ndarray
    level: np.ndarray | None
    level_target: np.ndarray | None
    target: np.ndarray | None


def load_retention(run: Run) -> RetentionData | None:
    """The retention view (``conductance`` rows read at ``time_after``), or None."""
    if not (has(run, "time_after") and has(run, "conductance")):
        return None
    t, g = common_length(run.read("time_after"), run.read("conductance"))
    return RetentionData(t.astype(float), g.astype(float).reshape(len(g), -1), optional(run, "level"),
                         optional(run, "level_target"), optional(run, "target"))


@dataclass(frozen=True)
class ReadNoiseData:
    """Repeated reads: ``g`` (rows, n) S, one row per read, with the integration ``window``
    (rows,) s, the ``interval`` (rows,) s between reads of the series and the bench ``time``
    (rows,) s; ``target`` (n,) S."""

    g: np.ndarray
    window: np.ndarray
    interval: np.ndarray
    time: np.ndarray
    target: np.ndarray | None

    def series(self) -> list[tuple[float, float, np.ndarray, np.ndarray]]:
        """One ``(window s, interval s, times (R,) s, reads (R, n) S)`` per window and interval."""
        keys = np.stack([self.window, self.interval], axis=1)
        uniq, first = np.unique(keys, axis=0, return_index=True)
        order = np.argsort(first)
        return [(float(w), float(iv), self.time[m], self.g[m]) for (w, iv) in uniq[order]
                for m in [(self.window == w) & (self.interval == iv)]]


def load_read_noise(run: Run) -> ReadNoiseData | None:
    """The read-noise view (``conductance`` with ``window`` per row), or None."""
    if not (has(run, "window") and has(run, "conductance")):
        return None
    g, w, iv, t = common_length(run.read("conductance"), run.read("window"), optional(run, "interval"),
                                optional(run, "time"))
    iv = np.zeros(len(g)) if iv is None else iv
    t = np.arange(len(g), dtype=float) if t is None else t
    return ReadNoiseData(g.astype(float).reshape(len(g), -1), w.astype(float), iv.astype(float),
                         t.astype(float), optional(run, "target"))


@dataclass(frozen=True)
class WriteNoiseData:
    """Repeated programming of the same targets: ``readback`` (cycles, n) S after each
    programming, ``erased`` (cycles, n) S after each erase, ``target`` (n,) S."""

    readback: np.ndarray
    erased: np.ndarray | None
    target: np.ndarray


def load_write_noise(run: Run) -> WriteNoiseData | None:
    """The write-noise view (``readback`` and ``erased`` per cycle), or None."""
    if not (has(run, "erased") and has(run, "readback") and has(run, "target")):
        return None
    rb, er = common_length(run.read("readback"), run.read("erased"))
    return WriteNoiseData(rb.astype(float), er.astype(float), run.read("target").astype(float).ravel())


@dataclass(frozen=True)
class FormData:
    """Forming of n cells: ``form_voltage`` (n,) V of the rung that formed each cell (NaN:
    failed), ``read_current`` (n,) A at the read bias afterwards, ``formed`` (n,) 0/1."""

    form_voltage: np.ndarray
    read_current: np.ndarray
    formed: np.ndarray | None


def load_form(run: Run) -> FormData | None:
    """The forming view (last row of ``form_voltage`` and ``read_current``), or None."""
    if not (has(run, "form_voltage") and has(run, "read_current")):
        return None
    fv, rc, formed = common_length(run.read("form_voltage"), run.read("read_current"), optional(run, "formed"))
    if not len(fv):
        n = run.datasets[f"{DATA}/form_voltage"].shape[1:]
        return FormData(np.full(n, np.nan), np.full(n, np.nan), None)
    return FormData(fv[-1].astype(float), rc[-1].astype(float), None if formed is None else formed[-1])


@dataclass(frozen=True)
class WeightData:
    """A network mapped to conductance pairs: ``target_weight``/``programmed_weight`` (w,)
    dimensionless, and the programming of its conductances (``programming``)."""

    target_weight: np.ndarray
    programmed_weight: np.ndarray
    programming: ProgrammingData | None


def load_weights(run: Run) -> WeightData | None:
    """The program-model view (``target_weight`` and ``programmed_weight``), or None."""
    if not (has(run, "target_weight") and has(run, "programmed_weight")):
        return None
    pw = run.read("programmed_weight")
    tw = run.read("target_weight").astype(float)
    pw = pw[-1].astype(float) if len(pw) else np.full(tw.shape, np.nan)
    return WeightData(tw, pw, load_programming(run))
