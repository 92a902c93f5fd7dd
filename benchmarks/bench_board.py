"""Batched pulse + read of all 2048 cells of two macros over the serial loopback.

Measures, for one write-verify iteration (a pulse on every cell, then the verify
read of every cell, returned in the same reply):

- round trips per batch (must be exactly 1: one PULSE_BATCH frame of 2048 cells);
- cells/s through the driver, pyserial ``socket://``, the loopback server and the
  board emulator;
- bytes on the wire per cell (request + reply, COBS and delimiters included);
- the ratio of wall time to the same operations called in-process on the world
  (``world.pulse`` + ``world.read`` with the same per-cell arrays); target <= 3.0.

Run: ``python benchmarks/bench_board.py [--repeats N]``. Driver and in-process
timings are interleaved and the medians compared, so load from other processes
affects both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from instruments.limits import Limits
from instruments.macro_controller import MacroController
from instruments.serial_link import SerialLink
from instruments.sim.macro_controller import MacroControllerEmulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld

CELLS = np.unravel_index(np.arange(2048), (2, 32, 32))


def iteration(n: int, rng: np.random.Generator):
    """Per-cell pulse parameters of one write-verify iteration."""
    pol = rng.choice([-1, 1], n)
    return pol, rng.uniform(0.8, 1.8, n), rng.uniform(50e-9, 500e-9, n), rng.uniform(0.9, 1.5, n)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="timed batches per side")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)

    world, twin = SimWorld(seed=0), SimWorld(seed=0)
    board = MacroControllerEmulator(world)
    rng = np.random.default_rng(1)
    with LoopbackServer(board.handle, delimiter=b"\x00", name="macro_controller") as server, \
            SerialLink.open(server.url, timeout=5.0) as link:
        ctl = MacroController(link, Limits())
        m, r, c = CELLS
        remote, local, wire = [], [], []
        for k in range(args.repeats + 3):
            pol, amp, wid, gate = iteration(m.size, rng)
            trips, sent, got = ctl.round_trips, link.bytes_written, link.bytes_read
            t0 = time.perf_counter()
            ctl.pulse_batch(m, r, c, pol, amp, wid, gate)
            t1 = time.perf_counter()
            if ctl.round_trips - trips != 1:
                raise RuntimeError(f"batch took {ctl.round_trips - trips} round trips, expected 1")
            wire.append(link.bytes_written - sent + link.bytes_read - got)
            t2 = time.perf_counter()
            twin.pulse(m, r, c, pol, amp, wid, gate)
            twin.read(m, r, c, bias=0.1, window=1e-6)
            t3 = time.perf_counter()
            if k >= 3:  # warm-up done
                remote.append(t1 - t0)
                local.append(t3 - t2)
    t_remote, t_local = statistics.median(remote), statistics.median(local)
    figures = {
        "cells": int(m.size),
        "round_trips_per_batch": 1,
        "cells_per_s": m.size / t_remote,
        "bytes_per_cell": statistics.median(wire) / m.size,
        "wall_ms_link": 1e3 * t_remote,
        "wall_ms_in_process": 1e3 * t_local,
        "ratio": t_remote / t_local,
        "retries": ctl.retries,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"batched pulse+read of {figures['cells']} cells (two macros), median of {args.repeats}:")
        print(f"  round trips per batch      {figures['round_trips_per_batch']}")
        print(f"  cells/s over the link      {figures['cells_per_s']:.3g}")
        print(f"  bytes on the wire per cell {figures['bytes_per_cell']:.2f}")
        print(f"  wall time link / in-process {figures['wall_ms_link']:.3f} ms / "
              f"{figures['wall_ms_in_process']:.3f} ms = {figures['ratio']:.2f} (target <= 3.0)")
    return figures


if __name__ == "__main__":
    main()
