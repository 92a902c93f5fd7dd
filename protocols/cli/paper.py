"""``rrambench paper -o DIR [--quick]``: the seed paper's figure set on the embedded simulated bench.

Runs the characterisation, the two diffusion tasks, the time-scale, speed/energy and
noise studies the panels need (``protocols/paper/plan.py``), then writes
``DIR/index.html`` and ``DIR/panels.json``. Interrupted, a rerun reuses every run that
completed and finishes the one that did not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "paper", help="the seed paper's figure set: every run, one page",
        description="Run everything the seed paper's figures need on the embedded simulated bench and write "
        "DIR/index.html (every panel with its caption, numbers and the paper's value) and DIR/panels.json. "
        "A rerun reuses the runs already complete.")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="folder for runs, figures, page")
    parser.add_argument("--quick", action="store_true",
                        help="fewer cells, samples and worlds (the same procedures; minutes, not half an hour)")
    parser.set_defaults(func=run_paper_command)


def run_paper_command(args: argparse.Namespace) -> int:
    from protocols.cli.main import UsageError
    from protocols.paper.build import PaperRunFailed, build_paper

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"-o {args.out}: exists and is not a folder")

    def stage(text: str) -> None:
        print(f"rrambench paper: {text}", file=sys.stderr, flush=True)

    try:
        result = build_paper(args.out, quick=args.quick, progress=sys.stderr.isatty(), on_stage=stage)
    except PaperRunFailed as exc:
        print(f"rrambench: error: {exc}", file=sys.stderr)
        return 1
    print(result.index)
    print(result.panels)
    return 0
