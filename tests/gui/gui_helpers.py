"""Helpers of the GUI tests: timeouts and driving the runner as an operator would."""

from __future__ import annotations

import functools
import os
import threading

import numpy as np

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


def calls_on_this_thread(monkeypatch, targets) -> list[str]:
    """Record each call of ``targets`` ((owner, attribute name) pairs) made on the calling
    thread (the Qt thread, in a GUI test), as ``"Owner.name"``, while the test runs.

    What a responsiveness test asserts: the calls that can block (an instrument's reply, a
    run file's write, a damaged file's check) are never made on the thread that runs the
    event loop. That holds or not whatever the machine's load; how late the event loop runs
    is measured by ``benchmarks/bench_gui.py``, not asserted in a test.
    """
    here, seen = threading.current_thread(), []

    def watch(original, label: str):
        @functools.wraps(original)
        def watched(*args, **kwargs):
            if threading.current_thread() is here:
                seen.append(label)
            return original(*args, **kwargs)
        return watched

    for owner, name in targets:
        label = f"{getattr(owner, '__name__', owner)}.{name}"
        monkeypatch.setattr(owner, name, watch(getattr(owner, name), label))
    return seen


def lateness_ms(ticks: list[tuple[float, float]], tick: float) -> str:
    """Percentiles of an event-loop probe's lateness (``ticks``: (monotonic time, host steal) at
    each timeout of a timer of period ``tick`` s), for the test's output."""
    times, steal = np.array(ticks).T
    late = (np.diff(times) - tick - np.diff(steal)) * 1e3
    return f"event-loop lateness p50 {np.percentile(late, 50):.1f} ms, p95 {np.percentile(late, 95):.1f} ms, " \
           f"max {late.max():.1f} ms over {len(late)} ticks"
