"""The demo: the seed experiment end to end on the embedded simulated bench.

Program the ring model into the macros (``program-model``), sample it on the analog
loop with the software baseline on the same initial noise (``sample``), then draw the
figures and summarise the metrics. Run files and PNGs go into one folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("rrambench.demo")

WAVEFORMS = 100      # samples whose scope traces the demo stores and draws as time slices
DEMO_SEED = 0


@dataclass
class DemoResult:
    """Files written, the metrics table (name -> (analog, software)), the KLs' sampling floor
    (name -> (median, spread) over draws of as many fresh ring points) and wall times (s)."""

    run_files: list[Path]
    figures: list[Path]
    metrics: dict[str, tuple[float, float]]
    floors: dict[str, tuple[float, float]] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)


def run_demo(out: Path, samples: int = 1000, seed: int = DEMO_SEED, waveforms: int = WAVEFORMS,
             on_stage: Callable[[str], None] | None = None) -> DemoResult:
    """Program the ring model, sample ``samples`` times, write run files and figures into ``out``.

    samples: closed-loop samples (>= 2); seed: run and world seed; waveforms: samples whose
    scope traces are stored (0..1000, at most ``samples``); on_stage: called with the name
    of each stage as it starts (progress on a terminal).
    """
    from instruments.bench import Bench
    from protocols.diffusion.program_model import ProgramModel
    from protocols.diffusion.sample import Sample
    from protocols.engine.runner import RunEngine

    if samples < 2:
        raise ValueError(f"samples must be >= 2, got {samples}")
    out.mkdir(parents=True, exist_ok=True)
    stage = on_stage or (lambda name: None)
    result = DemoResult([], [], {})
    program_path, sample_path = _fresh(out / "program-model.h5"), _fresh(out / "sample.h5")
    with Bench.from_config(seed=seed) as bench:
        stage("program the ring model")
        t0 = time.perf_counter()
        engine = RunEngine(ProgramModel.from_values({"model": "ring"}), bench, program_path, seed=seed)
        result.status["program-model"] = engine.run().value
        result.times["program-model"] = time.perf_counter() - t0
        result.run_files.append(program_path)
        _require(engine, "program-model")
        stage(f"sample {samples} times on the analog loop")
        t0 = time.perf_counter()
        proto = Sample.from_values({"model": "ring", "samples": samples, "batch": min(samples, 1000),
                                    "program": False, "placement_run": str(program_path),
                                    "waveforms": min(waveforms, samples)})
        engine = RunEngine(proto, bench, sample_path, seed=seed + 1)
        result.status["sample"] = engine.run().value
        result.times["sample"] = time.perf_counter() - t0
        result.run_files.append(sample_path)
        _require(engine, "sample")
    stage("figures")
    t0 = time.perf_counter()
    from protocols.diffusion.demo_figures import draw_figures, metrics_table

    result.figures = draw_figures(program_path, sample_path, out)
    result.metrics, result.floors = metrics_table(sample_path)
    result.times["figures"] = time.perf_counter() - t0
    return result


def summary(result: DemoResult) -> str:
    """The short table the command prints."""
    lines = [f"{'metric':<28}{'analog':>12}{'software':>12}   sampling floor (fresh ring points)"]
    for name, (analog, software) in result.metrics.items():
        floor = ""
        if name in result.floors:
            median, spread = result.floors[name]
            floor = f"   {median:.4g} ± {spread:.2g}" if np.isfinite(median) else "   unknown"
        lines.append(f"{name:<28}{analog:>12.4g}{software:>12.4g}{floor}")
    lines.append("")
    lines += [f"{'wall time ' + k:<28}{v:>11.1f}s" for k, v in result.times.items()]
    lines.append("")
    lines += [f"run file   {p}" for p in result.run_files]
    lines += [f"figure     {p}" for p in result.figures]
    return "\n".join(lines)


def _fresh(path: Path) -> Path:
    """``path``, or ``path`` with a numeric suffix when it exists (run files are never overwritten)."""
    k = 1
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        k += 1
    return candidate


def _require(engine: object, name: str) -> None:
    if engine.state.value != "completed":
        raise RuntimeError(f"{name} run ended {engine.state.value}: {engine.error}")

