"""The bench worker: every instrument I/O of the GUI runs here, never on the Qt thread.

One single-thread executor owns the bench: connecting, reading maps, running a
protocol (the blocking ``RunEngine.run()``) and disconnecting are queued jobs run
in order. What the jobs learn goes onto a :class:`~gui.live_queue.LiveQueue`,
which the Qt thread drains on a timer.

OUTPUTS OFF does not queue behind a running step: it sets the run's cancellation
token at once and calls ``bench.safe_state()`` from its own short-lived thread.
The transports' locks make each instrument exchange atomic, so the safe-state
commands go out after at most the one exchange in flight; the engine's own
``safe_state()`` in its ``finally`` then runs once more when the step unwinds.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from gui.live_queue import LiveQueue
from instruments.bench import Bench
from instruments.config import BenchConfig
from instruments.errors import BenchError
from protocols.engine.progress import ProgressEvent
from protocols.engine.protocol import Protocol, simulated_work_note
from protocols.engine.runner import TERMINAL, RunEngine, new_run_path

log = logging.getLogger("rrambench.gui.worker")

READ_BIAS = 0.1  # V, read bias of the map refresh
READ_WINDOW = 1e-6  # s, integration window of the map refresh


@dataclass(frozen=True)
class BenchInfo:
    """What the bench panel shows after connecting."""

    backend: str
    resources: dict[str, str]
    identities: dict[str, str]
    limits: dict[str, float]
    n_macros: int
    rows: int
    cols: int
    simulated: bool
    outputs_safe: bool | None  # world.outputs_safe() on the simulated bench, None on hardware


@dataclass(frozen=True)
class RunDone:
    """A run's end: its file, final state and error text ("" when none)."""

    path: Path
    protocol: str
    state: str
    error: str
    outputs_safe: bool | None  # world.outputs_safe() on the simulated bench, None on hardware


class LiveTap:
    """Hands every row a run records to the GUI's live queue (``RunEngine.subscribe_data``).

    The rows go to the run file first; the tap only copies them. Scalars become
    series points, vectors and maps latest values, scope codes volts.
    """

    def __init__(self, queue: LiveQueue, protocol: Protocol) -> None:
        self._queue = queue
        self.protocol = protocol
        self._last_map: np.ndarray | None = None

    def __call__(self, kind: str, name: str | None, *args: Any) -> None:
        try:
            self._tap(kind, name, *args)
        except Exception:  # the live view is a copy: a row it cannot show must never fail the run
            log.exception("live view of %s %s skipped", kind, name)

    def _tap(self, kind: str, name: str | None, *args: Any) -> None:
        q = self._queue
        if kind == "trace":
            codes, pre = np.asarray(args[0], dtype=float), args[1]
            volts = (codes - pre["y_reference"]) * pre["y_increment"] + pre["y_origin"]
            t = (np.arange(volts.shape[-1]) - pre["x_reference"]) * pre["x_increment"] + pre["x_origin"]
            q.latest(("trace", name), (t, volts))
            return
        if kind == "pulses":
            q.extend(("pulse_read", None), np.asarray(args[0]["read"], dtype=float))
            return
        value = np.asarray(args[0], dtype=float)
        if kind == "rows" and len(value) == 0:
            return
        row_ndim = value.ndim if kind == "row" else value.ndim - 1
        if row_ndim == 0:
            q.extend(("series", name), value.ravel())
            if name == "macro" and self._last_map is not None:  # read-array: map, then its macro index
                q.latest(("map", int(value.ravel()[-1])), self._last_map)
                self._last_map = None
        elif row_ndim == 1 and value.shape[-1] == 2 and kind == "rows":
            q.latest(("points", name), value)
        elif row_ndim == 1:
            last = value if kind == "row" else value[-1]
            q.latest(("vector", name), last)
            target = getattr(self.protocol, "target", None)  # write-verify: error histogram of the read-back
            if name == "programmed" and target is not None and np.shape(target) == last.shape:
                q.latest(("vector", "error"), last - target)
        elif row_ndim == 2:
            last = value if kind == "row" else value[-1]
            if last.shape[-1] == 2:
                q.latest(("points", name), last)
            else:
                self._last_map = last
                q.latest(("image", name), last)


