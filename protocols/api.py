"""The Python API: run a protocol through the engine from a script or a notebook.

::

    from protocols import run_protocol

    result = run_protocol("read-array", {"macros": [0], "bias": 0.1}, out="runs",
                          sample={"chip": "C7", "die": "3"})
    print(result.path, result.status, result.outcome)

The same code path as ``rrambench run`` (:mod:`protocols.engine.launch`): the same
checks before anything is written, the journal, the run file, the safe state and the same
resume semantics. A progress bar (tqdm: a text bar in terminals, a widget in notebooks)
follows the engine's progress events. Ctrl-C (a notebook's "interrupt the kernel") pauses
the run at the next step boundary; Enter continues it (in a terminal); a second Ctrl-C
aborts it, outputs in their safe state, the file finishable later with ``resume=PATH``.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocols.engine.launch import RunRequest, RunResult, execute, prepare

if TYPE_CHECKING:
    from protocols.engine.progress import ProgressEvent
    from protocols.engine.protocol import Protocol
    from protocols.engine.runner import RunEngine, RunState

__all__ = ["RunResult", "run_protocol"]


def run_protocol(protocol: str | type[Protocol] | None, params: Mapping[str, Any] | None = None, *,
                 out: str | Path = ".", config: str | Path | None = None,
                 sample: Mapping[str, Any] | None = None, seed: int | None = None,
                 world_seed: int | None = None, resume: str | Path | None = None, force: bool = False,
                 progress: bool | Callable[[ProgressEvent], None] = True) -> RunResult:
    """Run ``protocol`` on the bench into a new run file in ``out``; block until it ends.

    ``protocol``: a name (``rrambench list``), ``"PATH.py:Class"``, ``"module:Class"`` or a
    Protocol subclass. ``params``: parameter values in SI units as the protocol declares
    them (defaults for the rest). ``config``: bench config TOML (None: the simulated
    bench). ``sample``: chip, wafer, die, operator, notes over the config's ``[sample]``.
    ``seed``: run seed (None: random); ``world_seed``: seed of the simulated bench's world.
    ``resume``: an unfinished run file to finish instead (``protocol`` may be None: the file
    names it; the parameters come from it; ``force`` resumes although the protocol's source
    changed). ``progress``:
    True a tqdm bar, False none, or a callable receiving every
    :class:`~protocols.engine.progress.ProgressEvent` (on the run's thread).

    Returns the :class:`~protocols.engine.launch.RunResult`: ``path``, ``status``
    (completed, failed, aborted, interrupted), ``outcome`` (name -> (value, unit)) and
    ``error``. Bad input raises ``UsageError``, ``ConfigError`` or ``LimitError`` (the line
    ``rrambench run`` prints) before anything is written; a bench that does not open
    raises ``BenchUnavailable``.
    """
    request = RunRequest(protocol=protocol, values=params, out=Path(out), config=config, sample=dict(sample or {}),
                         seed=seed, world_seed=world_seed, resume=Path(resume) if resume is not None else None,
                         force=force)
    prepared = prepare(request)
    for note in prepared.notes:
        print(f"rrambench: note: {note}", file=sys.stderr)
    bar = _TqdmBar(prepared.protocol.name) if progress is True else None
    subscribers = [bar] if bar is not None else ([progress] if callable(progress) else [])
    try:
        return execute(prepared, progress=subscribers, drive=_drive_with_ctrl_c)
    finally:
        if bar is not None:
            bar.close()


class _TqdmBar:
    """A tqdm bar fed by progress events: percent done, step, its name, the engine's state."""

    def __init__(self, name: str) -> None:
        from tqdm.auto import tqdm  # a widget in notebooks, a text bar elsewhere

        self._name = name
        # the engine's ETA (steps weighted by their estimates) rides in {unit}: tqdm's own would
        # extrapolate percent per second, and its {postfix} field comes with a leading comma
        self._bar = tqdm(total=100.0, desc=name, unit="", bar_format="{desc} {percentage:5.1f}%|{bar}| {unit}")

    def __call__(self, event: ProgressEvent) -> None:
        from protocols.engine.progress import format_duration

        state = "" if event.state == "running" else f" [{event.state}]"
        self._bar.n = round(100.0 * event.fraction, 3)
        self._bar.unit = f"ETA {format_duration(event.eta)}{state}"
        self._bar.set_description_str(f"{self._name} step {min(event.index + 1, event.total)}/{event.total} "
                                      f"{event.name[:40]}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _drive_with_ctrl_c(engine: RunEngine) -> RunState | None:
    """Run the engine on a thread of its own while this (main) thread turns Ctrl-C into
    pause, then abort. Off the main thread (no signal handler possible): the engine runs
    here and Ctrl-C interrupts it, as in ``rrambench run``."""
    from protocols.engine.launch import run_here

    if threading.current_thread() is not threading.main_thread():
        return run_here(engine)
    ended: dict[str, Any] = {}

    def run() -> None:
        try:
            ended["state"] = engine.run()
        except BaseException as exc:  # re-raised on the caller's thread
            ended["error"] = exc

    presses = 0

    def on_ctrl_c(signum: int, frame: Any) -> None:
        nonlocal presses
        presses += 1
        # the token, not engine.pause(): it holds also before the engine left "idle"
        if presses == 1:
            engine.token.pause()
            keys = ", Enter continues" if _interactive() else ""
            print(f"\nrrambench: pausing {engine.path.name} at the next step boundary; Ctrl-C again aborts "
                  f"(outputs safe; finish it later with resume=PATH){keys}", file=sys.stderr, flush=True)
        else:
            engine.token.abort()
            print("\nrrambench: aborting; the outputs go to their safe state", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    thread = threading.Thread(target=run, name=f"rrambench run {engine.path.name}", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
            if presses == 1 and _enter_pressed():
                presses = 0
                engine.token.resume()
                print("rrambench: continuing", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    if "error" in ended:
        raise ended["error"]
    return ended["state"]


def _interactive() -> bool:
    """Can the operator press Enter here (a POSIX terminal)?"""
    return os.name == "posix" and sys.stdin is not None and sys.stdin.isatty()


def _enter_pressed() -> bool:
    if not _interactive():
        return False
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(ready) and sys.stdin.readline() is not None
