"""Macro conductance maps: one pyqtgraph image per macro, a colour bar in µS, cell selection."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

G_RANGE_US = (0.0, 80.0)  # uS, colour scale of the maps: the programmable targets (2..65 uS) and a margin
MAPS_PER_ROW = 4
US = 1e6  # uS per S


class CellImage(pg.ImageItem):
    """A macro's conductance image; a click reports (macro, row, col)."""

    def __init__(self, macro: int, on_click) -> None:
        super().__init__(axisOrder="row-major")
        self.macro = macro
        self._on_click = on_click

    def mouseClickEvent(self, ev) -> None:
        if self.image is None:
            return
        pos = ev.pos()
        row, col = int(np.floor(pos.y())), int(np.floor(pos.x()))
        rows, cols = self.image.shape[:2]
        if 0 <= row < rows and 0 <= col < cols:
            ev.accept()
            self._on_click(self.macro, row, col)


class MapsPanel(QWidget):
    """The array at a glance; click a cell to select it for read, I-V or pulse.

    ``cell_action(action, macro, row, col)``: action is "read", "iv" or "pulse".
    ``refresh_requested``: read every map again (the worker does the reading).
    """

    cell_selected = pyqtSignal(int, int, int)
    cell_action = pyqtSignal(str, int, int, int)
    refresh_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = pg.GraphicsLayoutWidget()
        self.images: dict[int, CellImage] = {}
        self.plots: dict[int, pg.PlotItem] = {}
        self.selected: tuple[int, int, int] | None = None
        self.updates = 0  # maps drawn since start (tests, status)
        self._marker = pg.ScatterPlotItem(symbol="s", size=12, pen=pg.mkPen("m", width=2), brush=None)
        self.colorbar: pg.ColorBarItem | None = None
        self.selection_label = QLabel("click a cell to select it")
        self.cell_value = QLabel("")
        buttons = QHBoxLayout()
        for text, action in (("Read cell", "read"), ("I-V sweep", "iv"), ("Pulse / program", "pulse")):
            button = QPushButton(text)
            button.setToolTip(f"{text} on the selected cell (the runner gets the cell for I-V and pulse)")
            button.clicked.connect(lambda _=False, a=action: self._act(a))
            buttons.addWidget(button)
        refresh = QPushButton("Refresh maps")
        refresh.clicked.connect(lambda _=False: self.refresh_requested.emit())
        buttons.addWidget(refresh)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.view, 1)
        info = QHBoxLayout()
        info.addWidget(self.selection_label)
        info.addWidget(self.cell_value)
        info.addStretch(1)
        layout.addLayout(info)
        layout.addLayout(buttons)

    def set_geometry(self, n_macros: int, rows: int, cols: int) -> None:
        """One image per macro, laid out MAPS_PER_ROW to a row, blank until read."""
        self.view.clear()
        self.images.clear()
        self.plots.clear()
        for macro in range(n_macros):
            plot = self.view.addPlot(row=macro // MAPS_PER_ROW, col=macro % MAPS_PER_ROW, title=f"macro {macro}")
            plot.setAspectLocked(True)
            plot.invertY(True)
            plot.hideAxis("bottom")
            plot.hideAxis("left")
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            image = CellImage(macro, self.select)
            image.setImage(np.full((rows, cols), np.nan), autoLevels=False, levels=G_RANGE_US)
            plot.addItem(image)
            plot.setRange(xRange=(0, cols), yRange=(0, rows), padding=0.02)
            self.images[macro], self.plots[macro] = image, plot
        self.colorbar = pg.ColorBarItem(values=G_RANGE_US, colorMap=pg.colormap.get("viridis"),
                                        label="G (µS)", interactive=False)
        self.colorbar.setImageItem(list(self.images.values()))
        self.view.addItem(self.colorbar, row=0, col=MAPS_PER_ROW, rowspan=max(1, -(-n_macros // MAPS_PER_ROW)))

    def update_map(self, macro: int, conductance: np.ndarray) -> None:
        """Draw one macro's map; ``conductance`` in S, shape (rows, cols)."""
        image = self.images.get(macro)
        if image is None:
            return
        image.setImage(np.asarray(conductance, dtype=float) * US, autoLevels=False, levels=G_RANGE_US)
        self.updates += 1
        if self.selected is not None and self.selected[0] == macro:
            self._show_value()

    def select(self, macro: int, row: int, col: int) -> None:
        """Select a cell (also what a click does)."""
        self.selected = (macro, row, col)
        if self._marker.scene() is not None:
            self._marker.getViewBox().removeItem(self._marker)
        self._marker.setData([col + 0.5], [row + 0.5])
        self.plots[macro].addItem(self._marker)
        self.selection_label.setText(f"selected: macro {macro}, row {row}, col {col}")
        self._show_value()
        self.cell_selected.emit(macro, row, col)

    def show_cell_read(self, macro: int, row: int, col: int, g: float) -> None:
        self.cell_value.setText(f"read of ({macro}, {row}, {col}): {g * US:.2f} µS")

    def _show_value(self) -> None:
        macro, row, col = self.selected
        image = self.images[macro].image
        if image is not None and np.isfinite(image[row, col]):
            self.cell_value.setText(f"map: {image[row, col]:.2f} µS")

    def _act(self, action: str) -> None:
        if self.selected is None:
            self.selection_label.setText("<span style='color:#c00'>select a cell on a map first</span>")
            return
        self.cell_action.emit(action, *self.selected)
