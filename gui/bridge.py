"""Drains the worker's live queue on the Qt thread and turns it into Qt signals."""

from __future__ import annotations

import logging

import numpy as np
from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from gui.live_queue import Batch, LiveQueue

log = logging.getLogger("rrambench.gui")

FRAME_INTERVAL = 0.033  # s, how often the queue is drained (about 30 frames per second)


CLOSING_EVENTS = ("run_done", "disconnected")


class QueueBridge(QObject):
    """Emits one signal per item drained from ``queue``; widgets connect to these only."""

    notice = pyqtSignal(str, object)  # kind, payload (connected, run_done, error, ...)
    map_updated = pyqtSignal(int, object)  # macro, (rows, cols) conductance in S
    progress = pyqtSignal(object)  # ProgressEvent
    data = pyqtSignal(str, object, object)  # kind ("series", "vector", "image", "points", "trace", ...), name, value
    frame = pyqtSignal()  # after each drain that delivered something

    def __init__(self, queue: LiveQueue, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.dropped = 0
        self._timer = QTimer(self)
        self._timer.setInterval(int(FRAME_INTERVAL * 1000))
        self._timer.timeout.connect(self.pump)
        self._timer.start()

    def pump(self) -> Batch:
        """Drain the queue now and emit what it held (also called by tests)."""
        batch = self.queue.drain()
        self.dropped += batch.dropped
        # Data of a batch was produced before the run that made it ended: announce the
        # end after the data, everything else before it.
        closing = [(k, p) for k, p in batch.events if k in CLOSING_EVENTS]
        for kind, payload in batch.events:
            if kind not in CLOSING_EVENTS:
                self.notice.emit(kind, payload)
        for key, value in batch.latest.items():
            if key == "progress":
                self.progress.emit(value)
            elif key[0] == "map":
                self.map_updated.emit(key[1], value)
            else:
                self.data.emit(key[0], key[1], value)
        for (kind, name), rows in batch.series.items():
            self.data.emit(kind, name, np.asarray(rows))
        for kind, payload in closing:
            self.notice.emit(kind, payload)
        if batch:
            self.frame.emit()
        return batch

    def stop(self) -> None:
        self._timer.stop()
