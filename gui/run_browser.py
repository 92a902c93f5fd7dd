"""Run browser: the run files of the data folder, a summary and figures of the one opened.

Works on every file ``analysis.open_run`` reads: completed, aborted, failed,
killed (reported "interrupted") and still running (SWMR reader). Every file is read
first in the watched helper process of :mod:`analysis.isolation`, from a background
thread: the listing marks each file with its status (damaged ones in red, with the
reason as tooltip) as the checks come in, and a damaged file never blocks the window.
The search field lists the runs of the catalogue the filters select instead
(``protocol=P status=S chip=C since=DATE until=DATE PARAM<op>VALUE``, as ``rrambench runs``).
"""

from __future__ import annotations

import html
import itertools
import logging
import queue
import threading
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QObject, Qt, pyqtSignal
from PyQt5.QtGui import QColor
from PyQt5.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from analysis.run_reader import Run, RunFileError, open_run
from analysis.schema import DATA, SCOPE, SIGNAL, data_path
from protocols.engine.progress import format_duration

log = logging.getLogger("rrambench.gui.browser")

US = 1e6  # uS per S
STATUS_COLOURS = {"completed": "#080", "aborted": "#b60", "failed": "#c00", "interrupted": "#c00", "running": "#06c",
                  "damaged": "#c00"}
STATUS_ROLE = Qt.UserRole + 1  # list items: the status found by the check ("damaged" for an unreadable file)


