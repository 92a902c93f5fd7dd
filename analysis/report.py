"""``rrambench report``: PNG figures and a summary.json for run files.

One run: its figures and ``summary.json`` in the output folder. Several runs: one
sub-folder per run (named after the file) plus ``comparison/`` with overlay
figures of what the runs have in common and a ``summary.json`` side by side.
Works on any run file, including one left by a killed writer (its status says so).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis import characterization_data as ld
from analysis.figures import style
from analysis.report_compare import comparison
from analysis.report_sections import SECTIONS, Section, overview_section, programming_section
from analysis.run_reader import Run, open_run

log = logging.getLogger("rrambench.report")

SUMMARY = "summary.json"


@dataclass
class ReportResult:
    """What a report wrote: its folder, the PNG files and the summary document."""

    out_dir: Path
    figures: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def sections(run: Run) -> dict[str, Section]:
    """Every section that applies to ``run`` (by the datasets it holds), by name."""
    found: dict[str, Section] = {}
    for prefix in ld.programming_prefixes(run):
        found[f"programming{'_' + prefix.rstrip('_') if prefix else ''}"] = programming_section(run, prefix)
    for name, build in SECTIONS.items():
        sec = build(run)
        if sec is not None:
            found[name] = sec
    extra = _extra_sections(run)
    found.update(extra)
    if not any(sec.figures for sec in found.values()):
        found["streams"] = overview_section(run)
    return found


def _extra_sections(run: Run) -> dict[str, Section]:
    """Sections of the diffusion protocols (samples, noise sweep), when that module is present."""
    try:
        from analysis import report_diffusion
    except ImportError:
        return {}
    return report_diffusion.sections(run)


def run_header(run: Run) -> dict[str, Any]:
    """The run's identity in a summary: file, protocol, status, steps, times, parameters."""
    return {"path": str(run.path), "protocol": run.protocol, "status": run.status,
            "steps_completed": run.steps_completed, "steps_total": run.steps_total,
            "started": run.started, "ended": run.ended, "error": run.error, "simulated": run.simulated,
            "seed": run.seed, "parameters": run.parameters}


def report_run(path: str | Path | Run, out_dir: str | Path) -> ReportResult:
    """Write the figures (PNG) and ``summary.json`` of one run file (or opened run) into ``out_dir``."""
    run = path if isinstance(path, Run) else open_run(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = ReportResult(out)
    metrics: dict[str, Any] = {}
    with style.context():
        for name, sec in sections(run).items():
            metrics[name] = sec.metrics
            for stem, fig in sec.figures:
                result.figures.append(style.save(fig, out / f"{stem}.png"))
    result.summary = {"run": run_header(run), "figures": [p.name for p in result.figures], "metrics": metrics}
    write_json(out / SUMMARY, result.summary)
    log.info("%s: %d figures in %s", run.path.name, len(result.figures), out)
    return result


def report(paths: Sequence[str | Path], out_dir: str | Path) -> list[ReportResult]:
    """Report every run; with several, one folder each plus ``comparison/`` (returned last)."""
    if not paths:
        raise ValueError("paths: give at least one run file")
    runs = [open_run(p) for p in paths]  # every file readable before anything is written
    out = Path(out_dir)
    if len(runs) == 1:
        return [report_run(runs[0], out)]
    stems = _unique_stems([r.path for r in runs])
    results = [report_run(r, out / stem) for r, stem in zip(runs, stems, strict=True)]
    cmp_dir = out / "comparison"
    cmp_dir.mkdir(parents=True, exist_ok=True)
    cmp = ReportResult(cmp_dir)
    with style.context():
        figures = comparison(runs, stems)
        for stem, fig in figures:
            cmp.figures.append(style.save(fig, cmp_dir / f"{stem}.png"))
    cmp.summary = {"runs": {stem: {"run": r.summary["run"], "metrics": r.summary["metrics"]}
                            for stem, r in zip(stems, results, strict=True)},
                   "figures": [p.name for p in cmp.figures]}
    write_json(cmp_dir / SUMMARY, cmp.summary)
    return [*results, cmp]


def _unique_stems(paths: list[Path]) -> list[str]:
    stems: list[str] = []
    for p in paths:
        stem, k = p.stem, 2
        while stem in stems:
            stem, k = f"{p.stem}-{k}", k + 1
        stems.append(stem)
    return stems


def plain(value: Any) -> Any:
    """JSON-ready: numpy to Python, NaN and infinities to None (strict JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as strict, indented JSON (atomically: a temp file renamed over)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(plain(doc), indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)
