"""The "Read digits" dock widget: wiring only.

Finding digits is :func:`napari_digits.scan.find_digits`, the table is
:mod:`napari_digits.results`, classifying is a ``Predict`` request to the
engine process. This module turns controls into one background job and its
result into layers (labels, boxes with text, the table as features), a
sortable table with corrections, a crop view and a CSV export.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_digits import results
from napari_digits._widgets import ensure_pool_threads
from napari_digits.current_model import current_model
from napari_digits.scan import Scan, ScanError, find_digits

if TYPE_CHECKING:
    import napari

LABELS_LAYER = "digits: labels"
BOXES_LAYER = "digits: boxes"
#: table columns: header -> DigitRow attribute
COLUMNS = {
    "digit": "digit",
    "line": "line",
    "pos.": "position",
    "number": "number",
    "read": "prediction",
    "p": "probability",
    "2nd": "runner_up",
    "p 2nd": "runner_up_probability",
    "corrected": "corrected",
}
CORRECTED = list(COLUMNS).index("corrected")
OK_COLOUR, REVIEW_COLOUR, CORRECTED_COLOUR = "lime", "orangered", "cyan"


def classify(model: str, crops: np.ndarray) -> np.ndarray:
    """Ask the engine for the crops' probabilities (worker thread)."""
    from napari_digits.engine.client import get_engine
    from napari_digits.engine.protocol import Predict

    return get_engine().call(Predict(model=model, images=crops))


def read_job(image: np.ndarray, model: str, options: dict[str, Any], file: str):
    """Find, classify and tabulate a page; yields step names (worker thread)."""
    number_gap = options.pop("number_gap")
    yield "finding digits"
    scan = find_digits(image, **options)
    yield f"classifying {len(scan)} digits"
    probs = classify(model, scan.crops) if len(scan) else np.zeros((0, 10))
    rows = results.build_table(scan, probs, file=file, number_gap=number_gap)
    return scan, rows, probs


def page_of(viewer: napari.viewer.Viewer, layer: Any) -> tuple[np.ndarray, str]:
    """Return the 2D (or RGB) page a layer shows now, and a note about it.

    Raises
    ------
    ScanError
        For anything but an Image layer.
    """
    if not isinstance(layer, Image):
        kind = type(layer).__name__ if layer is not None else "no"
        raise ScanError(
            f"{kind} layer chosen: choose an Image layer that holds the scanned page"
        )
    data = layer.data[0] if layer.multiscale else layer.data  # full resolution
    page_ndim = 3 if layer.rgb else 2
    if data.ndim == page_ndim:
        return np.asarray(data), ""
    lead = data.ndim - page_ndim
    step = viewer.dims.current_step[-layer.ndim :][:lead]
    plane = data[tuple(int(s) for s in step)]
    return np.asarray(plane), f"processing the current plane {tuple(step)} of a stack"


def file_name(layer: Image) -> str:
    """Return the page's file for the table: source path, metadata, or name."""
    path = layer.source.path or layer.metadata.get("path")
    return str(path) if path else layer.name


def rectangles(rows: list[results.DigitRow]) -> list[np.ndarray]:
    """Four corners of each digit's box, in page coordinates (rows, cols)."""
    return [
        np.array(
            [
                [r.min_row - 0.5, r.min_col - 0.5],
                [r.min_row - 0.5, r.max_col - 0.5],
                [r.max_row - 0.5, r.max_col - 0.5],
                [r.max_row - 0.5, r.min_col - 0.5],
            ]
        )
        for r in rows
    ]


def box_text(row: results.DigitRow) -> str:
    """Text over a box: the digit read (or corrected) and its confidence."""
    mark = "*" if row.corrected is not None else ""
    return f"{row.value}{mark} {row.probability:.0%}"


def box_colour(row: results.DigitRow, threshold: float) -> str:
    """Edge colour: corrected, uncertain (to review) or confident."""
    if row.corrected is not None:
        return CORRECTED_COLOUR
    return REVIEW_COLOUR if row.needs_review(threshold) else OK_COLOUR


def crop_pixmap(crop: np.ndarray, size: int = 112) -> QPixmap:
    """Return a QPixmap of a uint8 crop, scaled up without smoothing."""
    data = np.ascontiguousarray(crop, np.uint8)
    image = QImage(
        data.data, data.shape[1], data.shape[0], data.shape[1], QImage.Format_Grayscale8
    )
    return QPixmap.fromImage(image.copy()).scaled(size, size, Qt.KeepAspectRatio)


