"""Bench panel: backend, config file, resource strings, connect, identities, safety limits."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.worker import BenchInfo
from instruments.config import BenchConfig, load_config
from instruments.errors import ConfigError

ROLES = ("smu", "scope", "macro_controller")
LIMIT_UNITS = {"compliance": "A", "pulse_width_min": "s", "pulse_width_max": "s", "sweep_rate": "V/s"}


def short_identity(identity: str) -> str:
    """Model and serial of a ``MAKER,MODEL,SERIAL,FIRMWARE`` identity (the whole string on hover)."""
    parts = [p.strip() for p in identity.split(",")]
    return " ".join(parts[1:3]) if len(parts) >= 3 else identity


class BenchPanel(QWidget):
    """Choose and open the bench; shows what it is and its safety envelope.

    Emits ``connect_requested(config, backend)`` and ``disconnect_requested``;
    the main window hands them to the worker and calls :meth:`show_connected`.
    """

    connect_requested = pyqtSignal(object, str)
    disconnect_requested = pyqtSignal()

    def __init__(self, config_path: str | Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = QComboBox()
        self.backend.addItems(["sim", "hardware"])
        self.backend.setToolTip("sim: the embedded simulated bench over loopback; hardware: [resources] of the file")
        self.config_edit = QLineEdit(str(config_path or ""))
        self.config_edit.setPlaceholderText("default: shipped simulated bench")
        browse = QPushButton("...")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse)
        self.connect_button = QPushButton("Connect")
        self.disconnect_button = QPushButton("Disconnect")
        self.disconnect_button.setEnabled(False)
        self.connect_button.clicked.connect(self.request_connect)
        self.disconnect_button.clicked.connect(lambda _=False: self.disconnect_requested.emit())
        self.status = QLabel("not connected")
        self.status.setWordWrap(True)

        top = QFormLayout()
        top.addRow("Backend", self.backend)
        row = QHBoxLayout()
        row.addWidget(self.config_edit)
        row.addWidget(browse)
        top.addRow("Config", row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.connect_button)
        buttons.addWidget(self.disconnect_button)
        top.addRow(buttons)
        top.addRow(self.status)

        self.resource_labels = {r: QLabel("-") for r in ROLES}
        self.identity_labels = {r: QLabel("-") for r in ROLES}
        instruments = QGroupBox("Instruments")
        form = QFormLayout(instruments)
        for role in ROLES:
            for label in (self.resource_labels[role], self.identity_labels[role]):
                label.setWordWrap(True)
            form.addRow(f"{role}", self.resource_labels[role])
            form.addRow("", self.identity_labels[role])

        self.limits = QTableWidget(0, 2)
        self.limits.setHorizontalHeaderLabels(["limit", "value"])
        self.limits.verticalHeader().setVisible(False)
        self.limits.horizontalHeader().setStretchLastSection(True)
        self.limits.setEditTriggers(QTableWidget.NoEditTriggers)
        limits_box = QGroupBox("Safety limits")
        QVBoxLayout(limits_box).addWidget(self.limits)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(instruments)
        layout.addWidget(limits_box, 1)

    def config(self) -> BenchConfig:
        """The chosen configuration (ConfigError if the file is unreadable)."""
        text = self.config_edit.text().strip()
        return load_config(text or None)

    def request_connect(self) -> None:
        try:
            config = self.config()
        except ConfigError as exc:
            self.status.setText(f"<span style='color:#c00'>{exc}</span>")
            return
        self.show_limits(config.limits.as_dict())
        self.status.setText("connecting...")
        self.connect_button.setEnabled(False)
        self.connect_requested.emit(config, self.backend.currentText())

    def show_connected(self, info: BenchInfo) -> None:
        self.status.setText(f"<b>connected</b>: {info.backend} bench, {info.n_macros} macros of "
                            f"{info.rows}x{info.cols} cells")
        for role in ROLES:
            self.resource_labels[role].setText(info.resources.get(role, "-"))
            identity = info.identities.get(role, "-")
            self.identity_labels[role].setText(f"<i>{short_identity(identity)}</i>")
            self.identity_labels[role].setToolTip(identity)
        self.show_limits(info.limits)
        self.connect_button.setEnabled(False)
        self.disconnect_button.setEnabled(True)

    def show_disconnected(self, why: str = "not connected") -> None:
        self.status.setText(why)
        for role in ROLES:
            self.identity_labels[role].setText("-")
        self.connect_button.setEnabled(True)
        self.disconnect_button.setEnabled(False)

    def show_limits(self, limits: dict[str, float]) -> None:
        self.limits.setRowCount(len(limits))
        for i, (name, value) in enumerate(limits.items()):
            unit = LIMIT_UNITS.get(name, "V")
            self.limits.setItem(i, 0, QTableWidgetItem(name))
            self.limits.setItem(i, 1, QTableWidgetItem(f"{value:g} {unit}"))
        self.limits.resizeColumnsToContents()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Bench config", "", "TOML (*.toml)")
        if path:
            self.config_edit.setText(path)
