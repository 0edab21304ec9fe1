"""The teaching view: the confusion matrix and the gallery of mistakes as layers.

Wiring only: the engine evaluates (an ``Evaluate`` request with
``predictions=True``), :mod:`napari_digits.evaluation` sorts the mistakes,
and this module puts them beside the user's images: ``confusion matrix``
(an image of counts, rows the true digit, columns the prediction, with its
counts written on it) and ``misclassified`` (a stack of the wrong test
digits, most confident mistake first, "true>predicted confidence%" written
over each by ``misclassified: labels``; the table of true, predicted,
confidence and test index is the layer's ``metadata["mistakes"]``), plus a
sortable table. Counts and labels are glyph images (Labels layers), never
text layers: on Mesa llvmpipe removing a text layer and drawing another
crashes the viewer (README, Known issues).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from napari_digits import annotations
from napari_digits._widgets._display import beside, keeping_selection, scene_extent
from napari_digits.evaluation import Mistakes

CONFUSION_LAYER = "confusion matrix"
COUNTS_LAYER = "confusion matrix: counts"
GALLERY_LAYER = "misclassified"
GALLERY_LABELS = "misclassified: labels"
#: marks the layers of the teaching view (not part of the user's scene)
TEACHING_KEY = "napari_digits_teaching"
TABLE_COLUMNS = ("index", "true", "predicted", "confidence")
#: texels of the counts image per cell of the confusion matrix (4 digits fit)
CELL_TEXELS = 48
#: texels of the gallery's labels per pixel of a digit, and their glyph height
GALLERY_TEXELS, GALLERY_GLYPH = 2, 10


def evaluation_steps(
    viewer: Any, confusion: np.ndarray, mistakes: Mistakes, images: np.ndarray
) -> list[Callable[[], None]]:
    """Return the steps that add (or update) the confusion matrix and gallery.

    One layer a step, to be run one per turn of the event loop
    (:class:`~napari_digits._widgets.OneATurn`); placed beside the scene.

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
    gallery = images[mistakes.index] if len(mistakes) else np.zeros((0, 28, 28))
    right = where["translate"][1] + 10 * pixel * 1.05
    place = {
        "scale": (1, pixel * 10 / 28, pixel * 10 / 28),
        "translate": (0, where["translate"][0], right),
    }
    steps = [
        *_confusion_steps(viewer, confusion, where),
        *_gallery_steps(viewer, gallery.astype(np.uint8), mistakes, place),
        viewer.reset_view,
    ]
    return [keeping_selection(viewer, step) for step in steps]


def _set_layer(viewer: Any, kind: str, name: str, data: Any, **kwargs: Any) -> Any:
    """Update the named layer in place, or add it (never remove and re-add)."""
    layer = viewer.layers[name] if name in viewer.layers else None
    if layer is not None and layer._type_string == kind:
        layer.data = data
        for key in ("scale", "translate", "contrast_limits"):
            if key in kwargs:
                setattr(layer, key, kwargs[key])
        return layer
    if layer is not None:  # an older version's text layer: replaced once
        viewer.layers.remove(layer)
    metadata = {TEACHING_KEY: True}
    return getattr(viewer, f"add_{kind}")(data, name=name, metadata=metadata, **kwargs)


def _glyphs_over(where: dict, texels: int) -> dict:
    """Scale and translate of a glyph image with ``texels`` texels a pixel."""
    scale = np.asarray(where["scale"], float)
    step = np.r_[scale[:-2], scale[-2:] / texels]
    shift = np.r_[np.zeros(len(scale) - 2), (step[-2:] - scale[-2:]) / 2]
    return {"scale": step, "translate": np.asarray(where["translate"]) + shift}


def _colour(name: str) -> DirectLabelColormap:
    return DirectLabelColormap(color_dict={None: name, 0: "transparent"})


def _confusion_steps(viewer: Any, confusion: np.ndarray, where: dict) -> list:
    off_diagonal = confusion[~np.eye(10, dtype=bool)]
    top = max(int(off_diagonal.max(initial=0)), 1)  # errors visible, not the diagonal
    matrix = partial(
        _set_layer, viewer, "image", CONFUSION_LAYER, confusion.astype(np.float32),
        colormap="viridis", contrast_limits=(0, top), interpolation2d="nearest",
        **where,
    )  # fmt: skip
    # the counts as glyphs, not text: see napari_digits.annotations
    # white on the dark cells, black on the bright ones
    codes = np.where(confusion > 0.6 * top, 2, 1).astype(np.uint8)
    counts = annotations.cell_texts(
        confusion.astype(int).astype(str), CELL_TEXELS, codes
    )
    colours = DirectLabelColormap(
        color_dict={None: "white", 0: "transparent", 1: "white", 2: "black"}
    )
    cells = partial(
        _set_layer, viewer, "labels", COUNTS_LAYER, counts, colormap=colours,
        **_glyphs_over(where, CELL_TEXELS),
    )  # fmt: skip
    return [matrix, cells]


def _gallery_steps(
    viewer: Any, gallery: np.ndarray, mistakes: Mistakes, place: dict
) -> list:
    if not len(mistakes):
        return []
    table = mistakes.table()

    def digits() -> None:
        layer = _set_layer(
            viewer, "image", GALLERY_LAYER, gallery, colormap="gray",
            contrast_limits=(0, 255), **place,
        )  # fmt: skip
        layer.metadata["mistakes"] = table

    labels = partial(
        _set_layer, viewer, "labels", GALLERY_LABELS, gallery_labels(mistakes),
        colormap=_colour("yellow"), **_glyphs_over(place, GALLERY_TEXELS),
    )  # fmt: skip
    return [digits, labels]


def gallery_labels(mistakes: Mistakes) -> np.ndarray:
    """Write "true>predicted confidence%" over the top of each gallery plane."""
    side = 28 * GALLERY_TEXELS
    out = np.zeros((len(mistakes), side, side), np.uint8)
    height = GALLERY_GLYPH
    for k in range(len(mistakes)):
        percent = round(100 * float(mistakes.confidence[k]))
        text = f"{mistakes.true[k]}>{mistakes.predicted[k]} {percent}%"
        annotations.write_text(out[k], text, height + 2, 2, 1, height)
    return out


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
