"""Starting the window: the interactive session and the offscreen screenshot."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PyQt5.QtWidgets import QApplication

from gui.app import MainWindow

log = logging.getLogger("rrambench.gui")
_APP: list[QApplication] = []  # keeps the application alive for the process


def application() -> QApplication:
    """The process's QApplication (created once)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName("rrambench")
        _APP.append(app)
    pg.setConfigOptions(antialias=False)
    return app


def wait_until(condition, timeout: float, what: str) -> None:
    """Process Qt events until ``condition()`` holds; TimeoutError naming ``what`` after ``timeout`` s."""
    app = application()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        app.processEvents()
        time.sleep(0.01)


def connected_window(config: str | Path | None, data_dir: str | Path, *, world: Any = None,
                     timeout: float = 60.0) -> MainWindow:
    """A shown main window connected to the simulated bench, every map drawn."""
    application()
    window = MainWindow(config, data_dir, world=world)
    window.show()
    window.connect_bench("sim")
    wait_until(lambda: window.worker.connected, timeout, "connecting to the simulated bench")
    n = window.worker.info.n_macros
    wait_until(lambda: window.maps.updates >= n, timeout, "reading the maps")
    return window


def save_screenshot(path: str | Path, *, config: str | Path | None = None, data_dir: str | Path = "runs",
                    timeout: float = 60.0) -> Path:
    """Connect the embedded simulated bench, render the window and save it as PNG."""
    window = connected_window(config, data_dir, timeout=timeout)
    try:
        application().processEvents()
        path = grab(window, path)
    finally:
        window.close()
    return path


def grab(window: MainWindow, path: str | Path) -> Path:
    """Render ``window`` (offscreen works) into a PNG file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    application().processEvents()
    if not window.grab().save(str(path), "PNG"):
        raise OSError(f"could not write the screenshot {path}")
    return path


def run_window(config: str | Path | None, data_dir: str | Path) -> int:
    """The interactive window; returns the application's exit code."""
    app = application()
    window = MainWindow(config, data_dir)
    window.show()
    return int(app.exec_())
