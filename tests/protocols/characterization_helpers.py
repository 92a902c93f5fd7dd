"""Shared pieces of the characterization protocol tests (run, abort on cue, open)."""

from __future__ import annotations

from pathlib import Path

from analysis import open_run
from protocols.engine.protocol import Protocol
from protocols.engine.runner import RunEngine, RunState


def run(bench, protocol: Protocol, path: Path, seed: int = 1):
    """Run ``protocol`` to completion on ``bench``; the opened run file."""
    engine = RunEngine(protocol, bench, path, seed=seed)
    state = engine.run()
    assert state == RunState.COMPLETED, engine.error
    return open_run(path)


def run_and_abort(bench, protocol: Protocol, path: Path, *, after_events: int = 1, at_step: str | None = None):
    """Run ``protocol``, aborting from the run's own thread at its ``after_events``-th progress report,
    or (``at_step``) at the first report of the step of that name.

    The abort lands at the protocol's next ``check()``, mid-step and deterministic
    (no race with a second thread). Returns (engine, opened run file).
    """
    engine = RunEngine(protocol, bench, path, seed=1)
    seen = []

    def on_progress(event) -> None:
        if event.state == "running" and event.fraction > 0:
            seen.append(event)
            if (event.name == at_step) if at_step is not None else len(seen) == after_events:
                engine.abort()

    engine.subscribe(on_progress)
    assert engine.run() == RunState.ABORTED
    return engine, open_run(path)


def assert_consistent_abort(bench, run_file) -> None:
    """An aborted run: status aborted, outputs safe, every declared dataset readable."""
    assert run_file.status == "aborted"
    assert run_file.steps_completed < run_file.steps_total
    assert bench.world.outputs_safe(), "the engine put the bench in its safe state"
    for name in run_file.datasets:
        assert run_file.read(name) is not None
