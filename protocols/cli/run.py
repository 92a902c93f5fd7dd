"""``rrambench run``: run a protocol into a new run file, dry-run it, or resume a run.

PROTOCOL is a name (``rrambench list``) or a file or module of the user's
(``PATH.py:Class``, ``module:Class``). Every check on user input (protocol, ``--set``
values, ``--sample``, config file, safety envelope, resume file and its protocol source)
happens before the run file is created, so bad input leaves nothing behind. The checks
and the run are :mod:`protocols.engine.launch`, shared with the Python API
(``protocols.run_protocol``). The run file's path is the last line on stdout; a completed
run's outcome (``Protocol.outcome``) follows it on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protocols.engine.launch import BenchUnavailable

EXIT_CODES = {"completed": 0, "failed": 1, "aborted": 1, "interrupted": 130}

__all__ = ["EXIT_CODES", "BenchUnavailable", "register", "run_protocol"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run", help="run a protocol (or --resume an unfinished run)",
        description="Run PROTOCOL on the bench into DIR/<UTC timestamp>-<protocol>.h5 and print "
        "the file's path. PROTOCOL: a name (see `rrambench list`), or a protocol of your own, "
        "PATH.py:Class or module:Class. Exit 0 completed, 1 failed or aborted, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("protocol", nargs="?", metavar="PROTOCOL",
                        help="protocol name (see `rrambench list`), PATH.py:Class or module:Class")
    parser.add_argument("--config", type=Path, metavar="F", help="bench config TOML (default: simulated bench)")
    parser.add_argument("--set", action="append", default=[], metavar="k=v",
                        help="set a parameter (repeatable; lists with commas)")
    parser.add_argument("--sample", action="append", default=[], metavar="k=v",
                        help="the sample measured, over the config's [sample] (repeatable; keys chip, wafer, "
                        "die, operator, notes); recorded in /entry/sample")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="folder for the run file")
    parser.add_argument("--resume", type=Path, metavar="FILE", help="finish an interrupted/aborted/failed run")
    parser.add_argument("--force", action="store_true",
                        help="with --resume: resume although the protocol's source file changed since the run began")
    parser.add_argument("--dry-run", action="store_true",
                        help="check what the run checks before its first step (parameters, safety envelope, cells, "
                        "files) and estimate the duration; no instrument touched, nothing written")
    parser.add_argument("--seed", type=int, help="run seed: the protocol's random streams (default: random)")
    parser.add_argument("--world-seed", type=int, metavar="SEED",
                        help="seed of the simulated bench's world (default: the config's [sim] seed)")
    parser.add_argument("--catalogue", metavar="URL",
                        help="run catalogue to index the run in: a file, sqlite:///FILE or postgresql://USER@HOST/DB "
                        "(default: the config's [catalogue] url, else runs.sqlite in the --out folder)")
    parser.set_defaults(func=run_protocol)


def run_protocol(args: argparse.Namespace) -> int:
    """Run (or dry-run, or resume) what the command line asks; the exit code."""
    from protocols.engine.errors import UsageError
    from protocols.engine.launch import RunRequest, dry_run_lines, execute, prepare
    from protocols.engine.progress import TerminalBar

    if args.force and args.resume is None:
        raise UsageError("--force goes with --resume (resume although the protocol's source changed)")
    request = RunRequest(protocol=args.protocol, assignments=args.set, out=args.out, config=args.config,
                         sample=args.sample, seed=args.seed, world_seed=args.world_seed, resume=args.resume,
                         force=args.force, dry_run=args.dry_run, catalogue=args.catalogue)
    prepared = prepare(request)
    if args.dry_run:  # after every check of the command line, so both refuse the same input
        print(*dry_run_lines(prepared), sep="\n")
        return 0
    for note in prepared.notes:
        print(f"rrambench: note: {note}", file=sys.stderr)
    bar = TerminalBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        result = execute(prepared, progress=[bar] if bar is not None else [])
    except BenchUnavailable as exc:
        print(f"rrambench: error: bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    if result.error:
        print(f"rrambench: run {result.status}: {result.error}", file=sys.stderr)
    print(result.path, flush=True)
    _print_outcome(prepared.protocol.name, result.outcome)
    return EXIT_CODES[result.status]


def _print_outcome(name: str, outcome: dict) -> None:
    """The completed run's key metrics, after its path, on stderr: stdout stays the path alone
    (scripts take it from there; ``rrambench info`` shows the outcome again)."""
    from protocols.cli.quantities import outcome_lines

    if outcome:
        lines = outcome_lines({k: {"value": v, "units": u} for k, (v, u) in outcome.items()})
        print(f"{name} outcome:", *lines, sep="\n", file=sys.stderr)
