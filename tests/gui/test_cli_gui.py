"""``rrambench gui``: the screenshot mode, and one clear line when the GUI packages are missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PyQt5.QtGui import QImage

BLOCK_QT = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PyQt5', 'pyqtgraph'):
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, _Block())
from protocols.cli.main import main
sys.exit(main(['gui']))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


@pytest.mark.slow
def test_screenshot_connects_the_simulated_bench_and_saves_the_window(tmp_path):
    png = tmp_path / "shot.png"
    done = subprocess.run([sys.executable, "-m", "protocols.cli", "gui", "--screenshot", str(png),
                           "--data", str(tmp_path / "runs")], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip().splitlines()[-1]) == png
    image = QImage(str(png))
    assert image.width() >= 1000 and image.height() >= 600


def test_missing_gui_packages_give_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-c", BLOCK_QT], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "PyQt5 and pyqtgraph" in lines[0] and "rrambench[gui]" in lines[0]


def test_unreadable_config_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "protocols.cli", "gui", "--config", str(tmp_path / "no.toml")],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("rrambench: error: cannot read bench config")
