"""Helpers of the GUI tests: timeouts and driving the runner as an operator would."""

from __future__ import annotations

import os

from gui.app import MainWindow

CONNECT_TIMEOUT_MS = 60_000
RUN_TIMEOUT_MS = 120_000


def queue_run(win: MainWindow, protocol: str, **values) -> None:
    """Fill the runner's form for ``protocol`` and press Run (as an operator would)."""
    form = win.runner.select_protocol(protocol)
    for name, value in values.items():
        form.set_value(name, value)
    win.runner.run_button.click()


def host_steal() -> float:
    """CPU time (s, per CPU) the hypervisor has given to other guests since boot ("steal" in
    /proc/stat; 0 where the system does not report it). A stall the host causes by not
    running this machine is not the event loop's, so lateness tests take it out."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK") / (os.cpu_count() or 1)
    except (OSError, IndexError, ValueError):
        return 0.0
