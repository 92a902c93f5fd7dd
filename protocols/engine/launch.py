"""Starting a run: every check of the input, then the engine on the bench.

The one code path of ``rrambench run`` (:mod:`protocols.cli.run`) and of the Python API
``run_protocol`` (:mod:`protocols.api`): :func:`prepare` checks everything the user
handed in (protocol, parameters, config, safety envelope, seeds, sample, resume file and
its protocol source) before anything is written, so bad input leaves nothing behind;
:func:`execute` opens the bench, runs the :class:`~protocols.engine.runner.RunEngine`
(journal, run file, safe state) and says how the run ended. The callers differ only in
how they show progress and how Ctrl-C acts (``drive``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocols.engine.errors import UsageError

if TYPE_CHECKING:
    from instruments.config import BenchConfig
    from protocols.engine.progress import ProgressEvent
    from protocols.engine.protocol import Protocol
    from protocols.engine.runner import RunEngine, RunState

__all__ = ["BenchUnavailable", "Prepared", "RunRequest", "RunResult", "dry_run_lines", "execute", "prepare", "run_here"]

log = logging.getLogger("rrambench.run")


class BenchUnavailable(Exception):
    """The bench could not be opened or queried before the run started (exit 1)."""


@dataclass
class RunRequest:
    """What the user asked for, unchecked.

    ``protocol``: a name (``rrambench list``), a reference (``PATH.py:Class``,
    ``module:Class``) or a Protocol subclass; None only with ``resume`` (the run file
    names it). ``assignments``: ``--set k=v`` texts; ``values``: typed parameter values
    (the API); at most one of the two. ``sample``: ``--sample k=v`` texts or a mapping,
    over the config's ``[sample]``. ``resume``: the run file to finish; ``force``: resume
    although the protocol's source changed.
    """

    protocol: str | type[Protocol] | None = None
    assignments: Sequence[str] = ()
    values: Mapping[str, Any] | None = None
    out: Path = Path(".")
    config: str | Path | None = None
    sample: Sequence[str] | Mapping[str, Any] = ()
    seed: int | None = None
    world_seed: int | None = None
    resume: Path | None = None
    force: bool = False
    dry_run: bool = False
    catalogue: str | None = None  # the run catalogue's URL (None: the config's [catalogue] url, else runs.sqlite)


@dataclass
class Prepared:
    """A checked request: everything the run needs, nothing written yet."""

    protocol: Protocol
    config: BenchConfig
    path: Path
    seed: int
    resume: bool
    header: dict[str, Any] = field(default_factory=dict)
    world_seed: int | None = None  # a new run on the simulated bench
    world: Any = None  # a resumed simulated run: its world, reloaded from the checkpoint
    notes: list[str] = field(default_factory=list)  # `rrambench: note:` lines before the run
    catalogue: str | None = None  # the run catalogue's URL, checked (None: runs.sqlite beside the run file)


@dataclass
class RunResult:
    """How a run ended: its file, final status (completed, failed, aborted, interrupted),
    the outcome of a completed run (name -> (value, unit)) and the error text, if any."""

    path: Path
    status: str
    outcome: dict[str, tuple[Any, str]] = field(default_factory=dict)
    error: str = ""


# -- checking ---------------------------------------------------------------------------------
def prepare(request: RunRequest) -> Prepared:
    """Check every input of ``request`` (UsageError, ConfigError or LimitError: one line)."""
    prepared = _prepare_resume(request) if request.resume is not None else _prepare_new(request)
    prepared.catalogue = _catalogue_url(request.catalogue or prepared.config.catalogue_url)
    return prepared


def _catalogue_url(url: str | None) -> str | None:
    """The catalogue URL, checked before the run (bad URL, driver not installed: one line)."""
    if url is None:
        return None
    from analysis.catalogue import CatalogueError, check_url

    try:
        check_url(url)
    except CatalogueError as exc:
        raise UsageError(str(exc)) from None
    return url


def _prepare_new(request: RunRequest) -> Prepared:
    from instruments.config import load_config
    from protocols.engine.protocol import simulated_work_note

    if request.protocol is None or request.protocol == "":
        raise UsageError("run needs a PROTOCOL (or --resume FILE)")
    config = load_config(request.config)  # first: its [protocols] paths name protocols too
    cls = _protocol_class(request.protocol, config)
    protocol = _with_parameters(cls, request)
    protocol.check_limits(config.limits)
    if request.seed is not None and request.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {request.seed}")
    seed = request.seed if request.seed is not None else secrets.randbits(63)
    world_seed = _world_seed(request.world_seed, protocol, config)
    sample = _ordered({**config.sample, **_sample(request.sample)})
    path = _new_run_path(Path(request.out), protocol.name)
    note = "" if config.simulated else simulated_work_note(protocol)
    # the engine records the world's seed and where the protocol came from
    return Prepared(protocol, config, path, seed, resume=False, world_seed=world_seed,
                    header={"config_path": config.source, "sample": sample}, notes=[note] if note else [])


def _prepare_resume(request: RunRequest) -> Prepared:
    from instruments.config import load_config
    from protocols.cli.run_files import open_checked
    from protocols.engine.protocol import BenchUse
    from protocols.engine.registry import source_changed
    from protocols.engine.runner import checkpoint_path

    if request.assignments or request.values or request.dry_run:
        raise UsageError("--resume takes the parameters from the run file; drop --set/--dry-run")
    if request.sample:
        raise UsageError("--resume keeps the run's sample; drop --sample")
    path = Path(request.resume)
    run = open_checked(path)  # read first in a watched helper: a damaged file is exit 2
    if run.status == "completed":
        raise UsageError(f"{path}: run already completed; nothing to resume")
    if run.status == "running":
        raise UsageError(f"{path}: its writer is still running")
    source = run.bench_config.get("source", "")
    config = load_config(request.config or (Path(source) if source and Path(source).is_file() else None))
    cls = _resumed_class(request.protocol, run, config)
    if cls.name != run.protocol:
        raise UsageError(f"{path} is a {run.protocol!r} run, not {cls.name!r}")
    changed = source_changed(run.protocol_source, cls)
    if changed and not request.force:
        raise UsageError(f"{path}: {changed}; --force resumes with the changed source")
    notes = [f"resuming with a changed source (--force): {changed}"] if changed else []
    try:
        protocol = cls.from_values(run.parameters)
    except ValueError as exc:  # ParameterError
        raise UsageError(f"{path}: {exc}") from None
    protocol.check_limits(config.limits)
    prepared = Prepared(protocol, config, path, run.seed, resume=True, notes=notes)
    if protocol.bench_use is not BenchUse.NEEDS:  # it opened no bench, and opens none now
        return prepared
    if run.simulated != config.simulated:
        raise UsageError(f"{path} was run on the {'simulated' if run.simulated else 'hardware'} bench; "
                         "resume it on the same kind (--config)")
    if config.simulated:
        checkpoint = checkpoint_path(path, run.steps_completed)
        if not checkpoint.is_file():
            raise UsageError(f"{path}: world checkpoint {checkpoint.name} is missing; cannot resume "
                             "from the same simulated state")
        from instruments.sim.world import SimWorld

        prepared.world = SimWorld.load(checkpoint)
    log.info("resuming %s after %d/%d steps", path, run.steps_completed, run.steps_total)
    return prepared


def _protocol_class(protocol: str | type[Protocol], config: BenchConfig) -> type[Protocol]:
    """The class a name, a reference or a class names (UsageError, one line, otherwise)."""
    from protocols.engine.params import ParameterError
    from protocols.engine.protocol import Protocol
    from protocols.engine.registry import get_protocol

    if isinstance(protocol, type):
        if not issubclass(protocol, Protocol) or not protocol.name:
            raise UsageError(f"{protocol.__qualname__} is not a Protocol subclass with a name")
        return protocol
    try:
        return get_protocol(protocol, config.protocol_paths)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None


def _resumed_class(protocol: str | type[Protocol] | None, run: Any, config: BenchConfig) -> type[Protocol]:
    """The class to resume ``run`` with: the one named, else where the run file says its
    protocol came from (a user file or module, loaded again), else by its name."""
    from protocols.engine.registry import is_reference, load_reference

    if protocol is not None and not (isinstance(protocol, str) and not is_reference(protocol)):
        return _protocol_class(protocol, config)
    if protocol and protocol != run.protocol:
        raise UsageError(f"{run.path} is a {run.protocol!r} run, not {protocol!r}")
    source = run.protocol_source
    if source.get("origin") in ("file", "module") and source.get("reference"):
        return load_reference(source["reference"])[0]
    return _protocol_class(run.protocol, config)


def _with_parameters(cls: type[Protocol], request: RunRequest) -> Protocol:
    from protocols.engine.params import ParameterError

    if request.assignments and request.values:
        raise UsageError("give parameters either as --set texts or as typed values, not both")
    try:
        if request.values is not None:
            return cls.from_values(request.values)
        return cls.from_assignments(list(request.assignments))
    except ParameterError as exc:
        raise UsageError(str(exc)) from None


def _world_seed(world_seed: int | None, protocol: Protocol, config: BenchConfig) -> int:
    """``--world-seed``, checked (it seeds the simulated bench's world), else the config's."""
    from protocols.engine.protocol import BenchUse

    if world_seed is None:
        return config.seed
    if world_seed < 0:
        raise UsageError(f"--world-seed must be >= 0, got {world_seed}")
    if protocol.bench_use is not BenchUse.NEEDS:
        raise UsageError(f"--world-seed: {protocol.name} opens no bench (its simulated worlds, if any, "
                         "are seeded from the run seed)")
    if not config.simulated:
        raise UsageError(f"--world-seed: {config.source} is a hardware bench; it has no simulated world")
    return world_seed


def _sample(given: Sequence[str] | Mapping[str, Any]) -> dict[str, str]:
    """``--sample key=value`` texts (or a mapping), checked against the ``[sample]`` keys."""
    from instruments.config import SAMPLE_KEYS

    if isinstance(given, Mapping):
        pairs = [(str(k), v) for k, v in given.items()]
    else:
        pairs = []
        for text in given:
            key, sep, value = text.partition("=")
            if not sep:
                raise UsageError(f"--sample {text!r}: expected key=value (keys: {', '.join(SAMPLE_KEYS)})")
            pairs.append((key.strip(), value))
    sample = {}
    for key, value in pairs:
        if key not in SAMPLE_KEYS:
            raise UsageError(f"--sample {key}: unknown key; known: {', '.join(SAMPLE_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
            raise UsageError(f"--sample {key}: needs a value (text), got {value!r}")
        sample[key] = str(value).strip()
    return sample


def _ordered(sample: dict[str, str]) -> dict[str, str]:
    """The sample in the order of the ``[sample]`` keys (chip, wafer, die, operator, notes)."""
    from instruments.config import SAMPLE_KEYS

    return {key: sample[key] for key in SAMPLE_KEYS if key in sample}


def _new_run_path(out: Path, protocol: str) -> Path:
    """A new run file in ``out`` (:func:`protocols.engine.runner.new_run_path`); ``out`` must be a folder."""
    from protocols.engine.runner import new_run_path

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a folder")
    return new_run_path(out, protocol)


def dry_run_lines(prepared: Prepared) -> list[str]:
    """What the run checks before its first step (``Protocol.validate``), without opening an
    instrument; then the steps and the estimated duration (UsageError: the line the run prints)."""
    from protocols.engine.bench_shape import BenchShape
    from protocols.engine.progress import format_duration

    protocol, config = prepared.protocol, prepared.config
    shape = BenchShape.of_config(config)
    try:
        protocol.validate(shape)
    except ValueError as exc:  # the same line the run prints (execute)
        raise UsageError(str(exc)) from None
    steps = list(protocol.plan())
    return [f"{protocol.name}: parameters valid and within the safety envelope",
            f"  checked against    {shape.describe()}"
            + ("" if config.simulated else " (the board as built; the run checks the size the board reports, "
                                             "and its loop constants)"),
            f"  steps              {len(steps)}",
            f"  estimated duration {format_duration(protocol.estimate_duration())}"]


# -- running ----------------------------------------------------------------------------------
def execute(prepared: Prepared, *, progress: Sequence[Callable[[ProgressEvent], None]] = (),
            drive: Callable[[RunEngine], RunState | None] | None = None) -> RunResult:
    """Open the bench (unless the protocol needs none), run the engine into the run file and
    return how it ended. ``progress``: engine progress subscribers. ``drive(engine)`` runs
    it to its end (default ``engine.run()`` on this thread) and returns the final state, or
    None when Ctrl-C interrupted it.

    UsageError (input the engine refused before the file existed: nothing is left behind),
    ConfigError, or BenchUnavailable (the bench could not be opened).
    """
    from instruments.errors import BenchError, ConfigError
    from protocols.engine.runner import RunEngine

    made = _make_folder(prepared.path.parent)
    try:
        with _bench(prepared) as bench:
            engine = RunEngine(prepared.protocol, bench, prepared.path, seed=prepared.seed,
                               resume=prepared.resume, header=prepared.header, catalogue=prepared.catalogue)
            for callback in progress:
                engine.subscribe(callback)
            try:
                final = (drive or run_here)(engine)
            except ValueError as exc:
                if engine.started:  # not a refusal of the input: the run itself broke at its end
                    return RunResult(prepared.path, "failed", error=f"{type(exc).__name__}: {exc}")
                raise UsageError(str(exc)) from None
    except ConfigError:
        _remove_empty(made)
        raise  # bad input (e.g. a VISA library that is not installed): exit 2, not "unavailable"
    except BenchError as exc:
        _remove_empty(made)
        raise BenchUnavailable(str(exc)) from None
    except BaseException:  # refused, or the bench would not open: the folders made for it go
        _remove_empty(made)
        raise
    status = "interrupted" if final is None else final.value
    return RunResult(prepared.path, status, outcome=dict(engine.outcome), error=engine.error)


def run_here(engine: RunEngine) -> RunState | None:
    """Run the engine on this thread: the final state, or None when Ctrl-C interrupted it."""
    try:
        return engine.run()  # raises only when refused before any step ran
    except KeyboardInterrupt:
        return None


@contextmanager
def _bench(prepared: Prepared) -> Iterator[Any]:
    """The open bench the run needs (closed, safe state, on every exit), or None."""
    from instruments.errors import BenchError, ConfigError
    from protocols.engine.protocol import BenchUse

    if prepared.protocol.bench_use is not BenchUse.NEEDS:  # simulated-only or software-only: no bench
        yield None
        return
    from instruments.bench import Bench

    kwargs = {"world": prepared.world} if prepared.resume else {"seed": prepared.world_seed}
    try:
        bench = Bench.from_config(prepared.config, **kwargs)
    except ConfigError:
        raise  # bad input (e.g. a VISA library that is not installed): exit 2
    except BenchError as exc:
        raise BenchUnavailable(str(exc)) from None
    with bench:
        yield bench


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; return those created (innermost first)."""
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
