"""The figure set's page: every panel of the seed paper from the run files, in one HTML file.

:func:`write_page` reports each run file (:func:`analysis.report.report_run`, PNGs under
``figures/<run>/``), takes the speed and energy comparison from
``speed-energy/speed-energy.json``, and writes

- ``panels.json``: panel id -> caption, figure files (relative to the folder), the numbers
  behind it, the paper's published value (``paper``, and ``published``: the paper's value
  of some of those numbers), the run file, and ``status`` (``ok`` or ``missing`` with the
  reason);
- ``index.html``: a self-contained page (PNGs inlined) with the same content.

It reads files only; what ran is the caller's business (``protocols/paper``).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analysis.paper_panels import PANELS, Panel

INDEX = "index.html"
PANELS_JSON = "panels.json"
FIGURES = "figures"
SPEED_ENERGY_JSON = Path("speed-energy") / "speed-energy.json"
#: Numbers shown per panel at most (the JSON has the same cut; the reports have all).
MAX_NUMBERS = 16
#: What the page shows of a speed-energy task.
SPEED_ENERGY_NUMBERS = ("analog_time_per_sample_s", "digital_time_per_sample_s", "speedup",
                        "analog_energy_per_sample_J", "digital_energy_per_sample_J", "energy_ratio", "rc_s",
                        "rc_meets_bar", "rc_quality", "digital_baseline")


def write_page(out: Path, runs: Mapping[str, Path], *, quick: bool = False,
               times: Mapping[str, float] | None = None, **_: Any) -> tuple[Path, Path]:
    """Write ``panels.json`` and ``index.html`` into ``out`` from the plan's run files ``runs``
    (plan name -> run file); returns their paths."""
    from analysis.report import plain, report_run

    reports: dict[str, tuple[list[Path], dict[str, Any]]] = {}
    for name, path in runs.items():
        result = report_run(path, out / FIGURES / name)
        reports[name] = (result.figures, plain(result.summary["metrics"]))
    speed_energy = _speed_energy(out)
    doc: dict[str, Any] = {}
    for panel in PANELS:
        doc[panel.id] = _panel(panel, out, runs, reports, speed_energy)
    panels_path = out / PANELS_JSON
    panels_path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    index = out / INDEX
    index.write_text(_html(doc, out, quick=quick, runs=runs, times=dict(times or {})))
    return index, panels_path


def _speed_energy(out: Path) -> dict[str, dict[str, Any]]:
    path = out / SPEED_ENERGY_JSON
    if not path.is_file():
        return {}
    return {r["task"]: r for r in json.loads(path.read_text())}


def _panel(panel: Panel, out: Path, runs: Mapping[str, Path], reports: Mapping[str, tuple[list[Path], dict]],
           speed_energy: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"caption": panel.caption, "paper": panel.paper, "files": [], "numbers": {}}
    also: list[str] = []   # the run files of panel.also the figures come from too
    if panel.missing:
        return {**entry, "status": "missing", "why": panel.missing}
    if panel.run == "speed-energy":
        task = speed_energy.get(panel.section)
        if task is None:
            return {**entry, "status": "missing", "why": "no speed-energy comparison in this folder"}
        files = [out / SPEED_ENERGY_JSON.parent / f"{stem}.png" for stem in panel.figures]
        numbers = {k: task[k] for k in SPEED_ENERGY_NUMBERS if k in task}
        paper = task.get("paper", {})
        numbers.update({f"paper_{k}": v for k, v in paper.items() if k != "source"})
        source = str(out / SPEED_ENERGY_JSON)
    else:
        if panel.run not in reports:
            return {**entry, "status": "missing", "why": f"the {panel.run!r} run is not in this folder"}
        figures, metrics = reports[panel.run]
        files = [f for stem in panel.figures for f in figures if _matches(f.stem, stem)]
        numbers = dict(_flatten(metrics.get(panel.section, {})))
        source = str(runs[panel.run])
        for other in (r for r in panel.also if r in reports):
            figures, metrics = reports[other]
            files += [f for stem in panel.figures for f in figures if _matches(f.stem, stem)]
            numbers.update({f"{other}.{k}": v for k, v in _flatten(metrics.get(panel.section, {}))})
            also.append(str(runs[other]))
    head = [k for k in (*panel.first, *dict(panel.published)) if k in numbers]
    numbers = {**{k: numbers[k] for k in head}, **numbers}
    files = [f for f in files if f.is_file()]
    if not files:
        return {**entry, "status": "missing", "why": f"the {panel.run!r} report drew no {', '.join(panel.figures)}"}
    return {**entry, "status": "ok", "files": [str(f.relative_to(out)) for f in files],
            "numbers": dict(list(numbers.items())[:MAX_NUMBERS]), "published": dict(panel.published),
            "run": source, **({"also_runs": also} if also else {})}


def _matches(stem: str, pattern: str) -> bool:
    return stem.startswith(pattern[:-1]) if pattern.endswith("*") else stem == pattern


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Scalars of a nested metrics dict as (dotted key, value); short numeric lists kept whole."""
    if isinstance(value, Mapping):
        rows: list[tuple[str, Any]] = []
        for key, item in value.items():
            rows += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, (list, tuple)):
        if 0 < len(value) <= 4 and all(isinstance(v, (int, float)) for v in value):
            return [(prefix, list(value))]
        return []
    if isinstance(value, (int, float, str, bool)) or value is None:
        return [(prefix, value)]
    return []


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _html(doc: Mapping[str, dict[str, Any]], out: Path, *, quick: bool, runs: Mapping[str, Path],
          times: Mapping[str, float]) -> str:
    esc = html.escape
    built = sum(1 for p in doc.values() if p["status"] == "ok")
    scope = "<b>--quick</b>: fewer cells, samples and worlds" if quick else "full set"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>rrambench: the seed paper's figure set</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "section{border-top:1px solid #ccc;padding:1em 0}img{max-width:100%;border:1px solid #eee;margin:4px 0}"
        "table{border-collapse:collapse;font-size:90%}td,th{padding:2px 8px;border-bottom:1px solid #eee;"
        "text-align:left;vertical-align:top}.missing{color:#a33}.paper{background:#f4f4ff;padding:4px 8px}"
        "code{font-size:90%}</style></head><body>",
        "<h1>The seed paper's figure set, reproduced on rrambench</h1>",
        f"<p>{built} of {len(doc)} panels drawn from run files ({scope}). "
        "Every run ran on the embedded <b>simulated</b> bench (its run file says so). Paper: "
        "<i>Resistive Memory-based Neural Differential Equation Solver for Score-based Diffusion Model</i> "
        "(arXiv 2404.05648); its published values are shown beside ours.</p>",
        "<table><tr><th>run</th><th>file</th><th>wall time</th></tr>",
    ]
    for name, path in runs.items():
        wall = f"{times[name]:.0f} s" if name in times else "reused"
        parts.append(f"<tr><td>{esc(name)}</td><td><code>{esc(_rel(path, out))}</code></td><td>{wall}</td></tr>")
    if "speed-energy" in times:
        parts.append(f"<tr><td>speed-energy</td><td><code>{esc(str(SPEED_ENERGY_JSON))}</code></td>"
                     f"<td>{times['speed-energy']:.0f} s</td></tr>")
    parts.append("</table>")
    for pid, p in doc.items():
        parts.append(f"<section id='fig{esc(pid)}'><h2>Fig. {esc(pid)}</h2><p>{esc(p['caption'])}</p>")
        if p["paper"]:
            parts.append(f"<p class='paper'><b>Paper:</b> {esc(p['paper'])}</p>")
        if p["status"] != "ok":
            parts.append(f"<p class='missing'><b>Not drawn:</b> {esc(p.get('why', ''))}</p></section>")
            continue
        for f in p["files"]:
            data = base64.b64encode((out / f).read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='Fig. {esc(pid)}: {esc(f)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption><code>{esc(f)}</code></figcaption></figure>")
        if p["numbers"]:
            published = p.get("published", {})
            parts.append("<table><tr><th>number</th><th>ours</th><th>paper</th></tr>")
            parts += [f"<tr><td>{esc(k)}</td><td>{esc(_fmt(v))}</td><td>{esc(published.get(k, ''))}</td></tr>"
                      for k, v in p["numbers"].items()]
            parts.append("</table>")
        sources = ", ".join(f"<code>{esc(_rel(Path(r), out))}</code>" for r in [p["run"], *p.get("also_runs", [])])
        parts.append(f"<p><small>from {sources}</small></p></section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _rel(path: Path, out: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(out.resolve()))
    except ValueError:
        return str(path)
