"""noise-sweep 3x3 (x 2 models): a 2-worker local Dask cluster vs the same points in process.

Both paths run :func:`protocols.diffusion.simulated_sweep.run_point` on the same 18 points (read
noise 0.5/1/2 x write noise 0.5/1/2 x noise-trained and plain ring models). The
cluster time includes starting and closing the LocalCluster, as a user of
``rrambench run noise-sweep`` pays it; the time without it is printed too. Each
worker maps the models once (cached per process), as the serial run does.

Run: ``python benchmarks/bench_noise_sweep.py [--samples N] [--workers W]``
"""

from __future__ import annotations

import argparse
import json
import time

from protocols.diffusion.noise_sweep import run_grid
from protocols.diffusion.simulated_sweep import SweepPoint


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="samples per experiment")
    parser.add_argument("--workers", type=int, default=2, help="local cluster worker processes")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    levels = (0.5, 1.0, 2.0)
    points = [SweepPoint(m, r, w, args.samples, 1500, 60.0, 0)
              for m in ("ring", "ring-plain") for r in levels for w in levels]
    first: list[float] = []

    def on_result(index: int, result: dict) -> None:
        if not first:
            first.append(time.perf_counter())

    start = time.perf_counter()
    run_grid(points, lambda i, r: None, scheduler="serial")
    serial = time.perf_counter() - start

    start = time.perf_counter()
    run_grid(points, on_result, scheduler="local", workers=args.workers)
    cluster = time.perf_counter() - start
    startup = first[0] - start  # cluster start + first point (includes the workers' model mapping)
    figures = {"experiments": len(points), "samples": args.samples, "workers": args.workers, "serial_s": serial,
               "cluster_s": cluster, "first_result_s": startup, "speed_up": serial / cluster}
    if args.json:
        print(json.dumps(figures))
        return figures
    print(f"{len(points)} experiments x {args.samples} samples")
    print(f"serial (in process):          {serial:7.2f} s")
    print(f"local cluster, {args.workers} workers:     {cluster:7.2f} s  (first result after {startup:.2f} s)")
    print(f"speed-up:                     {serial / cluster:7.2f}x")
    return figures


if __name__ == "__main__":
    main()
