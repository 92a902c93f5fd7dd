"""Live viewers never break a run: SWMR readers hold the file through its end, and
``rrambench info --follow`` prints the steps as they land.

Each run is a real ``rrambench run`` process whose steps wait for a go-ahead (a file
in a gate folder) so the viewers are certainly there while it runs and ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis import open_run

#: ``rrambench run`` whose step ``i`` (0-based) waits until ``GATE/go-<i>`` or ``GATE/go-all``
#: exists; then it runs a bit slower than usual, so every step is seen landing.
GATED_RUN = """
import sys, time
from pathlib import Path
from protocols.engine import runner
from protocols.cli.main import main
gate = Path(sys.argv[1])
run_step = runner.RunEngine._run_step
def gated(self, writer, index):
    deadline = time.monotonic() + 60
    while not ((gate / f"go-{index}").exists() or (gate / "go-all").exists()) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    return run_step(self, writer, index)
runner.RunEngine._run_step = gated
sys.exit(main(sys.argv[2:]))
"""

#: A viewer: opens the run file as an SWMR reader as soon as it can, says so with a file,
#: refreshes the status and the journal until told to stop, then prints what it saw last.
VIEWER = """
import sys, time
from pathlib import Path
import h5py
folder, ready, stop = (Path(a) for a in sys.argv[1:4])
deadline = time.monotonic() + 60
while True:
    files = sorted(folder.glob("*.h5"))
    try:
        f = h5py.File(files[0], "r", swmr=True)
        break
    except (IndexError, OSError):  # no file yet, or the writer still creates it (locked)
        if time.monotonic() > deadline:
            sys.exit("no run file to view")
        time.sleep(0.02)
ready.touch()
status, journal = f["entry/status"], f["entry/journal/status"]
while not stop.exists():
    for ds in (status, journal):
        ds.refresh()
    time.sleep(0.02)
for ds in (status, journal):
    ds.refresh()
print(status[()].decode(), journal.shape[0])
f.close()
"""

STEPS = 3
PROTOCOL = ["read-array", "--set", "macros=0,1,2", "--set", "repeats=2", "--seed", "3"]


def _start_run(tmp_path: Path) -> tuple[subprocess.Popen, Path, Path]:
    gate, out = tmp_path / "gate", tmp_path / "runs"
    gate.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", GATED_RUN, str(gate), "run", *PROTOCOL, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    return proc, gate, out


def _follow_a_live_run(tmp_path: Path, released: int):
    """A gated run whose first ``released`` steps may go, and ``info --follow`` on its file:
    (run, gate, run file, follower)."""
    run, gate, out = _start_run(tmp_path)
    for index in range(released):
        (gate / f"go-{index}").touch()
    _wait_for(lambda: list(out.glob("*.h5")), "the run file")
    (path,) = out.glob("*.h5")
    follow = subprocess.Popen([sys.executable, "-m", "protocols.cli", "info", "--follow", str(path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return run, gate, path, follow


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("viewers", [1, 3])
@pytest.mark.slow
def test_a_run_ends_completed_while_swmr_readers_hold_its_file(tmp_path, viewers):
    """1 and 3 reader processes hold the file (swmr=True, refresh in a loop) from before the
    first step to after the run's end: the run exits 0, the file says completed, and the
    readers saw the final status and every journalled step."""
    run, gate, out = _start_run(tmp_path)
    stop = tmp_path / "stop"
    readers = [subprocess.Popen([sys.executable, "-c", VIEWER, str(out), str(tmp_path / f"ready-{i}"), str(stop)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(viewers)]
    try:
        _wait_for(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(viewers)), "the readers")
        (gate / "go-all").touch()
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
        path = Path(stdout.strip().splitlines()[-1])
        live = open_run(path)  # while the readers still hold the file
        assert (live.status, live.steps_completed, live.error) == ("completed", STEPS, "")
        assert live.ended and live.ended >= live.started
    finally:
        stop.touch()
        seen = [r.communicate(timeout=60) for r in readers]
    for reader, (text, err) in zip(readers, seen, strict=True):
        assert reader.returncode == 0, err
        assert text.split() == ["completed", str(STEPS)]
    assert open_run(path).status == "completed"


@pytest.mark.slow
def test_info_follow_prints_each_step_as_it_lands_and_the_final_status(tmp_path):
    """The follower prints step 2 while the run waits before step 3 (it is live), holds the
    file through the end, and ends with the final status, exit 0; the run completes."""
    run, gate, path, follow = _follow_a_live_run(tmp_path, released=2)
    try:
        lines = [follow.stdout.readline() for _ in range(3)]  # header, step 1, step 2
        assert lines[0].startswith(f"{path}: read-array, {STEPS} steps")
        assert "step 1/3  completed" in lines[1] and "step 2/3  completed" in lines[2]
        assert run.poll() is None, "step 2 was printed while the run was live"
        (gate / "go-2").touch()
        rest, err = follow.communicate(timeout=60)
    finally:
        follow.kill()
        (gate / "go-all").touch()
        run_out, run_err = run.communicate(timeout=120)
    assert follow.returncode == 0, err
    assert "step 3/3  completed" in rest and rest.strip().splitlines()[-1].startswith(
        "completed: 3/3 steps completed, ended 20")
    assert run.returncode == 0, run_err
    assert open_run(path).status == "completed"


@pytest.mark.slow
def test_ctrl_c_stops_info_follow_cleanly_and_the_run_goes_on(tmp_path):
    run, gate, path, follow = _follow_a_live_run(tmp_path, released=1)
    try:
        assert follow.stdout.readline().startswith(str(path))
        assert "step 1/3" in follow.stdout.readline()
        follow.send_signal(signal.SIGINT)
        _, err = follow.communicate(timeout=10)
        assert follow.returncode == 130
        assert err == "rrambench: interrupted\n"
    finally:
        follow.kill()
        (gate / "go-all").touch()
        _, run_err = run.communicate(timeout=120)
    assert run.returncode == 0, run_err
    assert open_run(path).status == "completed"


def test_info_follow_of_a_run_whose_writer_died_ends_interrupted(tmp_path):
    from damaged_run_files import make_abandoned

    path = make_abandoned(tmp_path)
    done = subprocess.run([sys.executable, "-m", "protocols.cli", "info", "--follow", str(path)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("interrupted: 2/3 steps completed, ended -")
