"""How cost grows with the work: fitted log-log slopes of time against size, and memory.

Four workloads, each swept over about five log-spaced sizes, smallest first, in its
own fresh Python process (so its peak resident memory is its own):

* ``write_verify``: write-verify of N cells (64 to 8,192; 8 macros of 32 x 32) over the
  loopback link of the simulated bench, fresh random targets (2..65 uS) per repeat.
  The fitted time is the wall time per round trip (wall / iterations): the number of
  round trips is set by the slowest cell and grows slowly with N (the maximum of N
  draws: ~55 at 64 cells, ~110 at 8,192), an algorithm property reported alongside
  (``iterations``), not a cost of the code. Even at 8,192 cells the fixed part of a
  round trip is half or more of it, so its ``k`` is the least well determined;
* ``writer``: a run file of N scope traces of 10,000 int8 points (100 to 10,000;
  ``RunWriter.append_trace``, flush every 100 traces, as ``bench_writer.py``);
* ``sampling``: N closed-loop samples (100 to 100,000) of the mapped ring model on the
  simulated bench (set initial values, run, fetch end values over the link, as
  ``bench_sampling.py``) with 100 solver steps instead of 1,500 to keep the sweep short;
* ``report``: ``analysis.report.report`` of N run files (each 4 scope traces of 1,000
  points: one figure per run, one folder each, plus the comparison). At full size
  N is 10 to 100 by default: every run costs one matplotlib figure (~0.5-0.8 s on the
  shared 2-core machine), so 10 to 1,000 takes about 14 min; ``--report-max 1000`` runs
  that range.

What is fitted, and why: at the smallest sizes the time is dominated by costs that do
not depend on N (a round trip's framing and thread hand-off, creating the run file,
starting a sampling run), so the plain log-log slope of time against N is below 1 for
any linear code and hides a super-linear term. Each workload is therefore fitted as
``time = a + b * N**k``: for each trial fixed cost ``a``, ``k`` and ``b`` are the
``numpy.polyfit`` line through ``(log N, log(time - a))``, and the ``a`` whose model best
matches ``log(time)`` wins. ``a`` is searched from 0 up to the measured time of one unit
of work (N = 1: one cell, one trace, one sample, one run file), which bounds the fixed
cost from above; left free, ``a`` absorbs timing noise at the small sizes and bends ``k``
(a 2.3 s "fixed cost" of a report whose one-run time is 0.5 s gave k = 1.22 where the
per-run time varied 0.50-0.61 s).
``k`` is the slope row (target <= 1.1); the plain slope (``a = 0``), the fitted fixed
cost and the share of the largest size's time that is work (``1 - a / time``) are
printed next to it. Each size is timed as the minimum of ``--repeats`` runs (load from
other processes only adds time), taken in turns across the sizes, after one untimed
warm-up run.

Memory: the peak resident set size (``ru_maxrss``) of the workload's process at the end
of its sweep, i.e. of its largest size (memory grows with N), and its growth over the
process's resident size after setup and warm-up.

    python benchmarks/bench_scaling.py                 # full sizes (a few minutes)
    python benchmarks/bench_scaling.py --quick         # reduced sizes, one timing each
    python benchmarks/bench_scaling.py --only writer sampling --json
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TARGET = 1.1


@dataclass(frozen=True)
class Workload:
    """One swept workload: its size range at full and quick size, and how many repeats."""

    name: str
    unit: str
    full: tuple[int, int]
    quick: tuple[int, int]
    repeats: int


WORKLOADS = {
    w.name: w for w in (
        Workload("write_verify", "cells", (64, 8192), (64, 1024), 5),
        Workload("writer", "traces", (100, 10_000), (100, 1000), 3),
        Workload("sampling", "samples", (100, 100_000), (100, 3162), 2),
        Workload("report", "run files", (10, 100), (2, 8), 2),
    )
}
POINTS = 5  # sizes per sweep


def sizes(lo: int, hi: int, points: int = POINTS) -> list[int]:
    """``points`` log-spaced integer sizes from ``lo`` to ``hi``."""
    return sorted({int(round(s)) for s in np.geomspace(lo, hi, points)})


def fit_scaling(sizes: list[int], times: list[float], unit_s: float | None = None,
                grid: int = 400) -> dict[str, float]:
    """Fit ``time = a + b * n**k`` (see the module docstring); ``k`` is ``slope``.

    ``unit_s``: the measured time of one unit of work (n = 1): a point of the fit too, and
    an upper bound of the fixed cost ``a`` (default: no bound but the fastest time; without
    the point, ``a`` could take the whole of one unit's time, work included, and bend ``k``
    up: a report sweep gave 1.11 so, 1.08 with it). Returns ``slope`` (k),
    ``fixed_s`` (a), ``raw_slope`` (the polyfit slope of log time against log n, a = 0),
    ``work_share`` (1 - a / largest time) and ``rms_log_misfit`` (of the chosen model
    against log time).

    A grid over ``a`` (each with the line through ``log(time - a)``) gives the start;
    ``scipy.optimize.least_squares`` then fits ``a``, ``b`` and ``k`` together to
    ``log(time)``. The grid's ``k`` alone weights every size alike in ``log(time - a)``,
    where the small sizes' timing noise is as large as their work, and comes out low: on
    five ``run_all.py`` sweeps of one write-verify code it gave 0.80-0.97, the joint fit
    0.86-1.01 (docs/performance.md, "Scaling").
    """
    from scipy.optimize import least_squares  # here: the sweeps' own processes must not load scipy (~35 MiB)

    raw_slope = float(np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(times, float)), 1)[0])
    if unit_s is not None:
        sizes, times = [1, *sizes], [unit_s, *times]
    n, t = np.log(np.asarray(sizes, float)), np.asarray(times, float)
    top = 0.995 * t.min() if unit_s is None else min(0.995 * t.min(), unit_s)
    best = (np.inf, 0.0, 0.0, 0.0)
    for a in np.linspace(0.0, top, grid):
        k, log_b = np.polyfit(n, np.log(t - a), 1)
        misfit = np.log(a + np.exp(log_b + k * n)) - np.log(t)
        err = float(misfit @ misfit)
        if err < best[0]:
            best = (err, float(a), float(log_b), float(k))

    def misfit_of(x: np.ndarray) -> np.ndarray:
        a, log_b, k = x
        return np.log(a + np.exp(log_b + k * n)) - np.log(t)

    start = np.clip(best[1:], [0.0, -np.inf, 0.0], [top, np.inf, 5.0])
    joint = least_squares(misfit_of, start, bounds=([0.0, -np.inf, 0.0], [max(top, 1e-300), np.inf, 5.0]))
    err = float(joint.fun @ joint.fun)
    a, k = (float(joint.x[0]), float(joint.x[2])) if err <= best[0] else (best[1], best[3])
    err = min(err, best[0])
    return {"slope": k, "fixed_s": a, "raw_slope": raw_slope,
            "work_share": 1.0 - a / float(t[-1]), "rms_log_misfit": float(np.sqrt(err / len(t)))}


# -- the workloads: each a context manager yielding run(n) -> (seconds, extra figures) ---------------
Run = Callable[[int], tuple[float, dict]]


@contextmanager
def write_verify_workload() -> Iterator[Run]:
    from instruments.bench import Bench
    from instruments.sim.world import SimWorld
    from protocols.characterization.write_verify_algorithm import write_verify

    world = SimWorld(seed=0, n_macros=8)
    calls = iter(range(1_000_000))
    with Bench.from_config(world=world) as bench:
        bench.macro_controller.identify()  # as a run does when it starts: its protocol version is known

        def run(n: int) -> tuple[float, dict]:
            m, r, c = np.unravel_index(np.arange(n), world.shape)
            target = np.random.default_rng(next(calls)).uniform(2e-6, 65e-6, n)  # new targets: cells must move
            t0 = time.perf_counter()
            result = write_verify(bench.macro_controller, m, r, c, target, now=bench.clock.now,
                                  sleep=bench.clock.sleep)
            wall = time.perf_counter() - t0
            return wall / result.iterations, {"iterations": result.iterations, "wall_s": wall}
        yield run


@contextmanager
def writer_workload() -> Iterator[Run]:
    import bench_writer  # benchmarks/ is sys.path[0]: the workloads run in this script's own process

    pool = bench_writer.trace_pool(10_000)
    with tempfile.TemporaryDirectory() as tmp:
        def run(n: int) -> tuple[float, dict]:
            path = Path(tmp) / "scaling.h5"
            wall = bench_writer.via_writer(path, n, pool, 100)
            path.unlink()  # dirty pages of earlier files must not slow the next write
            return wall, {}
        yield run


@contextmanager
def sampling_workload() -> Iterator[Run]:
    from instruments.bench import Bench
    from instruments.macro_controller_wire import LOOP_DT_STEP, LOOP_RC
    from protocols.diffusion.analog import initial_noise, program_network
    from protocols.diffusion.loop_streams import loop_streams
    from protocols.diffusion.mapping import map_score_net
    from protocols.diffusion.weights import load_shipped

    model = load_shipped("ring")
    mapped = map_score_net(model)
    streams = loop_streams(mapped, model, n_steps=100, dt_step=LOOP_DT_STEP, rc=LOOP_RC, sde=False)
    with Bench.from_config(seed=0) as bench:
        board = bench.macro_controller
        info = board.info()
        placed = program_network(board, mapped, shape=(info.n_macros, info.rows, info.cols),
                                 now=bench.clock.now, sleep=bench.clock.sleep).mapped
        board.load_mapping(list(placed.layers), placed.v_bias)
        board.set_streams(*streams.as_args())

        def run(n: int) -> tuple[float, dict]:
            x0 = placed.to_volts(initial_noise(np.random.default_rng(n), n))
            t0 = time.perf_counter()
            board.set_initial(x0)
            board.run_samples(n, streams.duration, False, seed=n)
            placed.from_volts(board.fetch_end_values())
            return time.perf_counter() - t0, {}
        yield run


@contextmanager
def report_workload() -> Iterator[Run]:
    import bench_report

    from analysis.report import report

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.h5"
        bench_report.make_run(source, 4, 1000)

        def run(n: int) -> tuple[float, dict]:
            folder = Path(tmp) / "runs"
            folder.mkdir()
            paths = [folder / f"run{i:04d}.h5" for i in range(n)]
            for path in paths:
                shutil.copyfile(source, path)
            t0 = time.perf_counter()
            results = report(paths, folder / "report")
            wall = time.perf_counter() - t0
            shutil.rmtree(folder)
            return wall, {"figures": sum(len(r.figures) for r in results)}
        yield run


SETUPS = {"write_verify": write_verify_workload, "writer": writer_workload, "sampling": sampling_workload,
          "report": report_workload}


def sweep(name: str, swept: list[int], repeats: int) -> dict:
    """Run one workload's sweep in this process: per size the minimum of ``repeats`` timings,
    taken in turns (every size once, then every size again): a slow spell of the shared
    machine then costs one timing of several sizes, not every timing of one size (one such
    spell once made the 8,192-cell write-verify 1.6x slower in all three of its timings, and
    the slope 1.2 where the runs before gave 0.82-0.97)."""
    timed: list[list[tuple[float, dict]]] = [[] for _ in swept]
    with SETUPS[name]() as run:
        run(swept[0])  # warm-up: imports, first connection, first allocations
        setup_rss = _rss_kib()
        unit = min(run(1)[0] for _ in range(repeats))  # one unit of work: bounds the fixed cost
        for _ in range(repeats):
            for runs, n in zip(timed, swept, strict=True):
                runs.append(run(n))
    times: list[float] = []
    extra: dict[str, list] = {}
    for runs in timed:
        best = min(runs, key=lambda r: r[0])
        times.append(best[0])
        for key, value in best[1].items():
            extra.setdefault(key, []).append(value)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"sizes": swept, "times_s": times, "unit_s": unit, **extra, "rss_after_setup_KiB": setup_rss,
            "peak_rss_KiB": peak}


def _rss_kib() -> int:
    """Current resident set size (KiB), from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run_child(name: str, swept: list[int], repeats: int, timeout: float) -> dict:
    """The sweep of workload ``name`` in a fresh Python process (its memory is its own)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--sizes", *map(str, swept),
            "--repeats", str(repeats)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{name}: exit {done.returncode}: {tail}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes, one timing per size")
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS), help="sweep only these workloads")
    parser.add_argument("--repeats", type=int, help="timings per size (default: per workload)")
    parser.add_argument("--report-max", type=int, help="largest number of run files for the report sweep")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per workload, s")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    parser.add_argument("--child", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(sweep(args.child, args.sizes, args.repeats)))
        return {}

    figures: dict = {}
    sweeps: dict[str, tuple[int, dict]] = {}
    for name, w in WORKLOADS.items():
        if args.only and name not in args.only:
            continue
        lo, hi = w.quick if args.quick else w.full
        if name == "report" and args.report_max:
            hi = args.report_max
        repeats = args.repeats or (1 if args.quick else w.repeats)
        sweeps[name] = repeats, run_child(name, sizes(lo, hi), repeats, args.timeout)
    # Fitted only now: the fit loads scipy (~35 MiB), and a child started after that would
    # count this process's memory in its peak (a forked child's maximum RSS starts from it).
    for name, (repeats, raw) in sweeps.items():
        w = WORKLOADS[name]
        fit = fit_scaling(raw["sizes"], raw["times_s"], raw["unit_s"])
        figures[name] = {"unit": w.unit, "repeats": repeats, **raw, **fit}
        figures[f"{name}_slope"] = fit["slope"]
        figures[f"{name}_peak_rss_MiB"] = raw["peak_rss_KiB"] / 1024
        if not args.json:
            _print(name, w, figures[name])
    if args.json:
        print(json.dumps(figures))
    return figures


def _print(name: str, w: Workload, f: dict) -> None:
    what = "s per round trip" if name == "write_verify" else "s"
    print(f"{name}: {len(f['sizes'])} sizes, min of {f['repeats']} timing(s) each")
    for n, t in zip(f["sizes"], f["times_s"], strict=True):
        print(f"  {n:>8} {w.unit:<9} {t:10.4g} {what}")
    print(f"  slope k of time = a + b*N^k: {f['slope']:.3f} (target <= {TARGET}); plain log-log slope "
          f"{f['raw_slope']:.3f}; fixed cost a {f['fixed_s']:.3g} s; work share at the largest size "
          f"{f['work_share']:.2f}; misfit {f['rms_log_misfit']:.3f} (rms of log time)")
    print(f"  peak RSS at the largest size {f['peak_rss_KiB'] / 1024:.1f} MiB "
          f"(after setup {f['rss_after_setup_KiB'] / 1024:.1f} MiB)")


if __name__ == "__main__":
    main()
