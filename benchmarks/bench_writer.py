"""Run-file writer throughput against raw h5py, and its memory use.

Appends N scope traces of P int8 points (default 1,000 x 10,000) three ways, in
one run, into the same layout (chunked resizable dataset, SWMR, same chunk shape):

* through :class:`protocols.engine.run_writer.RunWriter` (``append_trace`` per trace, ``flush``
  every ``--per-flush`` traces, what the end of each step of a run makes visible to readers),
  and again ending each step as the run engine does (``end_step``: also a journal row);
* raw h5py appending the same traces one by one (resize + write each) with the same flushes;
* raw h5py writing the whole array in one call, twice: with the chunk cache off, as the
  writer opens its files (the strongest baseline: the rows go from the array straight to
  the file), and with h5py's default chunk cache (HDF5 2.0: 8 MiB), which first copies the
  chunks into freshly allocated cache memory and writes them at close. That copy and
  allocation make the default's time vary by half from minute to minute on the shared machine.

Prints the throughputs, the ratios (goals: writer/raw >= 0.8, writer/bulk >= 0.8 against
the strongest bulk write),
the run-file creation time within the writer's and the data path alone against bulk,
and the peak resident memory of child processes writing N/4 and N traces (it must
not grow with the number of traces).

The writer builds a run file's skeleton (every object that does not depend on the run)
once per declaration in a process and writes it out for each run. One untimed run file
first builds it, as the first run of a bench session does; its creation time is printed
on its own (``writer_create_first_ms``), the timed runs are the ones that follow.

Usage: python benchmarks/bench_writer.py [--traces N] [--points P] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from protocols.engine.datasets import Traces
from protocols.engine.h5io import LIBVER
from protocols.engine.run_writer import RunHeader, RunWriter

PREAMBLE = {"x_increment": 1e-7, "x_origin": 0.0, "x_reference": 0.0,
            "y_increment": 0.01, "y_origin": 0.0, "y_reference": 0.0}
POOL = 16  # distinct traces cycled through, so the source data does not grow with N


def trace_pool(points: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(-128, 128, size=(POOL, points), dtype=np.int8)


def writer_split(path: Path, n: int, pool: np.ndarray, per_flush: int, *,
                 journal: bool = False) -> tuple[float, float]:
    """(creation, total) wall time in s of one run file written through the writer.

    Creation is the run file's fixed cost (header attributes, journal, empty datasets,
    SWMR switch), paid once per run whatever its size; the rest is the data path.
    ``journal``: end each step as the run engine does (``end_step``: the flush, then a
    journal row and a second flush) instead of the flush alone.
    """
    spec = Traces("ch1", points=pool.shape[1], dtype="i1")
    header = RunHeader(protocol="bench", parameters={}, seed=0, started="t", steps_total=1)
    t0 = time.perf_counter()
    writer = RunWriter.create(path, header, [spec])
    created = time.perf_counter() - t0
    for i in range(n):
        writer.append_trace("ch1", pool[i % POOL], PREAMBLE)
        if (i + 1) % per_flush == 0:
            if journal:
                writer.end_step(i // per_flush, "step", "completed", start=0.0, end=0.0, clock_start=0.0,
                                clock_end=0.0)
            else:
                writer.flush()
    writer.close()
    return created, time.perf_counter() - t0


def via_writer(path: Path, n: int, pool: np.ndarray, per_flush: int) -> float:
    return writer_split(path, n, pool, per_flush)[1]


def via_raw_h5py(path: Path, n: int, pool: np.ndarray, per_flush: int) -> float:
    points = pool.shape[1]
    chunks = Traces("ch1", points=points, dtype="i1").chunks()
    t0 = time.perf_counter()
    with h5py.File(path, "x", libver=LIBVER) as h5:
        ds = h5.create_dataset("entry/instrument/scope/ch1", shape=(0, points), maxshape=(None, points),
                               dtype="i1", chunks=chunks)
        for key, value in PREAMBLE.items():
            ds.attrs[key] = value
        h5.swmr_mode = True
        for i in range(n):
            ds.resize(i + 1, axis=0)
            ds[i] = pool[i % POOL]
            if (i + 1) % per_flush == 0:
                h5.flush()
    return time.perf_counter() - t0


def via_bulk_h5py(path: Path, n: int, pool: np.ndarray, per_flush: int, *, cache: bool = False) -> float:
    """One bulk write of the n traces; ``cache``: with h5py's default chunk cache, else with it off."""
    points = pool.shape[1]
    data = np.resize(pool, (n, points))  # built before timing: the bulk write alone is measured
    chunks = Traces("ch1", points=points, dtype="i1").chunks()
    t0 = time.perf_counter()
    with h5py.File(path, "x", libver=LIBVER, **({} if cache else {"rdcc_nbytes": 0})) as h5:
        ds = h5.create_dataset("entry/instrument/scope/ch1", shape=data.shape, dtype="i1", chunks=chunks)
        ds[...] = data
    return time.perf_counter() - t0


