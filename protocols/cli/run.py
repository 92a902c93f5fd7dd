"""``rrambench run``: run a protocol into a new run file, dry-run it, or resume a run.

Every check on user input (protocol name, ``--set`` values, config file, safety
envelope, resume file) happens before the run file is created, so bad input leaves
nothing behind. The run file's path is the last line on stdout; a completed run's outcome
(``Protocol.outcome``) follows it on stderr.
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
                        help="check what the run checks before its first step (parameters, safety envelope, cells, "
                        "files) and estimate the duration; no instrument touched, nothing written")
    parser.add_argument("--seed", type=int, help="run seed: the protocol's random streams (default: random)")
    parser.add_argument("--world-seed", type=int, metavar="SEED",
                        help="seed of the simulated bench's world (default: the config's [sim] seed)")
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
    from protocols.engine.protocol import BenchUse, ParameterError, simulated_work_note
    from protocols.engine.registry import get_protocol

    if not args.protocol:
        raise UsageError("run needs a PROTOCOL (or --resume FILE)")
    try:
        protocol = get_protocol(args.protocol).from_assignments(args.set)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    config = load_config(args.config)
    protocol.check_limits(config.limits)
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    seed = args.seed if args.seed is not None else secrets.randbits(63)
    world_seed = _world_seed(args, protocol, config)
    path = _new_run_path(args.out, protocol.name)
    if args.dry_run:  # after every check of the command line, so both refuse the same input
        return _dry_run(protocol, config)
    header = {"config_path": config.source}  # the engine records the world's seed
    note = "" if config.simulated else simulated_work_note(protocol)
    if note:
        print(f"rrambench: note: {note}", file=sys.stderr)
    if protocol.bench_use is not BenchUse.NEEDS:  # simulated-only or software-only: no bench
        return _execute(protocol, None, path, seed=seed, resume=False, header=header)

    from instruments.bench import Bench

    with _open_bench(Bench, config, seed=world_seed) as bench:
        return _execute(protocol, bench, path, seed=seed, resume=False, header=header)


def _world_seed(args: argparse.Namespace, protocol, config) -> int:
    """``--world-seed``, checked (it seeds the simulated bench's world), else the config's."""
    from protocols.cli.main import UsageError
    from protocols.engine.protocol import BenchUse

    if args.world_seed is None:
        return config.seed
    if args.world_seed < 0:
        raise UsageError(f"--world-seed must be >= 0, got {args.world_seed}")
    if protocol.bench_use is not BenchUse.NEEDS:
        raise UsageError(f"--world-seed: {protocol.name} opens no bench (its simulated worlds, if any, "
                         "are seeded from the run seed)")
    if not config.simulated:
        raise UsageError(f"--world-seed: {config.source} is a hardware bench; it has no simulated world")
    return args.world_seed


def _resume(args: argparse.Namespace) -> int:
    from instruments.config import load_config
    from protocols.cli.main import UsageError
    from protocols.cli.run_files import open_checked
    from protocols.engine.protocol import BenchUse, ParameterError
    from protocols.engine.registry import get_protocol
    from protocols.engine.runner import checkpoint_path

    if args.set or args.dry_run:
        raise UsageError("--resume takes the parameters from the run file; drop --set/--dry-run")
    path = args.resume
    run = open_checked(path)  # read first in a watched helper: a damaged file is exit 2
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
    if protocol.bench_use is not BenchUse.NEEDS:  # it opened no bench, and opens none now
        return _execute(protocol, None, path, seed=run.seed, resume=True, header={})
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
        if engine.started:  # not a refusal of the input: the run itself broke at its end (exit 1)
            print(f"rrambench: run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            print(path, flush=True)
            return EXIT_CODES["failed"]
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
    print(path, flush=True)
    _print_outcome(protocol.name, engine.outcome)
    return EXIT_CODES["interrupted"] if final is None else EXIT_CODES[final.value]


def _print_outcome(name: str, outcome: dict) -> None:
    """The completed run's key metrics, after its path, on stderr: stdout stays the path alone
    (scripts take it from there; ``rrambench info`` shows the outcome again)."""
    from protocols.cli.quantities import outcome_lines

    if outcome:
        lines = outcome_lines({k: {"value": v, "units": u} for k, (v, u) in outcome.items()})
        print(f"{name} outcome:", *lines, sep="\n", file=sys.stderr)


def _open_bench(bench_cls, config, **kwargs):
    from instruments.errors import BenchError, ConfigError

    try:
        return bench_cls.from_config(config, **kwargs)
    except ConfigError:
        raise  # bad input (e.g. a VISA library that is not installed): exit 2
    except BenchError as exc:
        raise BenchUnavailable(str(exc)) from None


def _dry_run(protocol, config) -> int:
    """What the run checks before its first step (``Protocol.validate``), without opening an
    instrument; then the steps and the estimated duration."""
    from protocols.cli.main import UsageError
    from protocols.engine.bench_shape import BenchShape
    from protocols.engine.progress import format_duration

    shape = BenchShape.of_config(config)
    try:
        protocol.validate(shape)
    except ValueError as exc:  # the same line the run prints (_execute)
        raise UsageError(str(exc)) from None
    steps = list(protocol.plan())
    print(f"{protocol.name}: parameters valid and within the safety envelope")
    print(f"  checked against    {shape.describe()}"
          + ("" if config.simulated else " (the board as built; the run checks the size the board reports)"))
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