def probability_text(probs: np.ndarray) -> str:
    """Return the ten probabilities as text bars, one line a class."""
    return "\n".join(
        f"{k}  {'█' * round(p * 20):<20} {p:6.1%}" for k, p in enumerate(probs)
    )


class ScanWidget(QWidget):
    """Find, classify and read the handwritten digits of a scanned page.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose Image layer is read and where results are added.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        ensure_pool_threads()
        self.viewer = viewer
        self.rows: list[results.DigitRow] = []
        self.scan: Scan | None = None
        self.probabilities = np.zeros((0, 10))
        self.worker = None
        self._filling = False
        self._build_controls()
        self._build_table()
        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.table)
        view = QHBoxLayout()
        self.crop_view, self.prob_view = QLabel(), QLabel()
        self.prob_view.setStyleSheet("font-family: monospace")
        view.addWidget(self.crop_view)
        view.addWidget(self.prob_view)
        layout.addLayout(view)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(lambda _e=None: self.layer.reset_choices())

    # -- building ----------------------------------------------------------

    def _build_controls(self) -> None:
        self.layer = ComboBox(label="page", choices=self._layers)
        self.ink = ComboBox(label="ink", choices=["auto", "dark", "light"])
        self.method = ComboBox(label="threshold", choices=["otsu", "local"])
        self.min_contrast = FloatSpinBox(
            label="min contrast", value=0.15, min=0.01, max=1.0, step=0.01
        )
        self.digit_height = SpinBox(label="digit height (0: auto)", value=0, max=2000)
        self.number_gap = FloatSpinBox(
            label="number gap (digit heights)", value=0.6, min=0.05, max=5, step=0.05
        )
        self.review = FloatSpinBox(
            label="review below p",
            value=results.REVIEW_THRESHOLD,
            min=0,
            max=1,
            step=0.05,
        )
        self.split = CheckBox(text="split touching digits", value=True)
        self.run_button = PushButton(text="Find and classify")
        self.export_button = PushButton(text="Export CSV...")
        self.status = Label(value="")
        self.run_button.changed.connect(self.start)
        self.export_button.changed.connect(self._ask_export)
        self.review.changed.connect(self._refresh_boxes)
        self.controls = Container(
            widgets=[
                self.layer,
                self.ink,
                self.method,
                self.min_contrast,
                self.digit_height,
                self.number_gap,
                self.review,
                self.split,
                self.run_button,
                self.export_button,
                self.status,
            ]
        )

    def _build_table(self) -> None:
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.horizontalHeader().setSortIndicator(0, Qt.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        self.table.itemChanged.connect(self._on_item_changed)

    def _layers(self, _widget=None) -> list[tuple[str, Any]]:
        mine = (LABELS_LAYER, BOXES_LAYER)
        return [(lay.name, lay) for lay in self.viewer.layers if lay.name not in mine]

    # -- running -----------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """Return the scan options the controls hold."""
        return {
            "ink": self.ink.value,
            "method": self.method.value,
            "min_contrast": self.min_contrast.value,
            "digit_height": self.digit_height.value or None,
            "split_touching": self.split.value,
            "number_gap": self.number_gap.value,
        }

    def start(self, _=None):
        """Find and classify the digits of the chosen page in a worker."""
        layer = self.layer.value
        try:
            page, note = page_of(self.viewer, layer)
        except ScanError as exc:
            show_error(str(exc))
            return None
        if note:
            show_info(note)
        self.status.value = "reading..."
        self.run_button.enabled = False
        worker = create_worker(
            read_job,
            page,
            str(current_model.path),
            self.options(),
            file_name(layer),
            _progress={"total": 2, "desc": "Read digits"},
            _start_thread=False,
            _connect={  # "errored" here, or superqt re-raises it in the GUI
                "yielded": lambda step: setattr(self.status, "value", step),
                "returned": lambda out: self._show(layer, *out),
                "errored": self._on_error,
                "finished": lambda: setattr(self.run_button, "enabled", True),
            },
        )
        self.worker = worker
        worker.start()
        return worker

    def _on_error(self, exc: Exception) -> None:
        self.status.value = "failed"
        show_error(f"Read digits failed: {exc}")

    # -- results -----------------------------------------------------------

    def _show(self, layer: Image, scan: Scan, rows, probs) -> None:
        rows, carried = results.carry_corrections(self.rows, rows)
        lost = sum(r.corrected is not None for r in self.rows) - carried
        if lost > 0 and rows and self.rows[0].file == rows[0].file:
            show_warning(f"{lost} earlier correction(s) matched no digit any more")
        self.scan, self.rows = scan, rows
        self.probabilities = probs
        self._by_label = {r.label: k for k, r in enumerate(scan.regions)}
        extra = "; ".join(m for m in scan.messages if m != "no digits found")
        if not rows:
            self.status.value = "no digits found"
            show_warning("no digits found" + (f" ({extra})" if extra else ""))
        else:
            flagged = sum(r.needs_review(self.review.value) for r in rows)
            self.status.value = (
                f"{len(rows)} digits, {len(results.numbers(rows))} numbers, "
                f"{flagged} to review" + (f"; {extra}" if extra else "")
            )
        self._put_layers(layer, scan)
        self._fill_table()

    def _put_layers(self, source: Image, scan: Scan) -> None:
        where = {"scale": source.scale[-2:], "translate": source.translate[-2:]}
        features = results.to_features(self.rows)
        labels_features = {"index": features["label"], **features}
        for name in (LABELS_LAYER, BOXES_LAYER):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        if not self.rows:
            return
        self.viewer.add_labels(
            scan.labels,
            name=LABELS_LAYER,
            opacity=0.4,
            features=labels_features,
            **where,
        )
        boxes = self.viewer.add_shapes(
            rectangles(self.rows),
            shape_type="rectangle",
            name=BOXES_LAYER,
            face_color="transparent",
            edge_width=2,
            features=features,
            **where,
        )
        boxes.events.highlight.connect(self._on_box_selected)
        self._refresh_boxes()
        self.viewer.layers.selection.active = boxes

    def _refresh_boxes(self, _=None) -> None:
        if BOXES_LAYER not in self.viewer.layers or not self.rows:
            return
        boxes = self.viewer.layers[BOXES_LAYER]
        features = results.to_features(self.rows)
        features["text"] = np.array([box_text(r) for r in self.rows])
        boxes.features = features
        boxes.edge_color = [box_colour(r, self.review.value) for r in self.rows]
        boxes.text = {
            "string": "{text}",
            "anchor": "upper_left",
            "size": 9,
            "color": "magenta",
            "translation": [-3, 0],
        }
        labels = self.viewer.layers[LABELS_LAYER]
        labels.features = {"index": features["label"], **features}

    def _fill_table(self) -> None:
        self._filling = True
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            for j, attr in enumerate(COLUMNS.values()):
                value = getattr(row, attr)
                item = QTableWidgetItem()
                item.setData(Qt.UserRole, i)
                if attr == "corrected":
                    item.setText("" if value is None else str(value))
                else:
                    item.setData(Qt.DisplayRole, value)
                    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        self._filling = False

    # -- selection and corrections -----------------------------------------

    def _on_row_selected(self) -> None:
        items = self.table.selectedItems()
        if items:
            self.show_digit(items[0].data(Qt.UserRole))

    def _on_box_selected(self, _=None) -> None:
        boxes = self.viewer.layers[BOXES_LAYER]
        if len(boxes.selected_data) == 1:
            index = next(iter(boxes.selected_data))
            self.select_row(index)

    def select_row(self, index: int) -> None:
        """Select the table row of digit ``index`` (reading order, from 0)."""
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.UserRole) == index:
                self.table.selectRow(r)
                return

    def show_digit(self, index: int) -> None:
        """Show digit ``index``'s 28x28 crop and its ten probabilities."""
        k = self._by_label[self.rows[index].label]
        self.crop_view.setPixmap(crop_pixmap(self.scan.crops[k]))
        self.prob_view.setText(probability_text(self.probabilities[k]))

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != CORRECTED:
            return
        text = item.text().strip()
        try:
            value = int(text) if text else None
            self.correct(item.data(Qt.UserRole), value)
        except ValueError:
            show_error(
                f"a correction is one digit 0-9 (or empty to undo), not {text!r}"
            )
            self._fill_table()

    def correct(self, index: int, value: int | None) -> None:
        """Correct digit ``index`` (reading order, from 0) to ``value``."""
        self.rows = results.correct(self.rows, index, value)
        self._refresh_boxes()
        self._fill_table()

    # -- export ------------------------------------------------------------

    def _ask_export(self, _=None) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self, "Export the digits table", "digits.csv", "CSV (*.csv)"
        )
        if path:
            self.export_csv(path)

    def export_csv(self, path: str) -> int:
        """Write the table (with corrections) to ``path``; return the rows."""
        if not self.rows:
            show_warning("nothing to export: read a page first")
            return 0
        try:
            count = results.write_csv(self.rows, path)
        except OSError as exc:
            show_error(f"could not write {path}: {exc}")
            return 0
        show_info(f"wrote {count} digits to {path}")
        return count
