"""The run engine: state machine, cancellation token, journal, checkpoints.

States::

    idle -> running <-> paused -> completed | aborted | failed | interrupted

``pause()``, ``resume()`` and ``abort()`` are thread-safe and take effect at the
next step boundary or the next ``check()`` inside a long step. Every finished
step is journalled (and flushed) before the next starts; the bench's
``safe_state()`` runs in ``finally`` on every exit path. On the simulated bench
the world is checkpointed after every step (``<run>.h5.state-<n>.npz``, n = steps
done) so ``--resume`` continues from the same physical state with the same
per-step seeds, and produces the datasets an uninterrupted run would have.
"""

from __future__ import annotations

import enum
import glob
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from protocols.engine.bench_shape import BenchShape
from protocols.engine.progress import EtaEstimator, ProgressEvent
from protocols.engine.protocol import BenchUse, Protocol, Step, StepContext
from protocols.engine.registry import protocol_source
from protocols.engine.run_index import RunIndex
from protocols.engine.run_writer import RunHeader, RunWriter

if TYPE_CHECKING:
    from instruments.bench import Bench

log = logging.getLogger("rrambench.engine")


class RunState(str, enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


TERMINAL = frozenset({RunState.COMPLETED, RunState.ABORTED, RunState.FAILED, RunState.INTERRUPTED})

# The only transitions the engine makes.
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.IDLE: frozenset({RunState.RUNNING}),
    RunState.RUNNING: frozenset({RunState.PAUSED} | TERMINAL),
    RunState.PAUSED: frozenset({RunState.RUNNING} | TERMINAL),
}


class Aborted(Exception):
    """Raised inside a run when the cancellation token was aborted."""


class InvalidTransition(RuntimeError):
    """A command that makes no sense in the engine's present state."""


