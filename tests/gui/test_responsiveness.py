"""The Qt event loop keeps running while a protocol streams data into the live views.

What keeps it running is checked, not how late it runs (a wall-clock figure that the
machine's load decides; ``benchmarks/bench_gui.py`` measures it): the run's instrument
I/O and file writes never happen on the Qt thread, and the maps are drawn from the
bridge's frames (at most one map per macro per frame), not once per map produced.
"""

from __future__ import annotations

import time

import pytest
from gui_helpers import RUN_TIMEOUT_MS, calls_on_this_thread, host_steal, lateness_ms, queue_run
from PyQt5.QtCore import QTimer

from instruments.serial_link import SerialLink
from instruments.transport import VisaTransport
from protocols.engine.run_writer import RunWriter

TICK = 0.010  # s, timer period of the event-loop probe
MACROS = [0, 1, 2, 3]
#: What may block: an instrument's reply, a run file's write or flush.
BLOCKING = [(VisaTransport, "query"), (VisaTransport, "write"), (SerialLink, "write"), (SerialLink, "read_message"),
            (RunWriter, "append"), (RunWriter, "flush"), (RunWriter, "end_step"),
            (RunWriter, "finish")]


@pytest.mark.slow
def test_event_loop_never_blocks_while_read_array_streams(window, qtbot, monkeypatch):
    ticks: list[tuple[float, float]] = []
    timer = QTimer()
    timer.setInterval(int(TICK * 1000))
    timer.timeout.connect(lambda: ticks.append((time.monotonic(), host_steal())))
    frames: list[int] = []
    window.bridge.frame.connect(lambda: frames.append(1))
    maps_before = window.maps.updates
    on_qt_thread = calls_on_this_thread(monkeypatch, BLOCKING)
    timer.start()
    queue_run(window, "read-array", macros=MACROS, repeats=400)
    qtbot.waitUntil(lambda: window.last_done is not None, timeout=RUN_TIMEOUT_MS)
    timer.stop()
    assert window.last_done.state == "completed"
    assert on_qt_thread == [], f"blocking calls made on the Qt thread: {sorted(set(on_qt_thread))}"
    drawn = window.maps.updates - maps_before
    assert drawn >= 4, "the maps were redrawn while the run streamed"
    assert drawn <= len(MACROS) * len(frames), "maps are drawn from the bridge's frames, at most one per macro each"
    assert len(ticks) > 20, "the event loop ran its timers while the run streamed"
    print(lateness_ms(ticks, TICK))
