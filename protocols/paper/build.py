"""``rrambench paper``: run the plan on the bench, reusing finished runs, then write the page.

Each run of :data:`~protocols.paper.plan.PLAN` goes through the public API
(:func:`protocols.api.run_protocol`: journal, run file, safe state) into its own folder
``DIR/runs/<name>/``. A rerun after an interruption takes, per run, the completed file
with the same protocol and parameters if there is one, finishes an interrupted one if it
can (``resume``), and starts a new run otherwise; a file it cannot use is left as it is
(nothing is deleted). The speed and energy comparison is computed from the time-scale
run (``DIR/speed-energy/``). The page is written from the run files alone
(:func:`analysis.paper_page.write_page`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocols.paper.plan import PLAN, PaperRun

log = logging.getLogger("rrambench.paper")

RUNS = "runs"
SPEED_ENERGY = "speed-energy"


@dataclass
class PaperResult:
    """What a build wrote: the page, the panel table, each run file by plan name, which of
    them were reused, and the wall time per run (s)."""

    index: Path
    panels: Path
    runs: dict[str, Path] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    times: dict[str, float] = field(default_factory=dict)


def build_paper(out: Path, *, quick: bool = False, plan: Sequence[PaperRun] = PLAN, progress: bool = True,
                on_stage: Callable[[str], None] | None = None) -> PaperResult:
    """Run what the figure set needs into ``out`` and write ``out/index.html`` and ``out/panels.json``."""
    from analysis.paper_page import write_page

    out.mkdir(parents=True, exist_ok=True)
    stage = on_stage or (lambda text: None)
    runs: dict[str, Path] = {}
    reused: list[str] = []
    times: dict[str, float] = {}
    for k, item in enumerate(plan):
        t0 = time.perf_counter()
        folder = out / RUNS / item.name
        values = item.values(quick)
        done = completed_run(folder, item.protocol, values)
        if done is not None:
            stage(f"[{k + 1}/{len(plan)}] {item.name}: reusing {done.name}")
            runs[item.name] = done
            reused.append(item.name)
            continue
        stage(f"[{k + 1}/{len(plan)}] {item.name}: {item.protocol}")
        runs[item.name] = _run(item, values, folder, progress)
        times[item.name] = time.perf_counter() - t0
    speed_energy = None
    if "time-scale" in runs:
        stage("speed and energy against the digital baseline")
        t0 = time.perf_counter()
        speed_energy = _speed_energy(runs["time-scale"], out / SPEED_ENERGY, quick)
        times["speed-energy"] = time.perf_counter() - t0
    stage("figures and the page")
    index, panels = write_page(out, runs, speed_energy=speed_energy, quick=quick, times=times)
    return PaperResult(index, panels, runs, reused, times)


def completed_run(folder: Path, protocol: str, values: Mapping[str, Any]) -> Path | None:
    """The newest completed run file in ``folder`` of ``protocol`` with these parameter values, or None."""
    from analysis.run_reader import RunFileError, open_run

    for path in sorted(folder.glob("*.h5"), reverse=True):
        try:
            run = open_run(path, isolate=True)
        except RunFileError as exc:
            log.warning("%s: not reused (%s)", path, exc)
            continue
        if run.protocol == protocol and run.status == "completed" and same_parameters(run.parameters, protocol,
                                                                                       values):
            return path
    return None


def same_parameters(recorded: Mapping[str, Any], protocol: str, values: Mapping[str, Any]) -> bool:
    """Do a run file's parameters hold ``values`` (as the protocol parses them)?"""
    from protocols.engine.registry import get_protocol

    wanted = get_protocol(protocol).from_values(values).parameters()
    return all(name in recorded and _same(recorded[name], wanted[name]) for name in values)


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if isinstance(a, (str, bool)) or isinstance(b, (str, bool)) or a is None or b is None:
        return str(a) == str(b)
    try:
        x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    except (TypeError, ValueError):
        return str(a) == str(b)
    return x.shape == y.shape and bool(np.allclose(x, y, rtol=1e-9, atol=0.0))


def _interrupted(folder: Path, protocol: str, values: Mapping[str, Any]) -> Path | None:
    from analysis.run_reader import RunFileError, open_run

    for path in sorted(folder.glob("*.h5"), reverse=True):
        try:
            run = open_run(path, isolate=True)
        except RunFileError:
            continue
        if run.protocol == protocol and run.status in ("interrupted", "aborted", "paused") \
                and same_parameters(run.parameters, protocol, values):
            return path
    return None


def _run(item: PaperRun, values: Mapping[str, Any], folder: Path, progress: bool) -> Path:
    from protocols.api import run_protocol
    from protocols.engine.errors import UsageError

    unfinished = _interrupted(folder, item.protocol, values)
    if unfinished is not None:
        try:
            result = run_protocol(None, resume=unfinished, progress=progress)
        except UsageError as exc:  # e.g. its checkpoint is gone: a new run, the old file kept
            log.warning("%s: not resumed (%s); starting a new run", unfinished, exc)
        else:
            if result.status == "completed":
                return result.path
    from protocols.engine.protocol import BenchUse
    from protocols.engine.registry import get_protocol

    opens_bench = get_protocol(item.protocol).bench_use is BenchUse.NEEDS
    result = run_protocol(item.protocol, dict(values), out=folder, seed=item.seed,
                          world_seed=item.seed if opens_bench else None, progress=progress)
    if result.status != "completed":
        raise PaperRunFailed(f"{item.name} ({item.protocol}) ended {result.status}: {result.error}; "
                             f"rerun `rrambench paper` to finish it ({result.path})")
    return result.path


class PaperRunFailed(RuntimeError):
    """A run of the plan did not complete (the page is not written)."""


def _speed_energy(time_scale: Path, out: Path, quick: bool) -> list[dict[str, Any]]:
    from protocols.diffusion import speed_energy as se

    scale = se.read_time_scale(time_scale)
    # the strongest baseline: torch too where it is installed (measure() skips it otherwise)
    results = se.compare_tasks(scale, ("ring", "digits"), repeats=1 if quick else 3)
    se.write_results(out, results)
    return results
