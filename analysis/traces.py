"""Scope traces from run files, streamed: never more than one block of rows in memory.

:meth:`TraceStream.iter_volts` reads acquisitions in blocks of about 2 MB of raw
codes and converts them with the stored preamble, so a report on gigabytes of
waveforms stays within tens of MB (``benchmarks/bench_report.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from analysis.run_reader import Run
from analysis.schema import CHANNEL, PREAMBLE_FIELDS, PREAMBLE_SET, SCOPE

TRACE_BLOCK_BYTES = 2 << 20  # bytes of raw codes read per block when streaming traces


@dataclass(frozen=True)
class TraceStream:
    """One scope trace stream: ``count`` acquisitions of ``points`` samples.

    ``x_increment`` (s), ``x_origin`` (s), ``y_increment`` (V), ``y_origin`` (V) and the
    references come from the stored preamble (NaN if no trace was ever recorded).
    """

    path: Path
    name: str
    channel: str
    count: int
    points: int
    x_increment: float
    x_origin: float
    x_reference: float
    y_increment: float
    y_origin: float
    y_reference: float

    def time(self) -> np.ndarray:
        """Sample times (s) of every acquisition, shape (points,)."""
        return (np.arange(self.points) - self.x_reference) * self.x_increment + self.x_origin

    def to_volts(self, codes: np.ndarray) -> np.ndarray:
        """Raw codes to V with the stream's preamble (float32: 4 bytes a sample)."""
        return ((codes.astype(np.float32) - np.float32(self.y_reference)) * np.float32(self.y_increment)
                + np.float32(self.y_origin))

    def iter_volts(self, rows: int | None = None, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, volts)`` blocks of at most ``rows`` acquisitions (V), in order.

        rows: acquisitions per block (>= 1); default about 2 MB of raw codes (as int16).
        stop: read only the first ``stop`` acquisitions (default all).
        """
        if rows is None:
            rows = max(1, TRACE_BLOCK_BYTES // max(1, self.points * 2))
        if rows < 1:
            raise ValueError(f"rows: must be >= 1, got {rows}")
        end = self.count if stop is None else min(stop, self.count)
        with h5py.File(self.path, "r", swmr=True) as h5:
            ds = h5[f"{SCOPE}/{self.name}"]
            for first in range(0, end, rows):
                yield first, self.to_volts(ds[first:min(first + rows, end)])

    def volts(self, index: np.ndarray | list[int]) -> np.ndarray:
        """Selected acquisitions (sorted, unique row indices) in V, shape (k, points)."""
        index = np.unique(np.asarray(index, dtype=np.int64))
        if index.size and (index[0] < 0 or index[-1] >= self.count):
            raise ValueError(f"index: acquisitions 0..{self.count - 1} exist, got {index.tolist()}")
        with h5py.File(self.path, "r", swmr=True) as h5:
            return self.to_volts(h5[f"{SCOPE}/{self.name}"][index])


def load_traces(run: Run) -> list[TraceStream]:
    """Every scope trace stream of the run (metadata only; samples are streamed on demand)."""
    out = []
    for path, info in run.datasets.items():
        if not path.startswith(SCOPE + "/") or len(info.shape) != 2:
            continue
        name = path.rsplit("/", 1)[1]
        a = run.attrs(path)
        pre = {k: float(a.get(k, np.nan)) for k, _ in PREAMBLE_FIELDS}
        count = info.shape[0] if int(a.get(PREAMBLE_SET, 1)) else 0
        out.append(TraceStream(run.path, name, str(a.get(CHANNEL, "")), count, info.shape[1], **pre))
    return out


@dataclass(frozen=True)
class TraceEnvelope:
    """Per-sample minimum, mean and maximum over all acquisitions (V, shape (points,)),
    the final value of each acquisition (V, (count,)) and a few example traces (V)."""

    minimum: np.ndarray
    mean: np.ndarray
    maximum: np.ndarray
    final: np.ndarray
    examples: np.ndarray
    example_index: np.ndarray


def trace_envelope(stream: TraceStream, examples: int = 6) -> TraceEnvelope:
    """Envelope of every acquisition of ``stream``, read block by block (memory: one block).

    examples: number of evenly spaced acquisitions kept whole (>= 0).
    """
    if examples < 0:
        raise ValueError(f"examples: must be >= 0, got {examples}")
    lo = np.full(stream.points, np.inf, np.float32)
    hi = np.full(stream.points, -np.inf, np.float32)
    total = np.zeros(stream.points, np.float64)
    final = np.empty(stream.count, np.float32)
    pick = np.unique(np.linspace(0, stream.count - 1, min(examples, stream.count)).astype(int))
    kept = np.empty((pick.size, stream.points), np.float32)
    for first, block in stream.iter_volts():
        np.minimum(lo, block.min(axis=0), out=lo)
        np.maximum(hi, block.max(axis=0), out=hi)
        total += block.sum(axis=0, dtype=np.float64)
        final[first:first + len(block)] = block[:, -1]
        inside = (pick >= first) & (pick < first + len(block))
        kept[inside] = block[pick[inside] - first]
    mean = total / stream.count if stream.count else np.full(stream.points, np.nan)
    return TraceEnvelope(lo, mean, hi, final, kept, pick)
