"""Run every benchmark and print one table: figure, target, measured, pass/fail.

Each benchmark script runs in its own fresh Python process with ``--json`` (so its
memory figures are its own and a GUI benchmark gets its own Qt), one after the
other, never in parallel: the figures are ratios of two things measured in the
same run on a shared 2-core machine.

    python benchmarks/run_all.py                 # the sizes the issues specify
    python benchmarks/run_all.py --quick         # reduced sizes (a smoke run, minutes)
    python benchmarks/run_all.py --only scpi board --markdown

``--markdown`` prints the table as Markdown (pasted into docs/performance.md);
``--save FILE`` writes every benchmark's raw figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import operator
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
log = logging.getLogger("benchmarks.run_all")


@dataclass(frozen=True)
class Benchmark:
    """One benchmark script: its arguments at full and at quick size."""

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]


@dataclass(frozen=True)
class Figure:
    """One row of the table: a figure taken from a benchmark's JSON and its target.

    ``key`` picks the value out of the benchmark's figures; ``op`` and ``bound``
    form the target (``None``: the issue asks only to print the figure).
    """

    bench: str
    label: str
    key: str
    unit: str = ""
    op: str | None = None
    bound: float | None = None
    issue: int = 0

    def target(self) -> str:
        return "-" if self.op is None else f"{self.op} {self.bound:g}"

    def verdict(self, value: float) -> str:
        if self.op is None:
            return "info"
        compare: Callable[[float, float], bool] = {"<=": operator.le, ">=": operator.ge, "<": operator.lt}[self.op]
        return "pass" if compare(value, self.bound) else "FAIL"


BENCHMARKS = [
    Benchmark("circuit", "bench_circuit.py", (), ("--quick",)),
    Benchmark("scpi", "bench_scpi.py", (), ("--queries", "100", "--rounds", "3")),
    Benchmark("board", "bench_board.py", (), ("--repeats", "10")),
    Benchmark("writer", "bench_writer.py", (), ("--traces", "200", "--repeats", "1")),
    Benchmark("write_verify", "bench_write_verify.py", (), ("--repeats", "1")),
    Benchmark("sampling", "bench_sampling.py", (), ("--samples", "200")),
    Benchmark("report", "bench_report.py", (), ("--traces", "200")),
    Benchmark("noise_sweep", "bench_noise_sweep.py", (), ("--samples", "50")),
    Benchmark("gui", "bench_gui.py", (), ("--seconds", "1.5")),
    Benchmark("catalogue", "bench_catalogue.py", (), ("--runs", "10000", "--files", "200")),
    Benchmark("scaling", "bench_scaling.py", (), ("--quick",)),
]

FIGURES = [
    Figure("circuit", "analog loop / numpy, ODE, read noise on", "ratio_ode", "x", "<=", 3.0, 2),
    Figure("circuit", "analog loop / numpy, SDE, read noise on", "ratio_sde", "x", "<=", 3.0, 2),
    Figure("circuit", "peak traced memory, analog loop", "peak_traced_analog_MiB", "MiB", issue=2),
    Figure("circuit", "circuit-level loop / ideal loop, ODE, same physical time", "ratio_circuit_ode", "x", "<=", 5.0,
           14),
    Figure("circuit", "circuit-level loop / ideal loop, SDE, same physical time", "ratio_circuit_sde", "x", "<=", 5.0,
           14),
    Figure("scpi", "driver query / bare pyvisa query", "ratio", "x", "<=", 1.3, 3),
    Figure("scpi", "driver query round trip", "driver_us", "us", issue=3),
    Figure("board", "pulse+read 2048 cells, loopback / in-process", "ratio", "x", "<=", 3.0, 3),
    Figure("board", "round trips per batch", "round_trips_per_batch", "", "<=", 1, 3),
    Figure("board", "cells/s over the link", "cells_per_s", "1/s", issue=3),
    Figure("board", "bytes on the wire per cell", "bytes_per_cell", "B", issue=3),
    Figure("writer", "writer / raw h5py throughput", "writer_over_raw", "x", ">=", 0.8, 4),
    Figure("writer", "writer / one bulk h5py write, chunk cache off (the strongest)", "writer_over_bulk", "x", ">=",
           0.8, 19),
    Figure("writer", "writer / one bulk h5py write, h5py's default chunk cache", "writer_over_bulk_default", "x",
           issue=19),
    Figure("writer", "writer ending each step with a journal row (end_step) / bulk write", "writer_steps_over_bulk",
           "x", issue=19),
    Figure("writer", "one journal row (end_step beyond the flush)", "journal_row_ms", "ms", issue=19),
    Figure("writer", "run-file creation within the writer's time", "writer_create_ms", "ms", issue=19),
    Figure("writer", "writer data path (creation excluded) / bulk write", "writer_data_over_bulk", "x", issue=19),
    Figure("writer", "peak RSS N traces / N/4 traces", "rss_full_over_quarter", "x", "<=", 1.2, 4),
    Figure("write_verify", "write-verify 2048 cells, loopback / direct", "ratio", "x", "<=", 1.5, 19),
    Figure("write_verify", "write-verify loopback / direct, the process on one CPU (no cross-CPU wake-up)",
           "one_cpu_ratio", "x", issue=19),
    Figure("write_verify", "write-verify over loopback", "loopback_cells_per_s", "cells/s", issue=5),
    Figure("write_verify", "write-verify over loopback", "loopback_pulses_per_s", "pulses/s", issue=5),
    Figure("sampling", "ring sampling, simulated bench / numpy", "ratio", "x", issue=6),
    Figure("sampling", "simulated bench", "simulated_samples_per_s", "samples/s", issue=6),
    Figure("sampling", "physical time per sample on the circuit", "physical_s_per_sample", "s", issue=6),
    Figure("sampling", "software, one sample alone", "software_one_sample_s", "s", issue=6),
    Figure("report", "report wall time", "report_s", "s", issue=7),
    Figure("report", "report peak traced memory / float64 volts", "peak_over_volts", "x", "<=", 0.5, 7),
    Figure("report", "report RSS growth / float64 volts", "rss_growth_over_volts", "x", "<=", 0.5, 7),
    Figure("noise_sweep", "noise-sweep 3x3, 2 workers vs serial, speed-up", "speed_up", "x", issue=7),
    Figure("gui", "render rate, 4 x 10,000 points", "render_fps", "frames/s", ">=", 30, 8),
    Figure("gui", "live pipeline frames drawn", "pipeline_fps", "frames/s", issue=8),
    Figure("gui", "event-loop lateness p95", "lateness_p95_ms", "ms", issue=8),
    Figure("gui", "event-loop lateness p99", "lateness_p99_ms", "ms", issue=8),
    Figure("catalogue", "filtered query over 100,000 indexed runs (SQLite)", "query_ms", "ms", "<=", 50, 18),
    Figure("catalogue", "reindex 1,000 run files / opening each with h5py", "reindex_over_open", "x", "<=", 3.0, 18),
    Figure("scaling", "write-verify 64-8,192 cells: time/round trip, log-log slope", "write_verify_slope", "",
           "<=", 1.1, 19),
    Figure("scaling", "write-verify 8,192 cells: peak RSS", "write_verify_peak_rss_MiB", "MiB", issue=19),
    Figure("scaling", "run-file writer 100-10,000 traces: log-log slope", "writer_slope", "", "<=", 1.1, 19),
    Figure("scaling", "run-file writer 10,000 traces: peak RSS", "writer_peak_rss_MiB", "MiB", issue=19),
    Figure("scaling", "sampling 100-100,000 samples: log-log slope", "sampling_slope", "", "<=", 1.1, 19),
    Figure("scaling", "sampling 100,000 samples: peak RSS", "sampling_peak_rss_MiB", "MiB", issue=19),
    Figure("scaling", "report 10-100 run files: log-log slope", "report_slope", "", "<=", 1.1, 19),
    Figure("scaling", "report 100 run files: peak RSS", "report_peak_rss_MiB", "MiB", issue=19),
]


def derived(name: str, figures: dict) -> dict:
    """Figures computed from a benchmark's raw ones (e.g. the writer's memory independence)."""
    if name == "writer":
        figures["rss_full_over_quarter"] = figures["peak_rss_KiB_full"] / figures["peak_rss_KiB_quarter"]
    return figures


def run_benchmark(bench: Benchmark, quick: bool, timeout: float) -> dict:
    """Run one script in a fresh process with ``--json``; its figures plus ``wall_s``.

    ``timeout`` in s. A failed script yields ``{"error": message}``, never an exception:
    the table still shows the other benchmarks.
    """
    argv = [sys.executable, str(HERE / bench.script), "--json", *(bench.quick if quick else bench.full)]
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {tail}"}
    figures = derived(bench.name, json.loads(lines[-1]))
    figures["wall_s"] = wall
    return figures


def rows(results: dict[str, dict]) -> list[tuple[str, str, str, str, str]]:
    """Table rows (benchmark, figure, target, measured, verdict) for the benchmarks that ran."""
    out = []
    for fig in FIGURES:
        if fig.bench not in results:
            continue
        figures = results[fig.bench]
        label = f"{fig.label} [{fig.unit}]" if fig.unit else fig.label
        if "error" in figures:
            out.append((fig.bench, label, fig.target(), figures["error"], "FAIL" if fig.op else "error"))
            continue
        if figures.get(fig.key) is None and fig.op is None:  # not measurable here (one_cpu_ratio off Linux)
            out.append((fig.bench, label, fig.target(), "n/a", "info"))
            continue
        value = float(figures[fig.key])
        out.append((fig.bench, label, fig.target(), f"{value:.3g}", fig.verdict(value)))
    return out


def format_table(table: list[tuple[str, ...]], markdown: bool) -> str:
    head = ("benchmark", "figure", "target", "measured", "pass/fail")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in table]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [head, *table]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in table)])


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (smoke run)")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS], help="run only these")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--save", type=Path, help="write all raw figures to this JSON file")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per benchmark, s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    results: dict[str, dict] = {}
    for bench in BENCHMARKS:
        if args.only and bench.name not in args.only:
            continue
        log.info("running %s%s ...", bench.script, " (quick)" if args.quick else "")
        results[bench.name] = run_benchmark(bench, args.quick, args.timeout)
        log.info("  %s: %.1f s", bench.name, results[bench.name].get("wall_s", float("nan")))
    table = rows(results)
    sys.stdout.write(format_table(table, args.markdown) + "\n")
    if args.save:
        args.save.write_text(json.dumps(results, indent=1))
    failed = [r for r in table if r[4] in ("FAIL", "error")]
    sys.stdout.write(f"\n{len(table) - len(failed)} of {len(table)} rows pass or are informational; "
                     f"{len(failed)} fail\n")
    return results


if __name__ == "__main__":
    main()
