"""GUI test fixtures: Qt offscreen (set before Qt is imported), a window on a simulated bench."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

import pytest

pytest.importorskip("PyQt5")
pytest.importorskip("pyqtgraph")

from gui_helpers import CONNECT_TIMEOUT_MS

from gui.app import MainWindow
from instruments.sim.world import SimWorld


@pytest.fixture
def sim_world() -> SimWorld:
    """The world behind the window's simulated bench (the oracle of the tests)."""
    return SimWorld(seed=3)


@pytest.fixture
def window(qtbot, tmp_path, sim_world):
    """A main window connected to the simulated bench, every map drawn; closed (safely) after."""
    win = MainWindow(None, tmp_path / "runs", world=sim_world)
    win.confirm_close = lambda _w: True
    qtbot.addWidget(win)
    win.show()
    win.connect_bench("sim")
    qtbot.waitUntil(lambda: win.worker.connected, timeout=CONNECT_TIMEOUT_MS)
    qtbot.waitUntil(lambda: win.maps.updates >= win.worker.info.n_macros, timeout=CONNECT_TIMEOUT_MS)
    yield win
    win.close()
