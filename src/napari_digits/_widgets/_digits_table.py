"""The Read digits table: a Qt model over the rows, so 7,000 digits cost nothing.

A ``QTableWidget`` makes one item a cell (63,000 for a big page) in the GUI
thread; this model answers only for the cells on screen, and sorts with numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from napari_digits.results import DigitRow

#: header -> how a row shows in that column (first three: visible at any width)
COLUMNS: dict[str, Callable[[DigitRow], object]] = {
    "#": lambda r: r.digit,
    "read": lambda r: r.value,
    "p": lambda r: round(r.probability, 3),
    "fix": lambda r: "" if r.corrected is None else r.corrected,
    "2nd": lambda r: r.runner_up,
    "p 2nd": lambda r: round(r.runner_up_probability, 3),
    "line": lambda r: r.line,
    "pos.": lambda r: r.position,
    "number": lambda r: r.number,
    "page": lambda r: r.page,
}
HEADERS = list(COLUMNS)
CORRECTED = HEADERS.index("fix")
TIPS = {
    "#": "digit number, in reading order",
    "read": "the digit as read (your correction if you made one)",
    "p": "the model's probability for its prediction",
    "fix": "type a digit 0-9 to correct the reading, - if it is not a digit, "
    "several digits (65) if the piece holds them or a digit beside it was "
    "missed; empty to undo",
    "2nd": "the runner-up class",
    "p 2nd": "the runner-up's probability",
    "line": "text line, from the top",
    "pos.": "position on the line",
    "number": "which number the digit belongs to",
    "page": "the page (plane of a stack, page of a multi-page file), from 1",
}


class DigitsModel(QAbstractTableModel):
    """The rows of a read page, in a sort order; the fix column is editable.

    ``on_correct(index, text)`` is called with the row's index in reading
    order (from 0) and the text typed in its fix cell.
    """

    def __init__(self, on_correct: Callable[[int, str], None]) -> None:
        super().__init__()
        self.rows: list[DigitRow] = []
        self.order = np.zeros(0, int)
        self.on_correct = on_correct
        self._sort: tuple[int, Qt.SortOrder] | None = None

    def set_rows(self, rows: Sequence[DigitRow]) -> None:
        """Show new rows (a new page), keeping the sort column."""
        self.beginResetModel()
        self.rows = list(rows)
        self.order = np.arange(len(self.rows))
        self.endResetModel()
        if self._sort is not None:
            self.sort(*self._sort)

    def update_rows(self, rows: Sequence[DigitRow]) -> None:
        """Repaint the same digits with new values (a correction), in order."""
        self.rows = list(rows)
        if self.rows:
            last = self.index(len(self.rows) - 1, len(HEADERS) - 1)
            self.dataChanged.emit(self.index(0, 0), last)

    def row_of(self, index: int) -> int:
        """Return the table row that shows digit ``index`` (reading order)."""
        hits = np.flatnonzero(self.order == index)
        return int(hits[0]) if len(hits) else -1

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Qt: number of rows."""
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Qt: number of columns."""
        return 0 if parent.isValid() else len(HEADERS)

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole) -> object:
        """Qt: a cell's text (digit index in reading order: UserRole)."""
        k = int(self.order[index.row()])
        if role in (Qt.DisplayRole, Qt.EditRole):
            return COLUMNS[HEADERS[index.column()]](self.rows[k])
        if role == Qt.UserRole:
            return k
        if role == Qt.TextAlignmentRole:
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None

    def headerData(self, section: int, orientation, role: int = Qt.DisplayRole):
        """Qt: column names and their tool tips."""
        if orientation != Qt.Horizontal:
            return None
        if role == Qt.DisplayRole:
            return HEADERS[section]
        if role == Qt.ToolTipRole:
            return TIPS[HEADERS[section]]
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlags:
        """Qt: the fix column is editable."""
        flags = Qt.ItemIsEnabled | Qt.ItemIsSelectable
        if index.column() == CORRECTED:
            flags |= Qt.ItemIsEditable
        return flags

    def setData(self, index: QModelIndex, value: object, role: int = Qt.EditRole):
        """Qt: a typed correction goes to ``on_correct``."""
        if role != Qt.EditRole or index.column() != CORRECTED:
            return False
        self.on_correct(int(self.order[index.row()]), str(value).strip())
        return True

    def sort(self, column: int, order: Qt.SortOrder = Qt.AscendingOrder) -> None:
        """Qt: sort by a column (stable, numpy)."""
        self._sort = (column, order)
        get = COLUMNS[HEADERS[column]]
        keys = np.array([_key(get(r)) for r in self.rows], float)
        self.layoutAboutToBeChanged.emit()
        self.order = np.argsort(keys, kind="stable")
        if order == Qt.DescendingOrder:
            self.order = self.order[::-1]
        self.layoutChanged.emit()


def _key(value: object) -> float:
    return -1.0 if value == "" else float(value)  # type: ignore[arg-type]


def digits_table(model: DigitsModel) -> QTableView:
    """Make a compact sortable view: digit, reading and p fit any dock."""
    view = QTableView()
    view.setModel(model)
    view.setSortingEnabled(True)
    view.horizontalHeader().setSortIndicator(0, Qt.AscendingOrder)
    view.setSelectionBehavior(QAbstractItemView.SelectRows)
    view.setSelectionMode(QAbstractItemView.SingleSelection)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 4)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.Interactive)
    width = view.fontMetrics().horizontalAdvance("00000") + 10
    for column in range(len(HEADERS)):
        view.setColumnWidth(column, width)
    return view
