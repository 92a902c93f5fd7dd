"""Write-verify of two full macros (2048 cells): loopback link vs the same algorithm in process.

Both sides run :func:`protocols.characterization.write_verify_algorithm.write_verify` with the same
defaults and the same random targets (2..65 uS) on worlds of the same seed: once
through the controller driver, pyserial ``socket://`` and the board emulator (the
default simulated bench), once on :class:`instruments.sim.direct.DirectArrayAccess`.
Prints cells/s, pulses/s, round trips and the wall-time ratio (target <= 1.5).

Run: ``python benchmarks/bench_write_verify.py [--repeats N]`` (default 5). After one untimed
warm-up run per side, the two sides alternate and the medians are compared, so load from other processes affects
both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from instruments.bench import Bench
from instruments.sim.direct import DirectArrayAccess
from instruments.sim.world import SimWorld
from protocols.characterization.write_verify_algorithm import write_verify

CELLS = np.unravel_index(np.arange(2048), (2, 32, 32))


def one_run(access, clock, target: np.ndarray) -> tuple[float, int, int]:
    """Wall time (s), pulses and iterations of one write-verify of the 2048 cells."""
    m, r, c = CELLS
    t0 = time.perf_counter()
    result = write_verify(access, m, r, c, target, now=clock.now, sleep=clock.sleep)
    return time.perf_counter() - t0, int(result.pulses.sum()), result.iterations


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (medians compared)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    target = np.random.default_rng(0).uniform(2e-6, 65e-6, 2048)
    loop, direct = [], []
    for k in range(-1, args.repeats):  # k = -1: warm-up (imports, first connection), not timed
        with Bench.from_config(seed=max(k, 0)) as bench:
            trips = bench.macro_controller.round_trips
            loop.append(one_run(bench.macro_controller, bench.clock, target))
            if bench.macro_controller.round_trips - trips != loop[-1][2]:
                raise RuntimeError("board round trips differ from the algorithm's iterations")
        world = SimWorld(seed=max(k, 0))
        direct.append(one_run(DirectArrayAccess(world), world.clock, target))
        if k < 0:
            loop.clear()
            direct.clear()
    t_loop = statistics.median(r[0] for r in loop)
    t_direct = statistics.median(r[0] for r in direct)
    figures = {
        "cells": 2048,
        "loopback_s": t_loop,
        "direct_s": t_direct,
        "ratio": t_loop / t_direct,
        "loopback_cells_per_s": 2048 / t_loop,
        "loopback_pulses_per_s": statistics.median(r[1] / r[0] for r in loop),
        "direct_cells_per_s": 2048 / t_direct,
        "direct_pulses_per_s": statistics.median(r[1] / r[0] for r in direct),
        "iterations": statistics.median(r[2] for r in loop),
        "round_trips_equal_iterations": True,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"write-verify of 2048 cells, median of {args.repeats} run(s) per side")
        print(f"  loopback: {t_loop * 1e3:8.1f} ms  {figures['loopback_cells_per_s']:9.0f} cells/s  "
              f"{figures['loopback_pulses_per_s']:9.0f} pulses/s  {figures['iterations']:.0f} round trips")
        print(f"  direct:   {t_direct * 1e3:8.1f} ms  {figures['direct_cells_per_s']:9.0f} cells/s  "
              f"{figures['direct_pulses_per_s']:9.0f} pulses/s")
        print(f"  ratio loopback / direct: {figures['ratio']:.2f} (target <= 1.5)")
    return figures


if __name__ == "__main__":
    main()
