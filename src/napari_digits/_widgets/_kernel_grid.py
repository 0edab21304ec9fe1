"""A small heat-map grid of kernel weights (blue negative, white 0, red positive)."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_digits._widgets._display import wrap

#: the grid's side in pixels, whatever the kernel's size
SIDE_PX = 210
#: cells narrower than this show their value only as a tooltip
NUMBER_MIN_PX = 30


def weight_colour(value: float, scale: float) -> QColor:
    """Return the diverging colour of one weight (``scale``: the largest |weight|)."""
    t = 0.0 if scale == 0 else float(np.clip(value / scale, -1, 1))
    fade = round(255 * (1 - 0.7 * abs(t)))  # light enough for black numbers
    return QColor(255, fade, fade) if t >= 0 else QColor(fade, fade, 255)


class KernelGrid(QWidget):
    """Heat-map tables of one or two kernels, with the values written in."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._row = QHBoxLayout()
        self.message = QLabel()
        wrap(self.message)  # a long reason must not widen the dock
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._row)
        layout.addWidget(self.message)
        self.tables: list[QTableWidget] = []

    def set_weights(self, weights: list[np.ndarray], note: str = "") -> None:
        """Show these kernels side by side, with ``note`` underneath."""
        self._clear()
        pair = len(weights) == 2
        for w in weights:
            table = _table(np.asarray(w, dtype=float), SIDE_PX // (2 if pair else 1))
            self.tables.append(table)
            self._row.addWidget(table)
        self._row.addStretch()
        self.message.setText(note)

    def set_message(self, text: str) -> None:
        """Show a message (e.g. why a typed kernel is invalid) instead of a grid."""
        self._clear()
        self.message.setText(text)

    def _clear(self) -> None:
        while self._row.count():
            item = self._row.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.tables = []


def _table(w: np.ndarray, side: int) -> QTableWidget:
    rows, cols = w.shape
    cell = max(3, min(40, side // max(rows, cols)))
    table = QTableWidget(rows, cols)
    for header in (table.horizontalHeader(), table.verticalHeader()):
        header.setMinimumSectionSize(1)
        header.hide()
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.NoSelection)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    table.setShowGrid(cell >= 8)
    scale = float(np.abs(w).max())
    for (r, c), value in np.ndenumerate(w):
        item = QTableWidgetItem(f"{value:.3g}" if cell >= NUMBER_MIN_PX else "")
        item.setToolTip(f"[{r}, {c}] = {value:.6g}")
        item.setTextAlignment(Qt.AlignCenter)
        item.setBackground(QBrush(weight_colour(value, scale)))
        item.setForeground(QBrush(QColor("black")))
        table.setItem(r, c, item)
    for i in range(rows):
        table.setRowHeight(i, cell)
    for j in range(cols):
        table.setColumnWidth(j, cell)
    font = table.font()
    font.setPointSize(7 if cell < 36 else 8)
    table.setFont(font)
    table.setFixedSize(cols * cell + 2, rows * cell + 2)
    return table