def peak_rss_child(n: int, points: int, per_flush: int) -> int:
    """Peak resident memory (KiB) of a fresh process writing ``n`` traces through the writer."""
    code = (f"import sys, resource, tempfile, pathlib; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import bench_writer as b; d = tempfile.mkdtemp(); "
            f"b.via_writer(pathlib.Path(d) / 'm.h5', {n}, b.trace_pool({points}), {per_flush}); "
            f"print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--per-flush", type=int, default=100, help="traces per flush (per step)")
    parser.add_argument("--json", action="store_true", help="print only the figures, as one JSON line")
    args = parser.parse_args(argv)
    n, pool = args.traces, trace_pool(args.points)
    mbytes = n * args.points / 1e6
    times: dict[str, list[float]] = {"writer": [], "writer_steps": [], "raw": [], "bulk": [], "bulk_default": []}
    created: list[float] = []

    def writer(path: Path, n: int, pool: np.ndarray, per_flush: int) -> float:
        create, total = writer_split(path, n, pool, per_flush)
        created.append(create)
        return total

    def bulk_default(path: Path, n: int, pool: np.ndarray, per_flush: int) -> float:
        return via_bulk_h5py(path, n, pool, per_flush, cache=True)

    def writer_steps(path: Path, n: int, pool: np.ndarray, per_flush: int) -> float:
        return writer_split(path, n, pool, per_flush, journal=True)[1]

    funcs = {"writer": writer, "writer_steps": writer_steps, "raw": via_raw_h5py, "bulk": via_bulk_h5py,
             "bulk_default": bulk_default}
    with tempfile.TemporaryDirectory() as tmp:
        warm_up = Path(tmp) / "first.h5"
        create_first = writer_split(warm_up, min(n, POOL), pool, args.per_flush)[0]
        warm_up.unlink()
        for r in range(args.repeats):
            order = list(funcs) if r % 2 == 0 else list(reversed(funcs))
            for name in order:
                path = Path(tmp) / f"{name}-{r}.h5"
                times[name].append(funcs[name](path, n, pool, args.per_flush))
                path.unlink()  # dirty pages of earlier files must not slow the next write
    best = {k: statistics.median(v) for k, v in times.items()}
    create_s = statistics.median(created)
    rate = {k: mbytes / t for k, t in best.items()}
    result = {
        "traces": n, "points": args.points, "per_flush": args.per_flush,
        "writer_MB_per_s": rate["writer"], "raw_MB_per_s": rate["raw"], "bulk_MB_per_s": rate["bulk"],
        "bulk_default_MB_per_s": rate["bulk_default"],
        "writer_over_raw": rate["writer"] / rate["raw"], "writer_over_bulk": rate["writer"] / rate["bulk"],
        "writer_over_bulk_default": rate["writer"] / rate["bulk_default"],
        "writer_steps_over_bulk": rate["writer_steps"] / rate["bulk"],
        "journal_row_ms": 1e3 * (best["writer_steps"] - best["writer"]) / max(1, n // args.per_flush),
        "writer_create_ms": 1e3 * create_s,
        "writer_create_first_ms": 1e3 * create_first,
        "writer_data_over_bulk": best["bulk"] / (best["writer"] - create_s),
        "peak_rss_KiB_quarter": peak_rss_child(max(1, n // 4), args.points, args.per_flush),
        "peak_rss_KiB_full": peak_rss_child(n, args.points, args.per_flush),
        "this_process_peak_rss_KiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    if args.json:
        print(json.dumps(result))
        return result
    print(f"{n} traces x {args.points} int8 points ({mbytes:.0f} MB), flush every {args.per_flush}, "
          f"median of {args.repeats}")
    print(f"  writer (append_trace, same flushes)      {rate['writer']:8.1f} MB/s")
    print(f"  raw h5py, one by one, same flushes       {rate['raw']:8.1f} MB/s")
    print(f"  raw h5py, one bulk write, cache off      {rate['bulk']:8.1f} MB/s")
    print(f"  raw h5py, one bulk write, default cache  {rate['bulk_default']:8.1f} MB/s")
    print(f"  writer / raw  = {result['writer_over_raw']:.2f}  (goal >= 0.8)")
    print(f"  writer / bulk = {result['writer_over_bulk']:.2f}  (goal >= 0.8; the strongest bulk write, cache off)")
    print(f"  writer / bulk with the default cache = {result['writer_over_bulk_default']:.2f}")
    print(f"  writer ending each step with a journal row (end_step, as a run) / bulk = "
          f"{result['writer_steps_over_bulk']:.2f}; a journal row {result['journal_row_ms']:.2f} ms")
    print(f"  of the writer's time, run-file creation {result['writer_create_ms']:.1f} ms; "
          f"data path alone / bulk = {result['writer_data_over_bulk']:.2f}")
    print(f"  the first run file of the process (untimed, builds the skeleton): "
          f"creation {result['writer_create_first_ms']:.1f} ms")
    print(f"  peak RSS writing {max(1, n // 4)} traces: {result['peak_rss_KiB_quarter'] / 1024:.1f} MiB; "
          f"{n} traces: {result['peak_rss_KiB_full'] / 1024:.1f} MiB")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
