"""``rrambench run``: run a protocol into a new run file, dry-run it, or resume a run.

Every check on user input (protocol name, ``--set`` values, config file, safety
envelope, resume file) happens before the run file is created, so bad input leaves
nothing behind. The run file's path is the last line on stdout.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from pathlib import Path

log = logging.getLogger("rrambench.run")

EXIT_CODES = {"completed": 0, "failed": 1, "aborted": 1, "interrupted": 130}


class BenchUnavailable(Exception):
    """The bench could not be opened or queried before the run started (exit 1)."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run", help="run a protocol (or --resume an unfinished run)",
        description="Run PROTOCOL on the bench into DIR/<UTC timestamp>-<protocol>.h5 and print "
        "the file's path. Exit 0 completed, 1 failed or aborted, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("protocol", nargs="?", metavar="PROTOCOL", help="protocol name (see `rrambench list`)")
    parser.add_argument("--config", type=Path, metavar="F", help="bench config TOML (default: simulated bench)")
    parser.add_argument("--set", action="append", default=[], metavar="k=v",
                        help="set a parameter (repeatable; lists with commas)")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="folder for the run file")
    parser.add_argument("--resume", type=Path, metavar="FILE", help="finish an interrupted/aborted/failed run")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate against the safety envelope and estimate duration; no instrument touched")
    parser.add_argument("--seed", type=int, help="run seed (default: random; on the simulated bench also the world's)")
    parser.set_defaults(func=run_protocol)


def run_protocol(args: argparse.Namespace) -> int:
    try:
        return _resume(args) if args.resume is not None else _new_run(args)
    except BenchUnavailable as exc:
        print(f"rrambench: error: bench: {exc}", file=sys.stderr)
        return 1


def _new_run(args: argparse.Namespace) -> int:
    from instruments.config import load_config
    from protocols.cli.main import UsageError
    from protocols.engine.protocol import ParameterError
    from protocols.engine.registry import get_protocol

    if not args.protocol:
        raise UsageError("run needs a PROTOCOL (or --resume FILE)")
    try:
        protocol = get_protocol(args.protocol).from_assignments(args.set)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    config = load_config(args.config)
    protocol.check_limits(config.limits)
    if args.dry_run:
        return _dry_run(protocol)
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    seed = args.seed if args.seed is not None else secrets.randbits(63)
    world_seed = args.seed if args.seed is not None else config.seed
    path = _new_run_path(args.out, protocol.name)
    header = {"config_path": config.source, "world_seed": world_seed if config.simulated else None}

    from instruments.bench import Bench

    with _open_bench(Bench, config, seed=world_seed) as bench:
        return _execute(protocol, bench, path, seed=seed, resume=False, header=header)


def _resume(args: argparse.Namespace) -> int:
    from analysis.run_reader import RunFileError, open_run
    from instruments.config import load_config
    from protocols.cli.main import UsageError
    from protocols.engine.protocol import ParameterError
    from protocols.engine.registry import get_protocol
    from protocols.engine.runner import checkpoint_path

    if args.set or args.dry_run:
        raise UsageError("--resume takes the parameters from the run file; drop --set/--dry-run")
    path = args.resume
    try:
        run = open_run(path)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None
    if run.status == "completed":
        raise UsageError(f"{path}: run already completed; nothing to resume")
    if run.status == "running":
        raise UsageError(f"{path}: its writer is still running")
    if args.protocol and args.protocol != run.protocol:
        raise UsageError(f"{path} is a {run.protocol!r} run, not {args.protocol!r}")
    try:
        protocol = get_protocol(run.protocol).from_values(run.parameters)
    except ParameterError as exc:
        raise UsageError(f"{path}: {exc}") from None
    source = run.bench_config.get("source", "")
    config_path = args.config or (Path(source) if source and Path(source).is_file() else None)
    config = load_config(config_path)
    protocol.check_limits(config.limits)
    if run.simulated != config.simulated:
        raise UsageError(f"{path} was run on the {'simulated' if run.simulated else 'hardware'} bench; "
                         "resume it on the same kind (--config)")

    from instruments.bench import Bench

    world = None
    if config.simulated:
        checkpoint = checkpoint_path(path, run.steps_completed)
        if not checkpoint.is_file():
            raise UsageError(f"{path}: world checkpoint {checkpoint.name} is missing; cannot resume "
                             "from the same simulated state")
        from instruments.sim.world import SimWorld

        world = SimWorld.load(checkpoint)
    log.info("resuming %s after %d/%d steps", path, run.steps_completed, run.steps_total)
    with _open_bench(Bench, config, world=world) as bench:
        return _execute(protocol, bench, path, seed=run.seed, resume=True, header={})


def _execute(protocol, bench, path: Path, *, seed: int, resume: bool, header: dict) -> int:
    from instruments.errors import BenchError
    from protocols.cli.main import UsageError
    from protocols.engine.progress import TerminalBar
    from protocols.engine.runner import RunEngine

    made = _make_folder(path.parent)
    engine = RunEngine(protocol, bench, path, seed=seed, resume=resume, header=header)
    bar = TerminalBar(sys.stderr) if sys.stderr.isatty() else None
    if bar is not None:
        engine.subscribe(bar)
    try:
        final = engine.run()  # raises only when refused before any step ran
    except KeyboardInterrupt:
        final = None
    except ValueError as exc:
        _remove_empty(made)
        raise UsageError(str(exc)) from None
    except BenchError as exc:
        _remove_empty(made)
        raise BenchUnavailable(str(exc)) from None
    finally:
        if bar is not None:
            bar.close()
    if engine.error:
        print(f"rrambench: run {engine.state.value}: {engine.error}", file=sys.stderr)
    print(path)
    return EXIT_CODES["interrupted"] if final is None else EXIT_CODES[final.value]


def _open_bench(bench_cls, config, **kwargs):
    from instruments.errors import BenchError, ConfigError

    try:
        return bench_cls.from_config(config, **kwargs)
    except ConfigError:
        raise  # bad input (e.g. a VISA library that is not installed): exit 2
    except BenchError as exc:
        raise BenchUnavailable(str(exc)) from None


def _dry_run(protocol) -> int:
    from protocols.engine.progress import format_duration

    steps = list(protocol.plan())
    print(f"{protocol.name}: parameters valid and within the safety envelope")
    print(f"  steps              {len(steps)}")
    print(f"  estimated duration {format_duration(protocol.estimate_duration())}")
    return 0


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; return those created (innermost first)."""
    from protocols.cli.main import UsageError

    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {folder}: cannot create the folder ({exc.strerror or exc})") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Undo :func:`_make_folder` when the run was refused: nothing is left behind."""
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _new_run_path(out: Path, protocol: str) -> Path:
    """A new run file in ``out`` (:func:`protocols.engine.runner.new_run_path`); ``out`` must be a folder."""
    from protocols.cli.main import UsageError
    from protocols.engine.runner import new_run_path

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a folder")
    return new_run_path(out, protocol)
