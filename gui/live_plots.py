"""Live plots of a running protocol, fed by the queue bridge.

Tabs: convergence (progress and scalar streams), histogram (the newest vector or
map: conductance levels, write-verify error), I-V loop, sample scatter. The tab a
protocol brings forward is in :data:`PLOT_FOR`; unknown protocols get convergence.
Curves keep at most :data:`MAX_POINTS` points (halved by decimation when full) so a
long run redraws as fast as a short one.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from gui.live_queue import decimate

MAX_POINTS = 20_000  # points kept per live curve
US = 1e6  # uS per S
HIST_BINS = 64

PLOT_FOR = {
    "write-verify": "Convergence",
    "pattern": "Convergence",
    "program-model": "Convergence",
    "iv-sweep": "I-V",
    "form": "I-V",
    "multilevel": "Histogram",
    "read-array": "Histogram",
    "read-noise": "Histogram",
    "write-noise": "Histogram",
    "retention": "Convergence",
    "sample": "Scatter",
    "noise-sweep": "Scatter",
}
VOLTAGE_NAMES = ("voltage", "v", "bias")
CURRENT_NAMES = ("current", "i")
SIEMENS_NAMES = ("programmed", "conductance", "error", "rms_error", "levels", "readback", "g")
IV_LOOPS = 8
BASELINE_NAMES = ("software", "baseline")
# Vectors histogrammed, most telling first: write-verify error, level read-backs, maps.
HIST_PRIORITY = ("error", "readback", "programmed", "conductance", "levels")  # I-V cycles kept on screen


class LiveCurve:
    """A growing (x, y) curve capped at MAX_POINTS by decimation."""

    def __init__(self, item: pg.PlotDataItem) -> None:
        self.item = item
        self.xy = np.empty((0, 2))

    def extend(self, xy: np.ndarray) -> None:
        self.xy = np.concatenate([self.xy, xy])
        if len(self.xy) > MAX_POINTS:
            self.xy = decimate(self.xy, MAX_POINTS // 2)
        self.item.setData(self.xy[:, 0], self.xy[:, 1], skipFiniteCheck=True)

    def clear(self) -> None:
        self.xy = np.empty((0, 2))
        self.item.setData([], [])


class LivePlots(QWidget):
    """The live view of the current run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tabs = QTabWidget()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.tabs)
        self.frames = 0  # redraws since start

        conv = pg.GraphicsLayoutWidget()
        self.progress_plot = conv.addPlot(row=0, col=0, title="run progress")
        self.progress_plot.setLabel("bottom", "elapsed", units="s")
        self.progress_plot.setLabel("left", "fraction done")
        self.progress_plot.setYRange(0, 1)
        self.stream_plot = conv.addPlot(row=0, col=1, title="recorded scalars")
        self.stream_plot.setLabel("bottom", "record (row of the stream)")
        self.stream_plot.addLegend(offset=(-10, 10))
        self.progress_curve = LiveCurve(self.progress_plot.plot(pen=pg.mkPen("c", width=2)))
        self.streams: dict[str, LiveCurve] = {}
        self._t0: float | None = None

        hist = pg.GraphicsLayoutWidget()
        self.hist_plot = hist.addPlot(title="histogram")
        self.hist_plot.setLabel("left", "count")
        self.hist_item = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=(80, 140, 255, 150))
        self.hist_plot.addItem(self.hist_item)

        iv = pg.GraphicsLayoutWidget()
        self.iv_plot = iv.addPlot(title="I-V")
        self.iv_plot.setLabel("bottom", "voltage", units="V")
        self.iv_plot.setLabel("left", "current", units="A")
        self.iv_curve = LiveCurve(self.iv_plot.plot(pen=pg.mkPen("y", width=1), symbol="o", symbolSize=3))
        self._iv_pending: dict[str, np.ndarray] = {"v": np.empty(0), "i": np.empty(0)}
        self._loop_v: np.ndarray | None = None
        self.iv_loops: list[pg.PlotDataItem] = []

        scatter = pg.GraphicsLayoutWidget()
        self.scatter_plot = scatter.addPlot(title="samples")
        self.scatter_plot.setAspectLocked(True)
        self.scatter_plot.addLegend(offset=(-10, 10))
        self.scatter_item = pg.ScatterPlotItem(size=5, pen=None, brush=(255, 150, 40, 150), name="analog (bench)")
        self.baseline_item = pg.ScatterPlotItem(size=3, pen=None, brush=(90, 200, 255, 200), name="software baseline")
        self.scatter_plot.addItem(self.scatter_item)
        self.scatter_plot.addItem(self.baseline_item)  # on top: the reference the analog cloud is judged against
        self.points: dict[str, np.ndarray] = {}
        self._hist_rank = len(HIST_PRIORITY)

        for widget, name in ((conv, "Convergence"), (hist, "Histogram"), (iv, "I-V"), (scatter, "Scatter")):
            self.tabs.addTab(widget, name)

    # -- run lifecycle -------------------------------------------------------------------------
    def start_run(self, protocol: str) -> None:
        """Clear the plots and bring forward the tab ``protocol`` is best seen in."""
        self.progress_curve.clear()
        for curve in self.streams.values():
            self.stream_plot.removeItem(curve.item)
        self.streams.clear()
        self.stream_plot.clear()
        self.stream_plot.addLegend(offset=(-10, 10))
        self.iv_curve.clear()
        self._iv_pending = {"v": np.empty(0), "i": np.empty(0)}
        for loop in self.iv_loops:
            self.iv_plot.removeItem(loop)
        self.iv_loops.clear()
        self._loop_v = None
        self.hist_item.setData([0, 1], [0])
        self.scatter_item.clear()
        self.baseline_item.clear()
        self.points.clear()
        self._hist_rank = len(HIST_PRIORITY)
        self._t0 = None
        self.show_tab(PLOT_FOR.get(protocol, "Convergence"))

    def show_tab(self, name: str) -> None:
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i) == name:
                self.tabs.setCurrentIndex(i)

    @property
    def current_tab(self) -> str:
        return self.tabs.tabText(self.tabs.currentIndex())

    # -- data ------------------------------------------------------------------------------------
    def on_data(self, kind: str, name: str | None, value: object) -> None:
        """One drained item of the live queue (see gui.bridge.QueueBridge.data)."""
        if kind == "progress":
            xy = np.asarray(value, dtype=float)
            if self._t0 is None:
                self._t0 = float(xy[0, 0])
            self.progress_curve.extend(np.column_stack([xy[:, 0] - self._t0, xy[:, 1]]))
        elif kind == "series":
            self._series(str(name), np.asarray(value, dtype=float))
        elif kind == "vector" and str(name).lower() in VOLTAGE_NAMES + CURRENT_NAMES:
            self._iv_loop(str(name).lower() in VOLTAGE_NAMES, np.asarray(value, dtype=float))
        elif kind in ("vector", "image"):
            self.show_histogram(str(name), np.asarray(value, dtype=float).ravel())
        elif kind == "points":
            self._points(str(name), np.asarray(value, dtype=float).reshape(-1, 2))
        elif kind == "pulse_read":
            self._series("verify read", np.asarray(value, dtype=float))
        self.frames += 1

    def show_histogram(self, name: str, values: np.ndarray) -> None:
        """Histogram of a vector or map; a run's most telling one wins (see HIST_PRIORITY)."""
        rank = HIST_PRIORITY.index(name) if name in HIST_PRIORITY else len(HIST_PRIORITY)
        if rank > self._hist_rank:
            return
        self._hist_rank = rank
        values = values[np.isfinite(values)]
        if not values.size:
            return
        siemens = name.lower() in SIEMENS_NAMES
        shown = values * US if siemens else values
        counts, edges = np.histogram(shown, bins=HIST_BINS)
        self.hist_item.setData(edges, counts)
        self.hist_plot.setTitle(f"{name} ({values.size} values)")
        self.hist_plot.setLabel("bottom", name, units="µS" if siemens else "")

    def _series(self, name: str, values: np.ndarray) -> None:
        low = name.lower()
        if low in VOLTAGE_NAMES or low in CURRENT_NAMES:
            self._iv(low in VOLTAGE_NAMES, values)
            return
        curve = self.streams.get(name)
        if curve is None:
            pen = pg.intColor(len(self.streams), hues=8)
            curve = LiveCurve(self.stream_plot.plot(pen=pen, name=name))
            self.streams[name] = curve
        start = curve.xy[-1, 0] + 1 if len(curve.xy) else 0
        curve.extend(np.column_stack([start + np.arange(len(values)), values]))

    def _iv(self, is_voltage: bool, values: np.ndarray) -> None:
        key = "v" if is_voltage else "i"
        self._iv_pending[key] = np.concatenate([self._iv_pending[key], values])
        n = min(len(self._iv_pending["v"]), len(self._iv_pending["i"]))
        if n:
            self.iv_curve.extend(np.column_stack([self._iv_pending["v"][:n], self._iv_pending["i"][:n]]))
            self._iv_pending = {k: v[n:] for k, v in self._iv_pending.items()}

    def _iv_loop(self, is_voltage: bool, values: np.ndarray) -> None:
        """One whole sweep (a row of voltages, then the row of currents): a new loop on the I-V plot."""
        if is_voltage:
            self._loop_v = values
            return
        if self._loop_v is None or self._loop_v.shape != values.shape:
            return
        loop = self.iv_plot.plot(self._loop_v, values, pen=pg.mkPen("y", width=1))
        self.iv_loops.append(loop)
        if len(self.iv_loops) > IV_LOOPS:
            self.iv_plot.removeItem(self.iv_loops.pop(0))
        for age, item in enumerate(reversed(self.iv_loops)):
            item.setPen(pg.mkPen((255, 220, 60, max(40, 255 - 40 * age)), width=1))
        self._loop_v = None

    def _points(self, name: str, xy: np.ndarray) -> None:
        """Sample scatter: the analog samples grow batch by batch, the software baseline behind them."""
        kept = np.concatenate([self.points.get(name, np.empty((0, 2))), xy])
        self.points[name] = decimate(kept, MAX_POINTS) if len(kept) > MAX_POINTS else kept
        analog_name = "final" if "final" in self.points else next((n for n in self.points if n not in BASELINE_NAMES
                                                                   and n != "initial"), name)
        analog = self.points[analog_name]
        self.scatter_item.setData(analog[:, 0], analog[:, 1])
        baseline = next((self.points[n] for n in BASELINE_NAMES if n in self.points), None)
        if baseline is not None:
            self.baseline_item.setData(baseline[:, 0], baseline[:, 1])
        self.scatter_plot.setTitle(f"samples: {len(analog)} analog ({analog_name})")
