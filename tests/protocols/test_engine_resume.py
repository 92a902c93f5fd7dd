"""Crash-resume over the real CLI: a SIGKILLed run is reported interrupted and resumes
to exactly the datasets of an uninterrupted run with the same seed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis import open_run

# Slow enough steps on the simulated bench that the kill lands mid-run.
SLOW = ["--set", "macros=0,1,2,3", "--set", "repeats=1000", "--seed", "11"]


def rrambench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "protocols.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _wait_for_steps(out: Path, proc: subprocess.Popen, steps: int, timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list(out.glob("*.h5"))
        if files:
            try:
                if open_run(files[0]).steps_completed >= steps:
                    return files[0]
            except (OSError, ValueError, KeyError):
                pass  # file still being created: its objects appear before SWMR starts
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be killed: {proc.stderr.read()}")
        time.sleep(0.01)
    pytest.fail("run did not complete 2 steps in time")


def _datasets(path: Path) -> dict[str, np.ndarray]:
    run = open_run(path)
    return {p: run.read(p) for p in run.datasets if p.startswith("/entry/data")}


@pytest.mark.slow
def test_killed_run_is_interrupted_and_resume_equals_an_uninterrupted_run(tmp_path):
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen([sys.executable, "-m", "protocols.cli", "run", "read-array", *SLOW,
                             "--out", str(killed_dir)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        path = _wait_for_steps(killed_dir, proc, 2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()

    info = rrambench("info", str(path), "--json", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["status"] == "interrupted"
    assert 2 <= doc["steps_completed"] < doc["steps_total"] == 4
    assert doc["ended"] is None

    resumed = rrambench("run", "--resume", str(path), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == str(path)
    run = open_run(path)
    assert (run.status, run.steps_completed) == ("completed", 4)
    assert [e.index for e in run.journal] == [0, 1, 2, 3]
    assert not list(killed_dir.glob("*.state-*")), "checkpoints are removed once the run completes"

    clean = rrambench("run", "read-array", *SLOW, "--out", str(clean_dir), cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    expected = _datasets(Path(clean.stdout.strip().splitlines()[-1]))
    got = _datasets(path)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
