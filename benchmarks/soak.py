"""Soak of the loopback stack: many pulse+read operations and SCPI queries, no leaks.

Through ``Bench.from_config()`` (the simulated bench behind real pyvisa/pyserial on
loopback sockets):

1. pulse+read operations on the board: ``--cells`` cell operations (default
   100,000), each a pulse on one cell followed by its verify read, sent as
   ``PULSE_BATCH`` frames of ``--batch`` cells (one round trip per batch: 100
   batches of 1,000 cells by default; a cell operation is counted once per cell
   per batch);
2. ``--queries`` SCPI queries (default 10,000), alternating ``*IDN?`` on the SMU
   and the scope through the drivers;
3. ``--reopen`` benches opened and closed (default 50);
4. ``--cycles`` more bench open/close cycles (default 200) after ``--warm-up`` ones
   (default 30), RSS sampled after each: the fitted growth per cycle (bytes) must be
   flat. The warm-up fills bounded caches (``urllib``'s URL-split cache of 128
   entries, pyvisa's per-session attribute names), which grow the first cycles.

Resident memory (psutil RSS) is sampled after a warm-up and at the end (growth
must stay under 10 %); threads and open file descriptors (sockets included) are
counted before the bench is opened and after it is closed, and before and after
the reopen loop (they must return to their starting counts).

    python benchmarks/soak.py            # full size
    python benchmarks/soak.py --cells 10000 --queries 1000 --reopen 5 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import threading
import time

import numpy as np
import psutil

from instruments.bench import Bench

WARM_UP_BATCHES = 5


def resources() -> dict[str, int]:
    """Live threads, open file descriptors and resident memory (bytes) of this process."""
    gc.collect()
    proc = psutil.Process()
    return {"threads": threading.active_count(), "fds": proc.num_fds(), "rss": proc.memory_info().rss}


def settle(before: dict[str, int], timeout: float = 5.0) -> dict[str, int]:
    """Counts after closing, given up to ``timeout`` s for server threads to finish."""
    deadline = time.monotonic() + timeout
    now = resources()
    while (now["threads"] > before["threads"] or now["fds"] > before["fds"]) and time.monotonic() < deadline:
        time.sleep(0.05)
        now = resources()
    return now


def pulse_read(bench: Bench, n_cells: int, batch: int, rng: np.random.Generator) -> float:
    """``n_cells`` pulse+read cell operations in batches of ``batch``; returns wall time in s."""
    info = bench.macro_controller.info()
    size = info.n_macros * info.rows * info.cols
    start = time.perf_counter()
    done = 0
    while done < n_cells:
        n = min(batch, n_cells - done)
        flat = (done + np.arange(n)) % size
        m, r, c = np.unravel_index(flat, (info.n_macros, info.rows, info.cols))
        pol = rng.choice([-1, 1], n)
        bench.macro_controller.pulse_batch(m, r, c, pol, rng.uniform(0.8, 1.8, n), rng.uniform(50e-9, 500e-9, n),
                                rng.uniform(0.9, 1.5, n))
        done += n
    return time.perf_counter() - start


def reopen_growth(cycles: int, warm_up: int) -> float:
    """RSS growth per bench open/close cycle after ``warm_up`` cycles, bytes (least-squares slope)."""
    proc = psutil.Process()
    rss = []
    for k in range(warm_up + cycles):
        with Bench.from_config(seed=k) as bench:
            bench.smu.identify()
            bench.macro_controller.identify()
        if k >= warm_up:
            gc.collect()
            rss.append(proc.memory_info().rss)
    return float(np.polyfit(np.arange(len(rss)), np.asarray(rss, dtype=float), 1)[0]) if len(rss) > 1 else 0.0


def queries(bench: Bench, n: int) -> float:
    """``n`` SCPI queries alternating between SMU and scope; returns wall time in s."""
    start = time.perf_counter()
    for k in range(n):
        (bench.smu if k % 2 == 0 else bench.scope).identify()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000, help="pulse+read cell operations")
    parser.add_argument("--batch", type=int, default=1000, help="cells per PULSE_BATCH frame")
    parser.add_argument("--queries", type=int, default=10_000, help="SCPI queries")
    parser.add_argument("--reopen", type=int, default=50, help="benches opened and closed")
    parser.add_argument("--cycles", type=int, default=200, help="open/close cycles whose RSS growth is fitted")
    parser.add_argument("--warm-up", type=int, default=30, help="open/close cycles before those")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    for name in ("cells", "batch", "queries", "reopen", "cycles"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    rng = np.random.default_rng(0)

    start = resources()
    with Bench.from_config(seed=0) as bench:
        trips = bench.macro_controller.round_trips
        pulse_read(bench, WARM_UP_BATCHES * args.batch, args.batch, rng)
        queries(bench, 200)
        warm = resources()
        t_pulse = pulse_read(bench, args.cells, args.batch, rng)
        t_query = queries(bench, args.queries)
        end = resources()
        batches = bench.macro_controller.round_trips - trips
        retries = bench.macro_controller.retries
    closed = settle(start)

    before = resources()
    for k in range(args.reopen):
        with Bench.from_config(seed=k) as bench:
            bench.smu.identify()
    after = settle(before)
    growth = reopen_growth(args.cycles, args.warm_up)

    figures = {
        "cell_operations": args.cells, "batch": args.batch, "round_trips": batches, "retries": retries,
        "cells_per_s": args.cells / t_pulse, "queries": args.queries, "queries_per_s": args.queries / t_query,
        "rss_warm_MB": warm["rss"] / 1e6, "rss_end_MB": end["rss"] / 1e6,
        "rss_growth": end["rss"] / warm["rss"] - 1.0,
        "threads_start": start["threads"], "threads_open": end["threads"], "threads_closed": closed["threads"],
        "fds_start": start["fds"], "fds_open": end["fds"], "fds_closed": closed["fds"],
        "reopen": args.reopen, "threads_before_reopen": before["threads"], "threads_after_reopen": after["threads"],
        "fds_before_reopen": before["fds"], "fds_after_reopen": after["fds"],
        "rss_before_reopen_MB": before["rss"] / 1e6, "rss_after_reopen_MB": after["rss"] / 1e6,
        "cycles": args.cycles, "warm_up_cycles": args.warm_up, "rss_growth_per_cycle_B": growth,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{args.cells} pulse+read cell operations in batches of {args.batch}: {figures['cells_per_s']:.3g} "
              f"cells/s, {batches} round trips ({WARM_UP_BATCHES} warm-up), {retries} retries")
        print(f"{args.queries} SCPI queries: {figures['queries_per_s']:.0f} queries/s")
        print(f"RSS after warm-up {figures['rss_warm_MB']:.1f} MB, at the end {figures['rss_end_MB']:.1f} MB: "
              f"growth {100 * figures['rss_growth']:.2f} % (limit 10 %)")
        print(f"threads {start['threads']} -> {end['threads']} open -> {closed['threads']} closed; "
              f"fds {start['fds']} -> {end['fds']} open -> {closed['fds']} closed")
        print(f"{args.reopen} benches opened and closed: threads {before['threads']} -> {after['threads']}, "
              f"fds {before['fds']} -> {after['fds']}, RSS {figures['rss_before_reopen_MB']:.1f} -> "
              f"{figures['rss_after_reopen_MB']:.1f} MB")
        print(f"{args.cycles} open/close cycles after {args.warm_up} warm-up ones: RSS grows "
              f"{growth / 1024:.2f} KiB per cycle (least-squares slope)")
    return figures


if __name__ == "__main__":
    main()
