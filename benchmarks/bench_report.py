"""`rrambench report` on a run of many scope waveforms: time and peak memory.

Writes a run file of N acquisitions of P points (default 1,000 x 10,000, int16 WORD
codes: 20 MB of codes, 80 MB as float64 volts) with :class:`protocols.engine.run_writer.RunWriter`,
then runs the report in a fresh child process and prints its wall time, the peak of
numpy/Python allocations (tracemalloc) and the peak resident memory over the child's
baseline (the same imports without the report). Reading must stream: the peaks stay
well below the file's uncompressed size.

Usage: python benchmarks/bench_report.py [--traces N] [--points P]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from protocols.engine.datasets import Traces
from protocols.engine.run_writer import RunHeader, RunWriter

PREAMBLE = {"x_increment": 1e-6, "x_origin": 0.0, "x_reference": 0.0,
            "y_increment": 5e-4, "y_origin": 0.0, "y_reference": 0.0}

CHILD = """
import json, resource, sys, time, tracemalloc
from analysis.report import report_run
import analysis.report_diffusion, matplotlib.backends.backend_agg
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1] == "report":
    tracemalloc.start()
    t0 = time.perf_counter()
    result = report_run(sys.argv[2], sys.argv[3])
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
elif sys.argv[1] == "whole":  # for contrast: the traces read whole, as Run.trace_volts does
    from analysis import open_run
    tracemalloc.start()
    t0 = time.perf_counter()
    open_run(sys.argv[2]).trace_volts("integrator_0").max(axis=0)
    wall, peak, result = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1], None
else:
    wall, peak, result = 0.0, 0, None
print(json.dumps({"wall": wall, "traced_peak": peak, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "rss_base": base * 1024, "figures": [] if result is None else [p.name for p in result.figures]}))
"""


def make_run(path: Path, traces: int, points: int) -> None:
    """A completed run file holding ``traces`` acquisitions of ``points`` int16 codes."""
    header = RunHeader(protocol="bench-traces", parameters={"traces": traces, "points": points}, seed=0,
                       started="2026-01-01T00:00:00Z", steps_total=1)
    writer = RunWriter.create(path, header, [Traces("integrator_0", points=points, dtype="i2", channel="CHAN1")])
    rng = np.random.default_rng(0)
    t = np.arange(points) / points
    for k in range(traces):
        wave = 2000 * np.exp(-3 * t) * rng.normal(1, 0.2) + rng.normal(0, 20, points)  # a decaying integrator
        writer.append_trace("integrator_0", wave.astype(np.int16), PREAMBLE)
        if k % 100 == 99:
            writer.flush()
    writer.end_step(0, "acquire", "completed", start=0.0, end=1.0, clock_start=0.0, clock_end=1.0)
    writer.finish("completed", ended="2026-01-01T00:00:01Z")


def child(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traces.h5"
        t0 = time.perf_counter()
        make_run(path, args.traces, args.points)
        written = time.perf_counter() - t0
        codes = args.traces * args.points * 2
        volts = args.traces * args.points * 8
        base = child("baseline")
        rep = child("report", str(path), str(Path(tmp) / "report"))
        whole = child("whole", str(path))
    mb = 1e6
    figures = {
        "traces": args.traces, "points": args.points, "codes_MB": codes / mb, "volts_MB": volts / mb,
        "write_s": written, "report_s": rep["wall"], "report_traced_peak_MB": rep["traced_peak"] / mb,
        "peak_over_volts": rep["traced_peak"] / volts, "whole_traced_peak_MB": whole["traced_peak"] / mb,
        "report_rss_MB": rep["rss"] / mb, "baseline_rss_MB": base["rss"] / mb,
        "rss_growth_MB": (rep["rss"] - base["rss"]) / mb, "rss_growth_over_volts": (rep["rss"] - base["rss"]) / volts,
    }
    if args.json:
        print(json.dumps(figures))
        return figures
    print(f"run file: {args.traces} traces x {args.points} points, int16 codes {codes / mb:.1f} MB "
          f"(float64 volts {volts / mb:.1f} MB), written in {written:.2f} s")
    print(f"report: {rep['wall']:.2f} s, figures {', '.join(rep['figures'])}")
    print(f"peak traced allocations (numpy + Python): {rep['traced_peak'] / mb:.1f} MB "
          f"= {rep['traced_peak'] / codes:.2f} x the codes, {rep['traced_peak'] / volts:.2f} x the volts")
    print(f"for contrast, reading the traces whole (Run.trace_volts): peak traced {whole['traced_peak'] / mb:.1f} MB, "
          f"peak RSS {whole['rss'] / mb:.1f} MB")
    print(f"peak RSS: {rep['rss'] / mb:.1f} MB, baseline after imports {base['rss'] / mb:.1f} MB, "
          f"growth {(rep['rss'] - base['rss']) / mb:.1f} MB = {(rep['rss'] - base['rss']) / volts:.2f} x the volts")
    return figures


if __name__ == "__main__":
    main()
