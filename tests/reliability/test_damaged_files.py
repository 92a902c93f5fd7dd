"""Damaged files handed to the CLI: one line on stderr, exit code 2, within a bound, in
``info``, ``report``, ``calibrate`` and ``run --resume``; Ctrl-C during the check ends the
command at once (exit 130, one line); ``info FOLDER`` lists damaged files as damaged.

Every command runs as a subprocess, as a user runs it. A truncated file fails within 0.2 s
(the reader opens plainly first, again every 20 ms for 0.2 s while it reads as truncated);
the file that makes the HDF5 library retry for minutes fails once the watched helper makes
no progress for ``isolation.CHECK_TIMEOUT`` s.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from damaged_run_files import KINDS, make_damaged, make_hanging

from analysis.isolation import CHECK_TIMEOUT

#: s a command may take on a damaged file: Python, the imports and the helper's start on a
#: loaded 2-core machine (about 1-3 s); the check of a truncated or foreign file is instant.
BOUND = 20.0
COMMANDS = {
    "info": ["info"],
    "report": ["report", "-o", "{tmp}/report"],
    "calibrate": ["calibrate", "-o", "{tmp}/device.toml"],
    "resume": ["run", "--resume"],
}


def _cli(command: str, path: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    name, *options = COMMANDS[command]
    argv = [name, *(o.format(tmp=tmp_path) for o in options)]
    argv = [*argv, str(path)] if command != "resume" else [*argv[:2], str(path)]
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "protocols.cli", *argv], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - start


def _assert_one_line_exit_2(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("rrambench: error: "), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good")
    proc = subprocess.run([sys.executable, "-m", "protocols.cli", "run", "read-array", "--set", "macros=0,1",
                           "--seed", "1", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


#: Every kind of damage through ``info`` and ``run --resume`` in the quick suite; through
#: ``report`` and ``calibrate`` (the same check, then a heavier command) one kind there, the
#: others in the slow suite: each case is a Python start of ~2 s.
CASES = [pytest.param(kind, command, id=f"{kind}-{command}",
                      marks=() if command in ("info", "resume") or kind == "truncated-8k" else pytest.mark.slow)
         for command in COMMANDS for kind in KINDS]


@pytest.mark.parametrize("kind, command", CASES)
def test_a_damaged_file_is_one_line_and_exit_2_within_a_bound(tmp_path, good_run, kind, command):
    bad = make_damaged(kind, good_run, tmp_path)
    proc, took = _cli(command, bad, tmp_path)
    _assert_one_line_exit_2(proc)
    assert bad.name in proc.stderr
    assert took < BOUND, f"{command} on a {kind} file took {took:.1f} s"


@pytest.mark.parametrize("command", ["info", "resume"])
@pytest.mark.slow
def test_a_file_that_hangs_the_hdf5_library_is_exit_2_once_the_check_stalls(tmp_path, command):
    hanging = make_hanging(tmp_path)
    proc, took = _cli(command, hanging, tmp_path)
    _assert_one_line_exit_2(proc)
    assert f"made no progress reading it for {CHECK_TIMEOUT:g} s" in proc.stderr
    assert CHECK_TIMEOUT <= took < CHECK_TIMEOUT + BOUND


def test_ctrl_c_during_the_check_is_exit_130_one_line_and_stops_the_helper(tmp_path):
    hanging = make_hanging(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "protocols.cli", "info", str(hanging)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not psutil.Process(proc.pid).children():  # the watched helper is checking the file
            assert time.monotonic() < deadline and proc.poll() is None, "no helper process started"
            time.sleep(0.02)
        (helper,) = psutil.Process(proc.pid).children()
        time.sleep(0.5)  # the check is under way (it stalls for CHECK_TIMEOUT s)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    # No wall-clock bound (the shared CI machine once took 4.9 s): interrupted, not "damaged run
    # file" after the check's timeout, one line, and the helper gone.
    assert proc.returncode == 130 and err == "rrambench: interrupted\n"
    assert not helper.is_running() or helper.status() == psutil.STATUS_ZOMBIE


def test_info_on_a_folder_lists_each_run_and_the_damaged_files(tmp_path, good_run):
    folder = tmp_path / "runs"
    folder.mkdir()
    good = folder / good_run.name
    good.write_bytes(good_run.read_bytes())
    for kind in KINDS:
        make_damaged(kind, good, folder)
    proc = subprocess.run([sys.executable, "-m", "protocols.cli", "info", str(folder)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = {line.split()[0]: line.split() for line in proc.stdout.splitlines()}
    assert set(lines) == {good.name, *(f"{kind}.h5" for kind in KINDS)}
    assert lines[good.name][1:4] == ["read-array", "completed", "2/2"]
    assert all(lines[f"{kind}.h5"][1:3] == ["-", "damaged"] for kind in KINDS)
    assert "truncated file" in " ".join(lines["truncated-2k.h5"])
