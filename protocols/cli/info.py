"""``rrambench info RUN.h5 [--json] [--follow]``: status, steps, parameters and datasets of a run.

``info FOLDER`` lists the folder's run files, one line each. Every file is read first
in a watched helper process (:mod:`protocols.cli.run_files`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("info", help="status, steps, parameters and datasets of a run file",
                            description="Summarise a run file (complete, aborted, failed, "
                            "left by a killed writer, or still running). --json prints the stable JSON "
                            "document. A FOLDER: one line per run file in it (damaged ones say so). "
                            "--follow: print each step as it lands until the run ends (exit 0 if it "
                            "completed, 1 otherwise); Ctrl-C stops watching, not the run.")
    parser.add_argument("path", type=Path, metavar="RUN.h5|FOLDER", help="run file, or folder of run files")
    parser.add_argument("--json", action="store_true", help="print the stable JSON form")
    parser.add_argument("--follow", action="store_true", help="print each step of a live run as it lands")
    parser.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    from protocols.cli.run_files import open_checked
    from protocols.engine.errors import UsageError

    if args.follow and (args.json or args.path.is_dir()):
        raise UsageError("--follow watches one run file, as text (no --json, no folder)")
    if args.path.is_dir():
        return _list_folder(args.path, as_json=args.json)
    run = open_checked(args.path)
    if args.follow:
        return _follow(run)
    if args.json:
        print(json.dumps(run.to_json(), indent=2, sort_keys=True))
        return 0
    print(f"{run.path}")
    print(f"  protocol   {run.protocol}")
    source = run.protocol_source
    if source.get("origin") not in (None, "shipped"):  # a user's protocol: where it came from, and its hash
        print(f"  source     {source.get('reference', '')}  (sha256 {source.get('sha256') or '-'})")
    print(f"  status     {run.status}" + (f"  ({run.error})" if run.error else ""))
    print(f"  steps      {run.steps_completed}/{run.steps_total} completed")
    print(f"  started    {run.started}")
    print(f"  ended      {run.ended or '-'}")
    print(f"  seed       {run.seed}  (run seed, --seed)")
    world = "-  (no simulated bench world)" if run.world_seed is None else f"{run.world_seed}  (--world-seed)"
    print(f"  world seed {world}")
    print(f"  bench      {_bench(run)}")
    if run.sample:
        print("  sample     " + "  ".join(f"{key}={value}" for key, value in run.sample.items()))
    for part in run.simulated_parts:
        print(f"  simulated  {part}")
    print("  parameters")
    for key, value in run.parameters.items():
        print(f"    {key} = {value}")
    _print_outcome_and_settings(run)
    print("  datasets")
    for path, info in run.datasets.items():
        shape = "x".join(str(n) for n in info.shape) or "scalar"
        print(f"    {path:<40} {shape:<16} {info.dtype:<8} {info.units or '-'}")
    return 0


def _print_outcome_and_settings(run) -> None:
    """The outcome of a completed run and the instruments' settings at its start (and at each resume)."""
    from protocols.cli.quantities import outcome_lines, snapshot_lines

    if run.outcome:
        print("  outcome")
        print("\n".join(outcome_lines(run.outcome, indent="    ")))
    if run.snapshot:
        print("  instrument settings")
        print("\n".join(snapshot_lines(run.snapshot)))


def _bench(run) -> str:
    """What the run ran on: the simulated or hardware bench, or no bench (simulated worlds or none)."""
    if not run.instruments:
        return f"none opened ({'simulated worlds' if run.simulated else 'no instrument used'})"
    return "simulated" if run.simulated else "hardware"


def _list_folder(folder: Path, *, as_json: bool) -> int:
    """One line per run file of ``folder``: file, protocol, status, steps, started (or why it is damaged)."""
    from analysis.run_reader import RunFileError, open_run
    from protocols.cli.run_files import runs_in
    from protocols.engine.errors import UsageError

    paths = runs_in(folder)
    if not paths:
        raise UsageError(f"{folder}: no run files (*.h5) in this folder")
    docs = []
    for path in paths:
        try:
            run = open_run(path, isolate=True)
        except RunFileError as exc:
            reason = " ".join(str(exc).split()).removeprefix(f"{path}: ")
            docs.append({"path": str(path), "status": "damaged", "error": reason})
            if not as_json:
                print(f"{path.name:<44} {'-':<14} {'damaged':<12} {'-':>7}  {docs[-1]['error']}", flush=True)
            continue
        docs.append({"path": str(path), **run.to_json()})
        if not as_json:
            steps = f"{run.steps_completed}/{run.steps_total}"
            print(f"{path.name:<44} {run.protocol:<14} {run.status:<12} {steps:>7}  {run.started}", flush=True)
    if as_json:
        print(json.dumps(docs, indent=2, sort_keys=True))
    return 0


def _follow(run) -> int:
    """Print each journalled step as it lands, then how the run ended: 0 completed, 1 otherwise."""
    from analysis.run_follow import follow
    from analysis.run_reader import JournalEntry, RunFileError
    from analysis.schema import COMPLETED
    from protocols.engine.errors import UsageError

    print(f"{run.path}: {run.protocol}, {run.steps_total} steps, started {run.started}", flush=True)
    final = run
    try:
        for event in follow(run.path):
            if isinstance(event, JournalEntry):
                print(f"  step {event.index + 1}/{run.steps_total}  {event.status:<11} "
                      f"{event.end - event.start:8.2f} s  {event.name}", flush=True)
            else:
                final = event
    except RunFileError as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    print(f"{final.status}: {final.steps_completed}/{final.steps_total} steps completed, "
          f"ended {final.ended or '-'}" + (f"  ({final.error})" if final.error else ""), flush=True)
    return 0 if final.status == COMPLETED else 1
