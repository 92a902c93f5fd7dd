"""``rrambench demo [--out DIR] [--samples N]``: the seed experiment on the embedded simulated bench.

Programs the ring model into the simulated macros, samples it on the analog loop
(with the software baseline on the same initial noise), writes the two run files and
the figures into DIR and prints a summary table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo", help="program, sample and score the ring model on the simulated bench",
        description="Program the ring score network into the simulated RRAM macros, sample it "
        "on the analog loop, compare with the software baseline, and write run files and "
        "figures into DIR.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo-out"), metavar="DIR",
                        help="folder for run files and figures (default ./demo-out)")
    parser.add_argument("--samples", type=int, default=1000, metavar="N", help="closed-loop samples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="run and world seed (default 0)")
    parser.set_defaults(func=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    from protocols.cli.main import UsageError
    from protocols.diffusion.demo import run_demo, summary

    if args.samples < 2:
        raise UsageError(f"--samples must be >= 2, got {args.samples}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a folder")
    tty = sys.stderr.isatty()

    def stage(name: str) -> None:
        if tty:
            print(f"rrambench demo: {name} ...", file=sys.stderr, flush=True)

    result = run_demo(args.out, samples=args.samples, seed=args.seed, on_stage=stage)
    print(summary(result))
    return 0
