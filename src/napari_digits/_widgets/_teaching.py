"""The teaching view: the confusion matrix and the gallery of mistakes as layers.

Wiring only: the engine evaluates (an ``Evaluate`` request with
``predictions=True``), :mod:`napari_digits.evaluation` sorts the mistakes,
and this module puts them beside the user's images: ``confusion matrix``
(an image of counts, rows the true digit, columns the prediction, with its
counts written on it) and ``misclassified`` (a stack of the wrong test
digits, most confident mistake first, with true/predicted/confidence as the
features of its ``misclassified: labels`` points), plus a sortable table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from napari_digits._widgets._display import beside, scene_extent, selection_kept
from napari_digits.evaluation import Mistakes

CONFUSION_LAYER = "confusion matrix"
COUNTS_LAYER = "confusion matrix: counts"
GALLERY_LAYER = "misclassified"
GALLERY_LABELS = "misclassified: labels"
#: marks the layers of the teaching view (not part of the user's scene)
TEACHING_KEY = "napari_digits_teaching"
TABLE_COLUMNS = ("index", "true", "predicted", "confidence")


def show_evaluation(
    viewer: Any, confusion: np.ndarray, mistakes: Mistakes, images: np.ndarray
) -> None:
    """Add (or update) the confusion matrix and the gallery beside the scene.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Where the layers go.
    confusion : numpy.ndarray
        ``(10, 10)`` counts, rows the true digit.
    mistakes : Mistakes
        The misclassified digits, in gallery order.
    images : numpy.ndarray
        The test images ``(N, 28, 28)`` the mistakes index into.
    """
    scene = scene_extent(
        layer for layer in viewer.layers if not layer.metadata.get(TEACHING_KEY)
    )
    where = beside(scene, confusion.shape, pixel=None if scene is not None else 10)
    pixel = where["scale"][0]
    with selection_kept(viewer):
        _show_confusion(viewer, confusion, where)
        gallery = images[mistakes.index] if len(mistakes) else np.zeros((0, 28, 28))
        right = where["translate"][1] + 10 * pixel * 1.05
        place = {
            "scale": (1, pixel * 10 / 28, pixel * 10 / 28),
            "translate": (0, where["translate"][0], right),
        }
        _show_gallery(viewer, gallery.astype(np.uint8), mistakes, place)
    viewer.reset_view()


def _set_layer(viewer: Any, kind: str, name: str, data: Any, **kwargs: Any) -> Any:
    """Update the named layer in place, or add it (never remove and re-add)."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        for key in ("scale", "translate", "features", "contrast_limits"):
            if key in kwargs:
                setattr(layer, key, kwargs[key])
        if hasattr(layer, "refresh_text"):
            layer.refresh_text()
        return layer
    metadata = {TEACHING_KEY: True}
    return getattr(viewer, f"add_{kind}")(data, name=name, metadata=metadata, **kwargs)


def _show_confusion(viewer: Any, confusion: np.ndarray, where: dict) -> None:
    off_diagonal = confusion[~np.eye(10, dtype=bool)]
    top = max(int(off_diagonal.max(initial=0)), 1)  # errors visible, not the diagonal
    _set_layer(
        viewer, "image", CONFUSION_LAYER, confusion.astype(np.float32),
        colormap="viridis", contrast_limits=(0, top), interpolation2d="nearest",
        **where,
    )  # fmt: skip
    true, predicted = np.mgrid[0:10, 0:10].reshape(2, -1)
    features = {"true": true, "predicted": predicted, "count": confusion.ravel()}
    _set_layer(
        viewer, "points", COUNTS_LAYER, np.stack([true, predicted], axis=1),
        features=features, size=0.1, face_color="transparent",
        border_width=0, text={"string": "{count}", "size": 8, "color": "white"},
        **where,
    )  # fmt: skip


def _show_gallery(
    viewer: Any, gallery: np.ndarray, mistakes: Mistakes, place: dict
) -> None:
    if not len(mistakes):
        return
    _set_layer(
        viewer, "image", GALLERY_LAYER, gallery, colormap="gray",
        contrast_limits=(0, 255), **place,
    )  # fmt: skip
    planes = np.arange(len(mistakes))
    points = np.stack([planes, np.full_like(planes, 2), np.full_like(planes, 14)], 1)
    text = "true {true} → {predicted} ({confidence:.0%}), test #{index}"
    _set_layer(
        viewer, "points", GALLERY_LABELS, points, features=mistakes.table(),
        size=0.1, face_color="transparent", border_width=0,
        text={"string": text, "size": 10, "color": "yellow", "anchor": "upper_left"},
        **place,
    )  # fmt: skip


class MistakesTable(QTableWidget):
    """The misclassified digits as a table; sort by any column, click to see one."""

    def __init__(self, viewer: Any) -> None:
        super().__init__(0, len(TABLE_COLUMNS))
        self.viewer = viewer
        self.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setSortingEnabled(True)
        self.cellClicked.connect(self._on_click)
        self.setVisible(False)

    def fill(self, mistakes: Mistakes) -> None:
        """Show ``mistakes``, one row each, in gallery order."""
        self.setSortingEnabled(False)
        self.setRowCount(len(mistakes))
        for row in range(len(mistakes)):
            values = (
                int(mistakes.index[row]),
                int(mistakes.true[row]),
                int(mistakes.predicted[row]),
                round(float(mistakes.confidence[row]), 4),
            )
            for column, value in enumerate(values):
                item = QTableWidgetItem()
                item.setData(Qt.ItemDataRole.DisplayRole, value)
                if column == 0:
                    item.setData(Qt.ItemDataRole.UserRole, row)  # the gallery plane
                self.setItem(row, column, item)
        self.setSortingEnabled(True)
        self.resizeColumnsToContents()
        self.setVisible(len(mistakes) > 0)

    def _on_click(self, row: int, _column: int) -> None:
        plane = self.item(row, 0).data(Qt.ItemDataRole.UserRole)
        if GALLERY_LAYER in self.viewer.layers:
            layer = self.viewer.layers[GALLERY_LAYER]
            world = layer.data_to_world((plane, 0, 0))[0]
            self.viewer.dims.set_point(0, world)
