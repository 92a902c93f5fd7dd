"""Helpers of the GUI tests: timeouts and driving the runner as an operator would."""

from __future__ import annotations

from gui.app import MainWindow

CONNECT_TIMEOUT_MS = 60_000
RUN_TIMEOUT_MS = 120_000


def queue_run(win: MainWindow, protocol: str, **values) -> None:
    """Fill the runner's form for ``protocol`` and press Run (as an operator would)."""
    form = win.runner.select_protocol(protocol)
    for name, value in values.items():
        form.set_value(name, value)
    win.runner.run_button.click()
