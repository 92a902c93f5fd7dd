"""Fault matrix: every link x fault x protocol phase ends as docs/reliability.md says.

For each case the run must end in its documented status, with the simulated
instruments' outputs safe, the run file readable by ``analysis.open_run``, and
finishable by ``rrambench run --resume`` when its status allows it. The cases and
their expected outcomes are data in ``fault_cases.py`` (the doc's table is printed
from them by ``fault_table.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fault_cases import CASES, KILL_CASES, MID_STEP, MID_STEP_MESSAGES, PROTOCOLS, Injector, expected, write_config

from analysis import open_run
from instruments.bench import Bench
from instruments.config import load_config
from protocols.cli.main import main as cli_main
from protocols.engine.registry import get_protocol
from protocols.engine.runner import RunEngine

HERE = Path(__file__).resolve().parent


def run_with_fault(tmp_path: Path, link: str, fault: str, phase: str) -> tuple[Path, bool, str]:
    """Run the link's protocol with the fault injected in ``phase``: (run file, outputs safe, error)."""
    config = load_config(write_config(tmp_path))  # long timeouts: the injector shortens the faulted link's
    name, assignments = PROTOCOLS[link]
    protocol = get_protocol(name).from_assignments(assignments)
    path = tmp_path / f"{name}.h5"
    with Bench.from_config(config, seed=0) as bench:
        injector = Injector(bench, link, fault)
        engine = RunEngine(protocol, bench, path, seed=1, header={"config_path": config.source, "world_seed": 0})

        def on_progress(event) -> None:
            if phase == "configure" and event.index == 0 and event.state == "running":
                injector.arm(0)
            elif phase == "mid-step" and event.index == MID_STEP[link] and event.state == "running" \
                    and injector._countdown is None and not injector.active:
                injector.arm(MID_STEP_MESSAGES)
            elif phase == "finalisation" and event.index == event.total and event.state == "running":
                injector.fire()

        engine.subscribe(on_progress)
        engine.run()
        assert injector.active, f"the {fault} fault on {link} never started in phase {phase}"
        safe = bench.world.outputs_safe()  # before the bench's own safe state on leaving the block
    return path, safe, engine.error


def resume(path: Path, config: Path) -> int:
    return cli_main(["run", "--resume", str(path), "--config", str(config)])


@pytest.mark.parametrize(("link", "fault", "phase"), CASES, ids=["-".join(c) for c in CASES])
@pytest.mark.slow
def test_fault_ends_in_documented_state(tmp_path, link, fault, phase):
    """A fault on one link ends the run in its documented status, outputs safe, file readable, resumable."""
    want = expected(link, fault, phase)
    path, safe, error = run_with_fault(tmp_path, link, fault, phase)
    run = open_run(path)
    assert run.status == want.status, f"status {run.status!r}, error {error!r}"
    assert safe is want.safe
    if want.status == "failed":
        assert run.error, "a failed run names its error"
    if want.resumable:
        # the fault is gone: resume with healthy timeouts on every link, or a loaded machine's slow
        # reply on the faulted link's short timeout (0.1 s) fails the resume itself
        healthy = tmp_path / "healthy"
        healthy.mkdir()
        assert resume(path, write_config(healthy)) == 0
        resumed = open_run(path)
        assert resumed.status == "completed"
        assert resumed.steps_completed == resumed.steps_total
        assert resumed.resumes and resumed.resumes[-1]["previous_status"] == want.status
    else:
        assert resume(path, tmp_path / "bench.toml") == 2  # refused: nothing to resume


KILLER = """
import os, signal, sys
from protocols.engine import runner as engine
from protocols.cli.main import main
phase = sys.argv[1]
run_step, finish = engine.RunEngine._run_step, engine.RunEngine._finish
def kill():
    os.kill(os.getpid(), signal.SIGKILL)
def step(self, writer, index):
    if phase == "configure" and index == 0 or phase == "mid-step" and index == len(self._steps) - 1:
        self.protocol._enter_step(None)
        kill()
    return run_step(self, writer, index)
def closing(self, writer, final):
    if phase == "finalisation":
        kill()
    return finish(self, writer, final)
engine.RunEngine._run_step, engine.RunEngine._finish = step, closing
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(("link", "fault", "phase"), KILL_CASES, ids=["-".join(c) for c in KILL_CASES])
@pytest.mark.slow
def test_killed_run_is_interrupted_readable_and_resumable(tmp_path, link, fault, phase):
    """SIGKILL of `rrambench run` in any phase leaves a readable file, reported interrupted, that resumes."""
    config = write_config(tmp_path, "smu")
    name, assignments = PROTOCOLS["smu"]
    argv = ["run", name, "--config", str(config), "--out", str(tmp_path), "--seed", "1"]
    for a in assignments:
        argv += ["--set", a]
    done = subprocess.run([sys.executable, "-c", KILLER, phase, *argv], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    (path,) = tmp_path.glob("*.h5")
    want = expected(link, fault, phase)
    run = open_run(path)
    assert run.status == want.status
    assert resume(path, config) == 0
    resumed = open_run(path)
    assert resumed.status == "completed" and resumed.steps_completed == resumed.steps_total