class FileChecks(QObject):
    """Opens run files with ``open_run(path, isolate=True)`` in one background thread.

    ``submit(kind, path, tag)``: "open" requests go before "list" ones. ``done(kind,
    path, tag, result)`` arrives on the Qt thread; ``result`` is the Run or the error text.
    """

    done = pyqtSignal(str, str, object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._requests: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        requests = self._requests  # not self: the slot runs as the object is destroyed
        self.destroyed.connect(lambda *_: requests.put((-1, -1, "stop", "", None)))
        threading.Thread(target=self._work, daemon=True, name="rrambench-run-browser-checks").start()

    def submit(self, kind: str, path: str, tag: object = None) -> None:
        self._requests.put((0 if kind == "open" else 1, next(self._order), kind, path, tag))

    def _work(self) -> None:
        while True:
            _, _, kind, path, tag = self._requests.get()
            if kind == "stop":
                return
            try:
                result: Run | str = open_run(path, isolate=True)
            except RunFileError as exc:
                result = " ".join(str(exc).split())
            except Exception as exc:  # the browser shows it; the thread goes on
                result = f"{path}: {type(exc).__name__}: {exc}"
            try:
                self.done.emit(kind, path, tag, result)
            except RuntimeError:  # the browser was deleted meanwhile
                return


class RunBrowser(QWidget):
    """Lists ``*.h5`` in ``folder`` (newest first); a click opens one.

    ``opened`` is emitted with the Run (None for an unreadable file) once a file asked
    for with :meth:`open_file` is shown.
    """

    opened = pyqtSignal(object)

    def __init__(self, folder: str | Path, parent: QWidget | None = None, *, catalogue: str | None = None) -> None:
        super().__init__(parent)
        self.catalogue = catalogue  # URL of the run catalogue (None: runs.sqlite in the folder)
        self.search = QLineEdit()
        self.search.setPlaceholderText("search: protocol=P status=S chip=C since=2026-11-23 v_max>1.2")
        self.search.returnPressed.connect(self.refresh)
        self.checks = FileChecks(self)
        self.checks.done.connect(self._checked)
        self._listing = 0  # generation of the listing: checks of an older one are dropped
        self._opening: str | None = None
        self._found: dict[str, tuple[tuple[float, int], Run | str]] = {}  # path -> (mtime, size), result
        self.folder_edit = QLineEdit(str(folder))
        browse = QPushButton("...")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.files = QListWidget()
        self.files.itemClicked.connect(lambda item: self.open_file(item.data(Qt.UserRole)))
        self.summary = QTextBrowser()
        self.figures = pg.GraphicsLayoutWidget()
        self.main_plot = self.figures.addPlot(row=0, col=0)
        self.second_plot = self.figures.addPlot(row=1, col=0)
        self.run: Run | None = None

        top = QHBoxLayout()
        top.addWidget(self.folder_edit, 1)
        top.addWidget(browse)
        top.addWidget(refresh)
        right = QSplitter(Qt.Vertical)
        right.addWidget(self.summary)
        right.addWidget(self.figures)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.files)
        split.addWidget(right)
        split.setSizes([200, 500])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.search)
        layout.addWidget(split, 1)
        self.refresh()

    @property
    def folder(self) -> Path:
        return Path(self.folder_edit.text().strip() or ".")

    def set_folder(self, folder: str | Path) -> None:
        self.folder_edit.setText(str(folder))
        self.refresh()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Data folder", str(self.folder))
        if folder:
            self.set_folder(folder)

    def refresh(self) -> None:
        """List the folder's run files (or the catalogue's runs the search selects), newest first;
        each is checked in the background."""
        self.files.clear()
        self._listing += 1
        if not self.folder.is_dir():
            return
        for path in self._searched() if self.search.text().strip() else \
                sorted(self.folder.glob("*.h5"), key=_mtime, reverse=True):
            item = QListWidgetItem(path.name)
            item.setData(Qt.UserRole, str(path))
            item.setToolTip("checking ...")
            self.files.addItem(item)
            stamp, result = self._found.get(str(path), (None, ""))
            if stamp == _stamp(path) and getattr(result, "status", "") != "running":  # unchanged, settled
                self._mark(str(path), result)
            else:
                self.checks.submit("list", str(path), self._listing)

    def _searched(self) -> list[Path]:
        """The runs of the catalogue the search selects (a bad search: its one line, in red)."""
        from analysis.catalogue import Catalogue, CatalogueError, FilterError, RunFilter

        try:
            flt = RunFilter.from_text(self.search.text())
            with Catalogue(self.catalogue, self.folder) as catalogue:
                found = catalogue.query(flt, folder=self.folder if self.catalogue else None)
        except (FilterError, CatalogueError) as exc:
            self.summary.setHtml(f"<p style='color:#c00'>{html.escape(str(exc))}</p>")
            return []
        return [Path(run["path"]) for run in found]

    def open_file(self, path: str | Path) -> None:
        """Show the summary and figures of one run file (an error text if it is unreadable).

        The file is checked off the Qt thread; ``opened`` is emitted once it is shown.
        """
        self._opening = str(path)
        self.summary.setHtml(f"<p>checking {html.escape(Path(path).name)} ...</p>")
        self.main_plot.clear()
        self.second_plot.clear()
        self.checks.submit("open", str(path))

    def _checked(self, kind: str, path: str, tag: object, result: Run | str) -> None:
        if kind == "list":
            if tag == self._listing:
                self._mark(path, result)
        elif path == self._opening:
            self._opening = None
            self._mark(path, result)
            self.opened.emit(self._show(result))

    def _mark(self, path: str, result: Run | str) -> None:
        """Colour and tooltip of the list item of ``path``: its status, or why it is damaged."""
        self._found[path] = (_stamp(Path(path)), result)
        status = "damaged" if isinstance(result, str) else result.status
        tip = result if isinstance(result, str) else \
            f"{result.protocol}, {result.status}, {result.steps_completed}/{result.steps_total} steps"
        for i in range(self.files.count()):
            item = self.files.item(i)
            if item.data(Qt.UserRole) == path:
                item.setData(STATUS_ROLE, status)
                item.setToolTip(tip)
                item.setForeground(QColor(STATUS_COLOURS.get(status, "#000")))

    def _show(self, result: Run | str) -> Run | None:
        if isinstance(result, str):
            self.run = None
            self.summary.setHtml(f"<p style='color:#c00'>{html.escape(result)}</p>")
            return None
        self.run = result
        self.summary.setHtml(summary_html(result))
        try:
            self._draw(result)
        except (RunFileError, OSError, KeyError, ValueError) as exc:
            log.warning("figures of %s: %s", result.path.name, exc)
        return result

    def _draw(self, run: Run) -> None:
        self.main_plot.clear()
        self.second_plot.clear()
        streams = {p[len(DATA) + 1:]: d for p, d in run.datasets.items() if p.startswith(f"{DATA}/")}
        signal = str(run.attrs(DATA).get(SIGNAL, "")) if streams else ""
        if signal in streams:
            self._figure(self.main_plot, run, signal)
        others = [n for n in ("rms_error", "error") if n in streams and n != signal]
        traces = [p for p in run.datasets if p.startswith(f"{SCOPE}/")]
        if others:
            self._figure(self.second_plot, run, others[0])
        elif traces and run.datasets[traces[0]].shape[0]:
            name = traces[0][len(SCOPE) + 1:]
            volts, t = run.trace_volts(name), run.trace_time(name)
            self.second_plot.plot(t, volts.reshape(-1, volts.shape[-1])[-1], pen="y")
            self.second_plot.setTitle(f"scope {name} (last acquisition)")
            self.second_plot.setLabel("bottom", "time", units="s")
            self.second_plot.setLabel("left", "voltage", units="V")

    @staticmethod
    def _figure(plot: pg.PlotItem, run: Run, name: str) -> None:
        info = run.datasets[data_path(name)]
        if not info.shape or info.shape[0] == 0:
            plot.setTitle(f"{name}: no rows recorded")
            return
        data = np.asarray(run.read(name), dtype=float)
        scale, units = (US, "µS") if info.units == "S" else (1.0, info.units)
        if data.ndim == 3:  # maps: the last one
            image = pg.ImageItem(data[-1] * scale, axisOrder="row-major")
            plot.addItem(image)
            plot.invertY(True)
            plot.setAspectLocked(True)
            plot.setTitle(f"{name}, last of {data.shape[0]} ({units}, {np.nanmin(data[-1]) * scale:.3g}"
                          f" .. {np.nanmax(data[-1]) * scale:.3g})")
        elif data.ndim == 2 and data.shape[1] == 2:
            plot.plot(data[:, 0], data[:, 1], pen=None, symbol="o", symbolSize=3, symbolPen=None)
            plot.setTitle(f"{name}: {data.shape[0]} points")
        elif data.ndim == 2:
            counts, edges = np.histogram(data[-1][np.isfinite(data[-1])] * scale, bins=64)
            plot.plot(edges, counts, stepMode="center", fillLevel=0, brush=(80, 140, 255, 150))
            plot.setTitle(f"{name}: histogram of the last row ({data.shape[1]} values)")
            plot.setLabel("bottom", name, units=units)
        else:
            plot.plot(np.arange(data.size), data.ravel() * scale, pen="c")
            plot.setTitle(name)
            plot.setLabel("left", name, units=units)


