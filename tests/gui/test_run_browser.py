"""The run browser opens completed runs and runs whose writer was killed; damaged files never block it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyqtgraph as pg
import pytest
from damaged_run_files import make_damaged, make_hanging
from gui_helpers import calls_on_this_thread, host_steal, lateness_ms
from PyQt5.QtCore import Qt, QTimer

from analysis import isolation, open_run
from gui import run_browser
from gui.run_browser import STATUS_ROLE, RunBrowser

SLOW = ["--set", "macros=0,1,2,3", "--set", "repeats=1000", "--seed", "11"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "protocols.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _killed_run(out: Path, cwd: Path) -> Path:
    """Start a slow read-array, SIGKILL it once a step is journalled; the file it leaves."""
    proc = subprocess.Popen([sys.executable, "-m", "protocols.cli", "run", "read-array", *SLOW, "--out", str(out)],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            files = list(out.glob("*.h5"))
            if files:
                try:
                    if open_run(files[0]).steps_completed >= 1:
                        os.kill(proc.pid, signal.SIGKILL)
                        return files[0]
                except (OSError, ValueError, KeyError):
                    pass  # file still being created
            if proc.poll() is not None:
                pytest.fail(f"run ended before it could be killed: {proc.stderr.read()}")
            time.sleep(0.01)
        pytest.fail("run did not journal a step in time")
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def run_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("runs")
    killed = _killed_run(folder, folder)  # first, while it is the only file in the folder
    done = _cli("run", "read-array", "--set", "macros=2", "--set", "repeats=2", "--seed", "5", "--out",
                str(folder), cwd=folder)
    assert done.returncode == 0, done.stderr
    return {"completed": Path(done.stdout.strip().splitlines()[-1]), "killed": killed}


def _items(plot: pg.PlotItem) -> list:
    return plot.listDataItems() + [i for i in plot.items if isinstance(i, pg.ImageItem)]


def _open(qtbot, browser: RunBrowser, path: Path):
    """Open ``path`` as a click does (checked off the Qt thread); the Run shown, or None."""
    with qtbot.waitSignal(browser.opened, timeout=60_000) as shown:
        browser.open_file(path)
    return shown.args[0]


@pytest.mark.slow
def test_browser_lists_the_folder_and_opens_a_completed_run_with_its_map(qtbot, run_files):
    browser = RunBrowser(run_files["completed"].parent)
    qtbot.addWidget(browser)
    names = {browser.files.item(i).text() for i in range(browser.files.count())}
    assert {p.name for p in run_files.values()} <= names
    run = _open(qtbot, browser, run_files["completed"])
    assert run.status == "completed"
    text = browser.summary.toPlainText()
    assert "completed" in text and "1 of 1 completed" in text and "/entry/data/conductance" in text
    image = [i for i in browser.main_plot.items if isinstance(i, pg.ImageItem)]
    assert image and image[0].image.shape == (32, 32), "the last conductance map is drawn"


@pytest.mark.slow
def test_browser_opens_a_killed_run_as_interrupted_with_what_it_recorded(qtbot, run_files):
    browser = RunBrowser(run_files["killed"].parent)
    qtbot.addWidget(browser)
    run = _open(qtbot, browser, run_files["killed"])
    assert run is not None and run.status == "interrupted"
    text = browser.summary.toPlainText()
    assert "interrupted" in text and f"of {run.steps_total} completed" in text
    assert _items(browser.main_plot), "the rows recorded before the kill are drawn"


def test_browser_reports_a_file_that_is_not_a_run(qtbot, tmp_path):
    bad = tmp_path / "junk.h5"
    bad.write_bytes(b"not hdf5")
    browser = RunBrowser(tmp_path)
    qtbot.addWidget(browser)
    assert _open(qtbot, browser, bad) is None
    assert "not a readable HDF5" in browser.summary.toPlainText()


@pytest.mark.slow
def test_browser_stays_responsive_with_damaged_files_in_the_folder(qtbot, tmp_path, run_files, monkeypatch):
    """Truncated files and one that makes the HDF5 library retry for minutes: the window's
    event loop keeps running while they are checked, the listing marks them damaged (the
    reason as tooltip), and opening one shows the reason."""
    monkeypatch.setattr(isolation, "CHECK_TIMEOUT", 2.0)
    # What can hang (a damaged file's check, up to CHECK_TIMEOUT) must never run on the Qt thread.
    on_qt_thread = calls_on_this_thread(monkeypatch, [(run_browser, "open_run"), (isolation, "check_readable")])
    folder = tmp_path / "runs"
    folder.mkdir()
    good = Path(shutil.copy(run_files["completed"], folder / "good.h5"))
    truncated = [make_damaged(kind, good, folder) for kind in ("truncated-2k", "truncated-8k")]
    hanging = make_hanging(folder)
    ticks: list[tuple[float, float]] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append((time.monotonic(), host_steal())))
    timer.start()
    browser = RunBrowser(folder)
    qtbot.addWidget(browser)
    items = {Path(browser.files.item(i).data(Qt.UserRole)).name: browser.files.item(i)
             for i in range(browser.files.count())}
    qtbot.waitUntil(lambda: all(item.data(STATUS_ROLE) for item in items.values()), timeout=60_000)
    assert _open(qtbot, browser, truncated[0]) is None
    timer.stop()
    assert "truncated file" in browser.summary.toPlainText()
    assert {name: item.data(STATUS_ROLE) for name, item in items.items()} == {
        "good.h5": "completed", "truncated-2k.h5": "damaged", "truncated-8k.h5": "damaged", "hanging.h5": "damaged"}
    assert "no progress" in items[hanging.name].toolTip()
    browser.refresh()  # unchanged files are not checked again: marked at once
    assert all(browser.files.item(i).data(STATUS_ROLE) for i in range(browser.files.count()))
    assert on_qt_thread == [], f"file checks made on the Qt thread: {sorted(set(on_qt_thread))}"
    assert len(ticks) > 50, "the event loop ran its timers while the files were checked"
    print(lateness_ms(ticks, 0.010))  # measured, not asserted: the machine's load decides it

