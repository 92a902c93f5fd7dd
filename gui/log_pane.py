"""The log pane: a logging handler (any thread) feeding a read-only text view (Qt thread)."""

from __future__ import annotations

import logging
import threading
from collections import deque

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

MAX_LINES = 5000  # lines kept in the view
LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


class QueueHandler(logging.Handler):
    """Keeps formatted records until the pane takes them (thread-safe, bounded)."""

    def __init__(self, level: int = logging.INFO, capacity: int = MAX_LINES) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
        self._lines: deque[str] = deque(maxlen=capacity)
        self._lock_lines = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except (ValueError, TypeError):
            self.handleError(record)
            return
        with self._lock_lines:
            self._lines.append(line)

    def take(self) -> list[str]:
        with self._lock_lines:
            lines = list(self._lines)
            self._lines.clear()
        return lines


class LogPane(QWidget):
    """Shows the ``rrambench`` loggers' records; the level box filters what is captured."""

    def __init__(self, logger: str = "rrambench", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.handler = QueueHandler()
        self._logger = logging.getLogger(logger)
        self._logger.addHandler(self.handler)
        if self._logger.getEffectiveLevel() > logging.INFO:
            self._logger.setLevel(logging.INFO)
        self.view = QPlainTextEdit(readOnly=True)
        self.view.setMaximumBlockCount(MAX_LINES)
        self.level = QComboBox()
        self.level.addItems(list(LEVELS))
        self.level.setCurrentText("INFO")
        self.level.currentTextChanged.connect(lambda name: self.handler.setLevel(LEVELS[name]))
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Level"))
        bar.addWidget(self.level)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view)
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self.flush)
        self._timer.start()

    def flush(self) -> None:
        """Move captured lines into the view."""
        lines = self.handler.take()
        if lines:
            self.view.appendPlainText("\n".join(lines))

    def text(self) -> str:
        self.flush()
        return self.view.toPlainText()

    def detach(self) -> None:
        """Remove the handler (on window close)."""
        self._timer.stop()
        self._logger.removeHandler(self.handler)
