"""The operator's main window: docks around the macro maps, wired to the bench worker.

Nothing here talks to an instrument: the window asks :class:`~gui.worker.BenchWorker`
(one worker thread) and draws what the :class:`~gui.bridge.QueueBridge` delivers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QCloseEvent
from PyQt5.QtWidgets import QApplication, QDockWidget, QLabel, QMainWindow, QMessageBox, QPushButton, QToolBar

from gui.bench_panel import BenchPanel
from gui.bridge import QueueBridge
from gui.live_plots import LivePlots
from gui.live_queue import LiveQueue
from gui.log_pane import LogPane
from gui.maps import MapsPanel
from gui.run_browser import RunBrowser
from gui.runner import QueuedRun, RunnerPanel
from gui.scope_view import ScopeView
from gui.worker import BenchInfo, BenchWorker, RunDone
from protocols.engine.bench_shape import BenchShape
from protocols.engine.runner import InvalidTransition, RunState

log = logging.getLogger("rrambench.gui")

OUTPUTS_OFF_STYLE = ("QPushButton { background: #c00; color: white; font-weight: bold; font-size: 14pt;"
                     " padding: 6px 18px; border-radius: 4px; } QPushButton:pressed { background: #800; }")
SHUTDOWN_TIMEOUT = 60.0  # s, longest wait for an aborted run to unwind when the window closes


def ask_close_during_run(parent: QMainWindow) -> bool:
    """The default close confirmation (a modal question)."""
    answer = QMessageBox.question(parent, "Run in progress",
                                  "A run is in progress. Abort it, put the outputs in their safe state and close?",
                                  QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
    return answer == QMessageBox.Yes


def protocols_of(config: str | Path | None) -> dict[str, type]:
    """The runner's protocols: the shipped ones, those installed packages register, and those
    the config's ``[protocols] paths`` name. A config or a user file that does not load is
    logged and its protocols left out: the window still opens on the others."""
    from instruments.config import load_config
    from instruments.errors import ConfigError
    from protocols.engine.errors import UsageError
    from protocols.engine.registry import registry

    try:
        return registry(load_config(config).protocol_paths)
    except (ConfigError, UsageError) as exc:
        log.error("protocols of the bench config: %s; listing the others", exc)
        return registry()


class MainWindow(QMainWindow):
    """rrambench bench window.

    ``config``: bench config TOML (None: the shipped simulated bench).
    ``data_dir``: folder of run files (new runs go there; the browser lists it).
    ``world``: an existing SimWorld to connect to (tests); None lets the bench make one.
    """

    def __init__(self, config: str | Path | None = None, data_dir: str | Path = "runs", *,
                 world: Any = None) -> None:
        super().__init__()
        self.setWindowTitle("rrambench")
        self.resize(1500, 950)
        self.world = world
        self.queue = LiveQueue()
        self.worker = BenchWorker(self.queue, data_dir)
        self.bridge = QueueBridge(self.queue, self)
        self.confirm_close: Callable[[QMainWindow], bool] = ask_close_during_run
        self.last_done: RunDone | None = None
        self.outputs_report: dict | None = None
        self._closed = False

        self.bench_panel = BenchPanel(config)
        self.maps = MapsPanel()
        self.runner = RunnerPanel(protocols=protocols_of(config))
        self.live = LivePlots()
        self.scope = ScopeView()
        self.browser = RunBrowser(data_dir, catalogue=_catalogue_url(config))
        self.log_pane = LogPane()
        self._build_layout()
        self._wire()
        self.statusBar().showMessage("not connected")

    # -- layout ------------------------------------------------------------------------------
    def _build_layout(self) -> None:
        bar = QToolBar("Safety")
        bar.setMovable(False)
        bar.setFloatable(False)
        self.outputs_off_button = QPushButton("OUTPUTS OFF")
        self.outputs_off_button.setStyleSheet(OUTPUTS_OFF_STYLE)
        self.outputs_off_button.setToolTip("Abort the run and put every instrument in its safe state now")
        bar.addWidget(self.outputs_off_button)
        self.safety_label = QLabel("  outputs: unknown")
        bar.addWidget(self.safety_label)
        self.addToolBar(Qt.TopToolBarArea, bar)
        self.setCentralWidget(self.maps)
        self.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)  # side docks run the full height
        self.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)
        self.docks: dict[str, QDockWidget] = {}
        for title, widget, area in (("Bench", self.bench_panel, Qt.LeftDockWidgetArea),
                                    ("Runner", self.runner, Qt.RightDockWidgetArea),
                                    ("Live plots", self.live, Qt.BottomDockWidgetArea),
                                    ("Scope", self.scope, Qt.BottomDockWidgetArea),
                                    ("Run browser", self.browser, Qt.BottomDockWidgetArea),
                                    ("Log", self.log_pane, Qt.BottomDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(title)
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
            self.addDockWidget(area, dock)
            self.docks[title] = dock
        self.tabifyDockWidget(self.docks["Live plots"], self.docks["Scope"])
        self.tabifyDockWidget(self.docks["Scope"], self.docks["Run browser"])
        self.tabifyDockWidget(self.docks["Run browser"], self.docks["Log"])
        self.docks["Live plots"].raise_()
        self.resizeDocks([self.docks["Bench"], self.docks["Runner"]], [330, 420], Qt.Horizontal)
        self.resizeDocks([self.docks["Live plots"]], [360], Qt.Vertical)
        if "read-array" in self.runner.protocols:
            self.runner.select_protocol("read-array")

    def _wire(self) -> None:
        self.outputs_off_button.clicked.connect(self.outputs_off)
        self.bench_panel.connect_requested.connect(self._connect)
        self.bench_panel.disconnect_requested.connect(self.worker.disconnect)
        self.maps.refresh_requested.connect(self._refresh_maps)
        self.maps.cell_action.connect(self._cell_action)
        self.runner.run_requested.connect(self._start)
        self.runner.pause_requested.connect(lambda: self._command("pause"))
        self.runner.resume_requested.connect(lambda: self._command("resume"))
        self.runner.abort_requested.connect(self.abort)
        self.bridge.notice.connect(self._on_event)
        self.bridge.map_updated.connect(self.maps.update_map)
        self.bridge.progress.connect(self.runner.show_progress)
        self.bridge.data.connect(self._on_data)

    # -- commands ------------------------------------------------------------------------------
    def connect_bench(self, backend: str = "sim") -> None:
        """What the Connect button does (with the backend chosen)."""
        self.bench_panel.backend.setCurrentText(backend)
        self.bench_panel.request_connect()

    def outputs_off(self) -> None:
        """OUTPUTS OFF: abort any run and safe-state every instrument, without waiting for the worker."""
        if not self.worker.connected:
            self.statusBar().showMessage("no bench connected: no output to turn off", 5000)
            return
        self.safety_label.setText("  <b>OUTPUTS OFF requested</b>")
        self.worker.outputs_off()

    def abort(self) -> None:
        """Abort the running (or not yet started) run at its next check point."""
        engine = self.worker.engine
        if engine is None or not self.worker.busy:
            return
        if engine.state == RunState.IDLE:
            engine.token.abort()  # queued on the worker, not started: it stops before its first step
        else:
            engine.abort()
        self.statusBar().showMessage("aborting...")

    def _command(self, name: str) -> None:
        engine = self.worker.engine
        if engine is None or not self.worker.busy:
            return
        try:
            getattr(engine, name)()
        except InvalidTransition as exc:
            self.statusBar().showMessage(str(exc), 5000)

    def _connect(self, config, backend: str) -> None:
        self.worker.connect(config, backend=backend, world=self.world if backend == "sim" else None)

    def _refresh_maps(self) -> None:
        if self.worker.connected and not self.worker.busy:
            self.worker.read_maps()
        elif self.worker.busy:
            self.statusBar().showMessage("maps are read again when the run ends", 5000)

    def _start(self, item: QueuedRun) -> None:
        try:
            self.worker.start_run(item.protocol, seed=item.seed)
        except (RuntimeError, ValueError) as exc:
            self.runner.show_done("refused", str(exc))
            self.statusBar().showMessage(f"run refused: {exc}", 10000)

    def _cell_action(self, action: str, macro: int, row: int, col: int) -> None:
        cell = f"{macro}:{row}:{col}"
        if action == "read":
            if self.worker.connected and not self.worker.busy:
                self.worker.read_cell(macro, row, col)
            return
        name, field = ("iv-sweep", "cells") if action == "iv" else ("write-verify", "regions")
        if name not in self.runner.protocols:
            self.statusBar().showMessage(f"protocol {name} is not available in this installation", 5000)
            return
        self.runner.select_protocol(name).set_value(field, [cell])
        self.docks["Runner"].raise_()

    # -- what the worker reports -----------------------------------------------------------------
    def _on_event(self, kind: str, payload: Any) -> None:
        if kind == "connected":
            info: BenchInfo = payload
            self.bench_panel.show_connected(info)
            self.maps.set_geometry(info.n_macros, info.rows, info.cols)
            bench = self.worker.bench
            self.runner.limits = bench.limits if bench is not None else None
            # the geometry the board reported at connect: the form refuses what the run would
            self.runner.shape = None if bench is None else replace(
                BenchShape.of_config(bench.config), n_macros=info.n_macros, rows=info.rows, cols=info.cols)
            self.statusBar().showMessage(f"connected: {info.backend} bench")
            self.worker.read_maps()
            if info.outputs_safe is not None:
                self._show_safety(info.outputs_safe)
        elif kind == "disconnected":
            self.bench_panel.show_disconnected()
            self.statusBar().showMessage("disconnected")
        elif kind == "error":
            self.statusBar().showMessage(str(payload), 10000)
            if not self.worker.connected:
                self.bench_panel.show_disconnected(f"<span style='color:#c00'>{payload}</span>")
        elif kind == "run_started":
            path, protocol = payload
            self.live.start_run(protocol)
            self.scope.clear_named()
            self.statusBar().showMessage(f"running {protocol} into {path}")
        elif kind == "run_done":
            self._run_done(payload)
        elif kind == "outputs_off":
            self.outputs_report = payload
            self._show_safety(payload["safe"], payload["failures"])
        elif kind == "cell_read":
            self.maps.show_cell_read(*payload)

    def _run_done(self, done: RunDone) -> None:
        self.last_done = done
        self.runner.show_done(done.state, done.error)
        self.statusBar().showMessage(f"{done.protocol} {done.state}: {done.path}", 15000)
        self.browser.refresh()
        self._show_safety(done.outputs_safe)
        if self.worker.connected:
            self.worker.read_maps()
        self.runner.start_next()

    def _on_data(self, kind: str, name: Any, value: Any) -> None:
        if kind == "trace":
            t, volts = value
            self.scope.show_named(str(name), t, volts)
        else:
            self.live.on_data(kind, name, value)

    def _show_safety(self, safe: bool | None, failures: list[str] | None = None) -> None:
        """Show what the worker found (``world.outputs_safe()`` is read on the worker, never here:
        the world's lock may be held by a long simulated operation)."""
        if failures:
            self.safety_label.setText("  <b style='color:#c00'>safe state FAILED: " + "; ".join(failures) + "</b>")
        elif safe is None:
            self.safety_label.setText("  outputs: safe state sent")
        else:
            self.safety_label.setText("  outputs: <b style='color:#080'>safe</b>" if safe
                                      else "  outputs: <b style='color:#c00'>ON</b>")

    # -- closing ---------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        """Ask if a run is in progress; abort it cleanly, leave outputs safe, close the bench."""
        if self._closed:
            event.accept()
            return
        if self.worker.busy and not self.confirm_close(self):
            event.ignore()
            return
        if self.worker.busy:
            self.abort()
        self.statusBar().showMessage("closing: safe state...")
        QApplication.processEvents()
        self.worker.shutdown(timeout=SHUTDOWN_TIMEOUT)
        self.bridge.stop()
        self.log_pane.detach()
        self._closed = True
        event.accept()


def _catalogue_url(config: str | Path | None) -> str | None:
    """The config's ``[catalogue] url`` for the run browser's search (None: the folder's runs.sqlite)."""
    from instruments.config import load_config

    try:
        return load_config(config).catalogue_url
    except Exception as exc:  # the bench panel reports a bad config; the browser searches the folder's
        log.error("catalogue of the bench config: %s", exc)
        return None