def _mtime(path: Path) -> float:
    return _stamp(path)[0]


def _stamp(path: Path) -> tuple[float, int]:
    """(mtime, size) of ``path``: a file whose stamp changed is checked again."""
    try:
        stat = path.stat()
    except OSError:  # removed meanwhile
        return (0.0, -1)
    return (stat.st_mtime, stat.st_size)


def summary_html(run: Run) -> str:
    """Status, steps, times, error, parameters and datasets of a run, as HTML."""
    colour = STATUS_COLOURS.get(run.status, "#000")
    elapsed = sum(e.end - e.start for e in run.journal)
    rows = [
        ("file", run.path.name),
        ("protocol", run.protocol),
        ("status", f"<b style='color:{colour}'>{run.status}</b>"),
        ("steps", f"{run.steps_completed} of {run.steps_total} completed"),
        ("started", run.started),
        ("ended", run.ended or "-"),
        ("step time", format_duration(elapsed)),
        ("bench", "simulated" if run.simulated else "hardware"),
        ("seed", str(run.seed)),
        ("world seed", "-" if run.world_seed is None else str(run.world_seed)),
    ]
    if run.error:
        rows.append(("error", f"<span style='color:#c00'>{html.escape(run.error)}</span>"))
    text = "<table>" + "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows) + "</table>"
    text += "<h4>Parameters</h4><table>" + "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in run.parameters.items())
    text += "</table><h4>Datasets</h4><table>" + "".join(
        f"<tr><td>{html.escape(p)}</td><td>{d.shape}</td><td>{d.units or ''}</td></tr>"
        for p, d in sorted(run.datasets.items()))
    return text + "</table>"
