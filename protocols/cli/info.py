"""``rrambench info RUN.h5 [--json]``: status, steps, parameters and datasets of a run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("info", help="status, steps, parameters and datasets of a run file",
                            description="Summarise a run file (complete, aborted, failed or "
                            "left by a killed writer). --json prints the stable JSON document.")
    parser.add_argument("path", type=Path, metavar="RUN.h5", help="run file")
    parser.add_argument("--json", action="store_true", help="print the stable JSON form")
    parser.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    from analysis.run_reader import RunFileError, open_run
    from protocols.cli.main import UsageError

    try:
        run = open_run(args.path)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(run.to_json(), indent=2, sort_keys=True))
        return 0
    print(f"{run.path}")
    print(f"  protocol   {run.protocol}")
    print(f"  status     {run.status}" + (f"  ({run.error})" if run.error else ""))
    print(f"  steps      {run.steps_completed}/{run.steps_total} completed")
    print(f"  started    {run.started}")
    print(f"  ended      {run.ended or '-'}")
    print(f"  seed       {run.seed}" + (f"  (world seed {run.world_seed})" if run.simulated else ""))
    print(f"  bench      {'simulated' if run.simulated else 'hardware'}")
    print("  parameters")
    for key, value in run.parameters.items():
        print(f"    {key} = {value}")
    print("  datasets")
    for path, info in run.datasets.items():
        shape = "x".join(str(n) for n in info.shape) or "scalar"
        print(f"    {path:<40} {shape:<16} {info.dtype:<8} {info.units or '-'}")
    return 0