class CancelToken:
    """Abort and pause requests, checked by the run at step boundaries and in long steps."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._abort = False
        self._pause = False

    @property
    def aborted(self) -> bool:
        return self._abort

    def abort(self) -> None:
        with self._cond:
            self._abort = True
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._pause = True

    def resume(self) -> None:
        with self._cond:
            self._pause = False
            self._cond.notify_all()

    def check(self, on_pause: Callable[[], None] | None = None,
              on_resume: Callable[[], None] | None = None) -> None:
        """Raise :class:`Aborted` if aborted; block while paused (calling the hooks)."""
        with self._cond:
            if self._abort:
                raise Aborted("run aborted")
            if not self._pause:
                return
        if on_pause is not None:
            on_pause()
        with self._cond:
            while self._pause and not self._abort:
                self._cond.wait()
            aborted = self._abort
        if aborted:
            raise Aborted("run aborted while paused")
        if on_resume is not None:
            on_resume()


def utc_now() -> str:
    """ISO 8601 UTC time with seconds, e.g. 2026-11-29T14:28:05Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def step_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of step ``index``: the same on an uninterrupted or resumed run."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def new_run_path(folder: Path, protocol: str) -> Path:
    """``folder/<UTC timestamp>-<protocol>.h5``, with a numeric suffix if that name is taken.

    The folder need not exist yet (the caller creates it before the run starts).
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{stamp}-{protocol}.h5"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{protocol}-{n}.h5"
    return path


def checkpoint_path(run_path: Path, steps_done: int) -> Path:
    """Sidecar holding the simulated world after ``steps_done`` steps."""
    return run_path.with_name(f"{run_path.name}.state-{steps_done}.npz")


class RunEngine:
    """Runs one protocol on one bench into one run file.

    ``bench``: an open bench (None for protocols that touch no instrument); a protocol
    whose ``bench_use`` is not ``NEEDS`` never gets it (nor records it). ``path``: the
    run file (created, or reopened when ``resume``). ``seed``: run seed (per-step
    streams derive from it; on resume it is read from the file). ``header``: extra
    :class:`RunHeader` fields (config_path, title, sample; world_seed defaults to the seed of
    the simulated bench's world). ``catalogue``: URL of the run catalogue the run is
    indexed in (None: ``runs.sqlite`` in the run file's folder; :mod:`analysis.catalogue`).
    """

    def __init__(self, protocol: Protocol, bench: Bench | None, path: str | Path, *,
                 seed: int, resume: bool = False, header: dict[str, Any] | None = None,
                 catalogue: str | None = None) -> None:
        self.protocol, self.path = protocol, Path(path)
        self._index = RunIndex(catalogue, self.path)  # the run catalogue (None: runs.sqlite beside the file)
        self.bench = bench if protocol.bench_use is BenchUse.NEEDS else None
        self.seed, self.resume_run = int(seed), resume
        self._header = dict(header or {})
        self.token = CancelToken()
        self.error = ""
        self.outcome: dict[str, tuple[Any, str]] = {}  # Protocol.outcome() of a completed run
        self.started = False  # True once the run file exists (errors after that are the run's, not bad input)
        self._state = RunState.IDLE
        self._cond = threading.Condition()
        self._subscribers: list[Callable[[ProgressEvent], None]] = []
        self._data_subscribers: list[Callable[..., None]] = []
        self._steps: list[Step] = []
        self._eta: EtaEstimator | None = None
        self._current = (0, "")

    # -- commands (any thread) -----------------------------------------------------------
    @property
    def state(self) -> RunState:
        return self._state

    def pause(self) -> None:
        """Pause at the next step boundary or ``check()``."""
        self._require({RunState.RUNNING, RunState.PAUSED}, "pause")
        self.token.pause()

    def resume(self) -> None:
        """Continue a paused run (or cancel a pause not yet reached)."""
        self._require({RunState.RUNNING, RunState.PAUSED}, "resume")
        self.token.resume()

    def abort(self) -> bool:
        """Stop at the next step boundary or ``check()``; False if the run already ended."""
        with self._cond:
            if self._state in TERMINAL:
                return False
            self._require({RunState.RUNNING, RunState.PAUSED}, "abort")
            self.token.abort()
            return True

    def subscribe(self, callback: Callable[[ProgressEvent], None]) -> None:
        """Receive progress events (on the run's thread)."""
        self._subscribers.append(callback)

    def subscribe_data(self, callback: Callable[..., None]) -> None:
        """Receive every record once it is written: ``callback(kind, name, *args)``.

        Called on the run's thread right after the writer took the rows, with what
        the step recorded: ``("row", name, row)``, ``("rows", name, rows)``,
        ``("trace", name, codes, preamble)`` or ``("pulses", None, columns)``. A
        subscriber only copies data, never changes it (the writer may still hold a
        trace's array until the step ends): one that raises is logged and dropped, and
        the run goes on.
        """
        self._data_subscribers.append(callback)

    def wait_for(self, states: set[RunState], timeout: float | None = None) -> bool:
        """Block until the engine is in one of ``states`` (True) or the timeout passes."""
        with self._cond:
            return self._cond.wait_for(lambda: self._state in states, timeout)

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> RunState:
        """Run every remaining step; returns the final state (blocking)."""
        self._transition(RunState.RUNNING)
        try:
            self.protocol._bind(self.bench)
            self.protocol.validate(BenchShape.of_bench(self.bench))  # what --dry-run checks, on this bench
            self._steps = list(self.protocol.plan())
            writer = self._open_writer()
        except BaseException as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self._safe_state()
            self._transition(RunState.FAILED)
            raise
        self.started = True  # the run file exists: from here on an error is the run's, not the input's
        self._index.started()
        done = writer.journal.completed
        self._eta = EtaEstimator([s.estimate for s in self._steps], done)
        final, index = RunState.COMPLETED, done
        try:
            if done == 0:
                self._checkpoint(0)
            for index in range(done, len(self._steps)):
                self._boundary()
                self._run_step(writer, index)
            index = len(self._steps)
            self._record_outcome(writer)
        except Aborted:
            final = RunState.ABORTED
        except KeyboardInterrupt:
            final, self.error = RunState.INTERRUPTED, "KeyboardInterrupt (Ctrl-C)"
            raise
        except Exception as exc:
            final, self.error = RunState.FAILED, f"{type(exc).__name__}: {exc}"
            log.exception("step %d failed", index)
        finally:
            self.protocol._enter_step(None)
            self._safe_state()
            self._finish(writer, final)
        return final

    def _open_writer(self) -> RunWriter:
        if self.resume_run:
            # datasets() is also where a protocol prepares its per-run state (the cells it
            # selected, its placement); a resumed run needs that state, not the declarations.
            self.protocol.datasets()
            self._index.prepare_resume()  # read while the file is closed
            writer = RunWriter.reopen(self.path, instrument_snapshot=(
                self.bench.instrument_settings() if self.bench is not None else {}),
                protocol_sha256=protocol_source(type(self.protocol))["sha256"])
            if writer.journal.completed > len(self._steps):
                writer.close()
                raise ValueError(f"{self.path}: journal has more steps than the plan")
            return writer
        snapshot = self.bench.snapshot() if self.bench is not None else {}
        instruments = snapshot.pop("instruments", {})  # to /entry/instrument/<name>, not instrument_settings
        world = self.bench.world if self.bench is not None and self.bench.simulated else None
        header = RunHeader(
            protocol=self.protocol.name or type(self.protocol).__name__,
            parameters=self.protocol.parameters(),
            seed=self.seed,
            started=utc_now(),
            steps_total=len(self._steps),
            simulated=self.protocol.bench_use is BenchUse.SIMULATED_ONLY or world is not None,
            simulated_parts=self.protocol.simulated_parts(),
            bench_config=snapshot.get("config", {}),
            identities=snapshot.get("identities", {}),
            settings=snapshot,
            instrument_snapshot=instruments,
            protocol_source=protocol_source(type(self.protocol)),  # the GUI's, the CLI's and the API's runs alike
            **{"world_seed": world.seed if world is not None else None, **self._header},
        )
        self._index.prepare_new(header)
        return RunWriter.create(self.path, header, self.protocol.datasets(), signal=self.protocol.signal)

    def _run_step(self, writer: RunWriter, index: int) -> None:
        step = self._steps[index]
        self._current = (index, step.name)
        self._emit(0.0)
        start, clock_start = time.time(), self._clock()
        ctx = StepContext(
            index=index,
            rng=step_rng(self.seed, index),
            record=lambda kind, name, *args: self._record_and_notify(writer, index, kind, name, *args),
            check=self._boundary,
            progress=self._emit,
            recorded=writer.read,
        )
        self.protocol._enter_step(ctx)
        try:
            self.protocol.run_step(step)
        except BaseException as exc:
            status = RunState.ABORTED if isinstance(exc, Aborted) else (
                RunState.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else RunState.FAILED)
            writer.end_step(index, step.name, status.value, start=start, end=time.time(),
                            clock_start=clock_start, clock_end=self._clock())
            raise
        finally:
            self.protocol._enter_step(None)
        writer.flush()
        self._checkpoint(index + 1)
        writer.end_step(index, step.name, RunState.COMPLETED.value, start=start, end=time.time(),
                        clock_start=clock_start, clock_end=self._clock())
        checkpoint_path(self.path, index).unlink(missing_ok=True)
        self._current = (index + 1, step.name)
        self._emit(0.0)

    def _record_and_notify(self, writer: RunWriter, index: int, kind: str, name: str | None, *args: Any) -> None:
        self._record(writer, index, kind, name, *args)
        for callback in list(self._data_subscribers):
            try:
                callback(kind, name, *args)
            except Exception:  # a subscriber copies data; it must not fail the run that wrote it
                log.exception("data subscriber %r failed on %s %s; it is dropped", callback, kind, name)
                self._data_subscribers.remove(callback)

    @staticmethod
    def _record(writer: RunWriter, index: int, kind: str, name: str | None, *args: Any) -> None:
        if kind == "row":
            writer.append(name, np.asarray(args[0])[np.newaxis, ...])
        elif kind == "rows":
            writer.append(name, args[0])
        elif kind == "trace":
            writer.append_trace(name, args[0], args[1])
        elif kind == "pulses":
            writer.append_pulses(index, args[0])
        else:
            raise ValueError(f"unknown record kind {kind!r}")

    def _boundary(self) -> None:
        self.token.check(on_pause=lambda: self._transition(RunState.PAUSED),
                         on_resume=lambda: self._transition(RunState.RUNNING))

    def _checkpoint(self, steps_done: int) -> None:
        """Save the simulated world after ``steps_done`` steps, atomically (no-op on hardware)."""
        if self.bench is None or not self.bench.simulated:
            return
        self.bench.save_state(checkpoint_path(self.path, steps_done))  # atomic (world.save)

    def _safe_state(self) -> None:
        if self.bench is None:
            return
        failures = self.bench.safe_state()
        if failures:
            text = "safe state failed: " + "; ".join(failures)
            self.error = f"{self.error}; {text}" if self.error else text

    def _record_outcome(self, writer: RunWriter) -> None:
        """The protocol's key metrics of the completed run (``Protocol.outcome``), from what it
        recorded, into the run file and ``self.outcome``. A failure is logged, not fatal: the
        data are complete whatever a summary of them does."""
        def refuse(*_: Any) -> None:
            raise RuntimeError("outcome() reads what the run recorded; it records nothing")

        index = len(self._steps)
        self.protocol._enter_step(StepContext(index=index, rng=step_rng(self.seed, index), record=refuse,
                                              check=lambda: None, progress=lambda _: None, recorded=writer.read))
        try:
            self.outcome = dict(self.protocol.outcome())
            writer.write_outcome(self.outcome)
        except Exception:
            log.exception("outcome of %s could not be computed", self.protocol.name)
            self.outcome = {}
        finally:
            self.protocol._enter_step(None)

    def _finish(self, writer: RunWriter, final: RunState) -> None:
        try:
            writer.finish(final.value, error=self.error, ended=utc_now())
            if final == RunState.COMPLETED:
                for sidecar in self.path.parent.glob(f"{glob.escape(self.path.name)}.state-*"):
                    sidecar.unlink()
        finally:
            self._index.ended()  # from the closed file: what it says is what the catalogue says
            self._transition(final)
            self._emit(0.0)

    def _clock(self) -> float:
        return float(self.bench.clock.now()) if self.bench is not None else time.time()

    # -- state and events -------------------------------------------------------------------
    def _require(self, allowed: set[RunState], command: str) -> None:
        if self._state not in allowed:
            raise InvalidTransition(f"cannot {command} a run that is {self._state.value}")

    def _transition(self, new: RunState) -> None:
        with self._cond:
            if new not in TRANSITIONS.get(self._state, frozenset()):
                raise InvalidTransition(f"{self._state.value} -> {new.value} is not a run transition")
            log.info("run %s: %s -> %s", self.path.name, self._state.value, new.value)
            self._state = new
            self._cond.notify_all()
        if new in (RunState.PAUSED, RunState.RUNNING) and self._eta is not None:
            self._emit(0.0)

    def _emit(self, within: float) -> None:
        if not self._subscribers or self._eta is None:
            return
        if not 0.0 <= within <= 1.0:
            raise ValueError(f"step progress must be within 0..1, got {within}")
        index, name = self._current
        fraction = 1.0 if self._state == RunState.COMPLETED else self._eta.fraction(index, within)
        event = ProgressEvent(index=index, total=len(self._steps), name=name, fraction=fraction,
                              eta=self._eta.eta(fraction) if self._state not in TERMINAL else 0.0,
                              state=self._state.value)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("progress subscriber %r failed; it is dropped", callback)
                self._subscribers.remove(callback)
