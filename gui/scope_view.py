"""Scope waveform view: up to four channels in V against time in s."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtWidgets import QVBoxLayout, QWidget

CHANNELS = 4
CHANNEL_COLOURS = ("#f0e442", "#56b4e9", "#e69f00", "#cc79a7")  # the usual scope channel colours


class ScopeView(QWidget):
    """Oscilloscope traces; curves downsample to the screen width (peak method)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(title="scope")
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.setLabel("left", "voltage", units="V")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.addLegend(offset=(-10, 10))
        self.curves = []
        for ch in range(CHANNELS):
            curve = self.plot.plot(pen=pg.mkPen(CHANNEL_COLOURS[ch], width=1), name=f"CH{ch + 1}")
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
            self.curves.append(curve)
        self.frames = 0
        self._named: dict[str, int] = {}  # trace stream name -> channel curve
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.plot)

    def show_traces(self, t: np.ndarray, volts: np.ndarray, title: str = "scope") -> None:
        """Draw ``volts`` (V): shape (points,) for CH1, or (channels, points); extra leading axes
        (segments) show the last acquisition. ``t``: sample times in s, shape (points,)."""
        volts = np.asarray(volts, dtype=float)
        if volts.ndim == 1:
            volts = volts[np.newaxis]
        volts = volts.reshape(-1, volts.shape[-1])[-CHANNELS:]
        t = np.asarray(t, dtype=float)
        if t.shape[-1] != volts.shape[-1]:
            raise ValueError(f"t has {t.shape[-1]} samples but the traces have {volts.shape[-1]}")
        for ch, curve in enumerate(self.curves):
            if ch < len(volts):
                curve.setData(t, volts[ch], skipFiniteCheck=True)
            else:
                curve.setData([], [])
        self.plot.setTitle(title)
        self.frames += 1

    def show_named(self, name: str, t: np.ndarray, volts: np.ndarray) -> None:
        """One recorded trace stream (a run's ``Traces``) on its own curve, by order of first appearance.

        ``volts`` (V): (points,) or (segments, points): the last segment is drawn."""
        if name not in self._named:
            if len(self._named) >= CHANNELS:
                return
            self._named[name] = len(self._named)
        curve = self.curves[self._named[name]]
        volts = np.asarray(volts, dtype=float).reshape(-1, np.shape(volts)[-1])[-1]
        curve.setData(np.asarray(t, dtype=float), volts, skipFiniteCheck=True)
        curve.opts["name"] = name
        self.plot.setTitle("scope: " + ", ".join(self._named))
        self.frames += 1

    @property
    def trace_names(self) -> list[str]:
        """Recorded trace streams shown, in channel order."""
        return list(self._named)

    def clear_named(self) -> None:
        """Forget the trace streams of the previous run."""
        self._named.clear()