class BenchWorker:
    """Owns the bench on a worker thread; reports through ``queue``.

    ``data_dir``: folder of new run files (created when the first run starts).
    """

    def __init__(self, queue: LiveQueue, data_dir: str | Path) -> None:
        self.queue = queue
        self.data_dir = Path(data_dir)
        self.bench: Bench | None = None
        self.engine: RunEngine | None = None
        self.info: BenchInfo | None = None
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-io")
        self._engine_lock = threading.Lock()
        self._shut = False

    # -- jobs ------------------------------------------------------------------------------
    def submit(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``fn`` on the worker thread; a failure becomes an ``error`` event naming ``what``."""

        def job() -> Any:
            try:
                return fn(*args, **kwargs)
            except (BenchError, OSError, ValueError, RuntimeError) as exc:
                log.error("%s failed: %s", what, exc)
                self.queue.event("error", f"{what}: {exc}")
                raise

        return self._jobs.submit(job)

    @property
    def connected(self) -> bool:
        return self.bench is not None

    @property
    def busy(self) -> bool:
        """A run is in progress (or queued to start on the worker)."""
        engine = self.engine
        return engine is not None and engine.state not in TERMINAL

    def connect(self, config: BenchConfig, *, backend: str | None = None, world: Any = None,
                seed: int | None = None) -> Future:
        """Open the bench (``backend``: "sim" or "hardware" overrides the config's)."""
        return self.submit("connect", self._connect, config, backend, world, seed)

    def disconnect(self) -> Future:
        """Safe state, then close every instrument."""
        return self.submit("disconnect", self._disconnect)

    def read_maps(self, macros: list[int] | None = None) -> Future:
        """Read whole-macro conductance maps (all macros by default) into ``("map", m)`` values."""
        return self.submit("read maps", self._read_maps, macros)

    def read_cell(self, macro: int, row: int, col: int) -> Future:
        """Read one cell (S) into a ``cell_read`` event."""
        return self.submit("read cell", self._read_cell, macro, row, col)

    def start_run(self, protocol: Protocol, *, seed: int | None = None) -> RunEngine:
        """Queue ``protocol`` on the bench; returns its engine (state idle until the worker starts it)."""
        if self.bench is None:
            raise RuntimeError("connect to a bench before running a protocol")
        protocol.check_limits(self.bench.limits)
        path = new_run_path(self.data_dir, protocol.name)
        run_seed = secrets.randbits(63) if seed is None else int(seed)
        config = self.bench.config
        note = "" if self.bench.simulated else simulated_work_note(protocol)
        if note:
            log.warning("%s", note)
        # the engine records the world's seed (the connected simulated world's, None on hardware)
        engine = RunEngine(protocol, self.bench, path, seed=run_seed,
                           header={"config_path": config.source, "sample": dict(config.sample)},
                           catalogue=config.catalogue_url)
        engine.subscribe_data(LiveTap(self.queue, protocol))
        engine.subscribe(self._progress)
        with self._engine_lock:
            self.engine = engine
        self.submit(f"run {protocol.name}", self._run, engine)
        return engine

    def outputs_off(self) -> threading.Thread:
        """Emergency stop: abort the run now and put every output in its safe state.

        Returns the thread doing the safe state (join it to wait); an
        ``outputs_off`` event reports failures and, on the simulated bench,
        ``world.outputs_safe()``.
        """
        with self._engine_lock:
            engine = self.engine
        if engine is not None and engine.state not in TERMINAL:
            engine.token.abort()  # works in every state, also before the worker has started it
        thread = threading.Thread(target=self._safe_now, name="outputs-off", daemon=True)
        thread.start()
        return thread

    def shutdown(self, timeout: float = 30.0) -> None:
        """Abort any run, safe state, close the bench and stop the worker thread (once; later calls do nothing)."""
        if self._shut:
            return
        self._shut = True
        with self._engine_lock:
            engine = self.engine
        if engine is not None and self.busy:
            engine.token.abort()
        future = self.disconnect()
        try:
            future.result(timeout=timeout)
        except (BenchError, OSError, ValueError, RuntimeError) as exc:
            log.error("shutting the bench down: %s", exc)
        self._jobs.shutdown(wait=True)

    # -- on the worker thread -----------------------------------------------------------------
    def _connect(self, config: BenchConfig, backend: str | None, world: Any, seed: int | None) -> BenchInfo:
        if self.bench is not None:
            self._disconnect()
        if backend is not None and backend != config.backend:
            config = replace(config, backend=backend)
        if not config.simulated and not all(config.resources.get(r) for r in ("smu", "scope", "macro_controller")):
            raise ValueError("the hardware backend needs smu, scope and controller in [resources]")
        bench = Bench.from_config(config, world=world, seed=seed)
        try:
            board = bench.macro_controller.info()
            info = BenchInfo(backend=config.backend, resources=bench.resources, identities=bench.identities(),
                             limits=bench.limits.as_dict(), n_macros=board.n_macros, rows=board.rows,
                             cols=board.cols, simulated=bench.simulated,
                             outputs_safe=bench.world.outputs_safe() if bench.world is not None else None)
        except BaseException:
            bench.close()
            raise
        self.bench, self.info = bench, info
        log.info("connected to the %s bench", config.backend)
        self.queue.event("connected", info)
        return info

    def _disconnect(self) -> None:
        bench, self.bench, self.info = self.bench, None, None
        if bench is None:
            return
        try:
            failures = bench.safe_state()
            if failures:
                self.queue.event("error", "safe state on disconnect: " + "; ".join(failures))
        finally:
            bench.close()
        log.info("disconnected")
        self.queue.event("disconnected", None)

    def _read_maps(self, macros: list[int] | None) -> None:
        bench, info = self._need_bench()
        for macro in range(info.n_macros) if macros is None else macros:
            g = bench.macro_controller.read_macro(macro, bias=READ_BIAS, window=READ_WINDOW)
            self.queue.latest(("map", macro), g)

    def _read_cell(self, macro: int, row: int, col: int) -> float:
        bench, _ = self._need_bench()
        g = float(bench.macro_controller.read_batch(macro, row, col, bias=READ_BIAS, window=READ_WINDOW))
        self.queue.event("cell_read", (macro, row, col, g))
        return g

    def _run(self, engine: RunEngine) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.queue.event("run_started", (engine.path, engine.protocol.name))
        started = time.monotonic()
        try:
            state = engine.run().value
        except Exception as exc:  # refused before its first step (bad region, bench error): report it
            log.exception("run %s refused", engine.path.name)
            state = engine.state.value
            engine.error = engine.error or f"{type(exc).__name__}: {exc}"
        world = self.bench.world if self.bench is not None else None
        done = RunDone(path=engine.path, protocol=engine.protocol.name, state=state, error=engine.error,
                       outputs_safe=None if world is None else world.outputs_safe())
        log.info("run %s %s after %.1f s", engine.path.name, state, time.monotonic() - started)
        self.queue.event("run_done", done)
        return state

    def _progress(self, event: ProgressEvent) -> None:
        self.queue.latest("progress", event)
        self.queue.extend(("progress", None), [[time.monotonic(), event.fraction]])

    def _safe_now(self) -> None:
        bench = self.bench
        if bench is None:
            self.queue.event("outputs_off", {"failures": ["no bench connected"], "safe": None})
            return
        failures = bench.safe_state()
        safe = bench.world.outputs_safe() if bench.world is not None else None
        if failures:
            log.error("OUTPUTS OFF: %s", "; ".join(failures))
        else:
            log.warning("OUTPUTS OFF: every instrument in its safe state")
        self.queue.event("outputs_off", {"failures": failures, "safe": safe})

    def _need_bench(self) -> tuple[Bench, BenchInfo]:
        if self.bench is None or self.info is None:
            raise RuntimeError("no bench connected")
        return self.bench, self.info
