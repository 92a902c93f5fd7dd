"""Render the documentation screenshots offscreen: ``python -m gui.screenshots docs/screenshots``.

Three views of the main window on the embedded simulated bench: idle (connected,
maps read, a cell selected), during a write-verify run, and after a sample run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui.session import application, connected_window, grab, wait_until
from protocols.engine.runner import RunState

log = logging.getLogger("rrambench.gui.screenshots")
RUN_TIMEOUT = 300.0  # s


def _queue(window, protocol: str, **values) -> None:
    form = window.runner.select_protocol(protocol)
    for name, value in values.items():
        form.set_value(name, value)
    window.runner.run_button.click()


def take_screenshots(out: Path) -> list[Path]:
    """Write idle.png, write-verify.png and sample.png into ``out``; returns their paths."""
    shots = []
    with tempfile.TemporaryDirectory() as data:
        window = connected_window(None, data)
        window.confirm_close = lambda _w: True
        try:
            window.maps.select(2, 12, 20)
            shots.append(grab(window, out / "idle.png"))

            _queue(window, "write-verify", regions=["1:0-15:0-15"], tolerance=0.05e-6, max_pulses=1000)
            wait_until(lambda: window.worker.engine is not None and window.worker.engine.state == RunState.RUNNING,
                       RUN_TIMEOUT, "write-verify start")
            wait_until(lambda: window.runner.progress_bar.value() >= 400, RUN_TIMEOUT, "write-verify progress")
            shots.append(grab(window, out / "write-verify.png"))
            window.abort()
            wait_until(lambda: window.last_done is not None, RUN_TIMEOUT, "write-verify abort")
            window.last_done = None

            _queue(window, "sample", samples=1000, batch=250, waveforms=4)
            wait_until(lambda: window.last_done is not None, RUN_TIMEOUT, "the sample run")
            window.bridge.pump()
            application().processEvents()
            shots.append(grab(window, out / "sample.png"))
        finally:
            window.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNG files")
    args = parser.parse_args(argv)
    for path in take_screenshots(args.out):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
