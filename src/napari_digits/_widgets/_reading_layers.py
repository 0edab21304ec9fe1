"""The Read digits layers: built in the worker, updated in place in the GUI.

- ``digits: labels``: one label a digit (hover shows its reading),
- ``digits: readings``: each digit's reading written above its box,
- ``digits: boxes``: a Vectors layer, four segments a box, coloured by status.

No Shapes layer and no text layer: on Mesa llvmpipe removing one and drawing
another crashes the viewer (README, Known issues), and both cost seconds for
thousands of digits. Page-sized layers are multiscale, so that only the part
in view goes to the GPU; the three layers are updated one per turn of the
event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels, Vectors
from napari.utils.colormaps import DirectLabelColormap

from napari_digits import annotations, results
from napari_digits._widgets import OneATurn
from napari_digits.scan import Scan

if TYPE_CHECKING:
    import napari

LABELS_LAYER = "digits: labels"
BOXES_LAYER = "digits: boxes"
READINGS_LAYER = "digits: readings"
MINE = (LABELS_LAYER, BOXES_LAYER, READINGS_LAYER)


@dataclass
class Reading:
    """A read page, with every array its layers need (built in the worker).

    ``rows``, ``codes`` and ``readings`` change in place with corrections.
    """

    scan: Scan
    rows: list[results.DigitRow]
    probabilities: np.ndarray
    codes: np.ndarray
    segments: np.ndarray
    labels: list[np.ndarray]
    readings: np.ndarray
    readings_scale: float
    lost: int
    key: str = ""  # the page's pixels (correction_log.page_key): its kept corrections
    restored: int = 0  # corrections kept from before that found their digit again
    problem: str = ""  # why the kept corrections could not be read


def draw(scan: Scan, rows, probs, review: float, lost: int = 0, **kept: Any) -> Reading:
    """Build the arrays of the result layers (worker thread)."""
    codes = annotations.status(rows, review)
    scale = annotations.readings_scale(scan.digit_height or 28)
    shape = scan.labels.shape
    labels = scan.labels
    if len(rows) < np.iinfo(np.uint16).max:
        labels = labels.astype(np.uint16)  # drawn as is; int32 is hashed per draw
    return Reading(
        scan=scan,
        rows=rows,
        probabilities=probs,
        codes=codes,
        segments=annotations.box_segments(rows),
        labels=annotations.pyramid(labels),
        readings=annotations.readings_image(rows, codes, shape, scale),
        readings_scale=scale,
        lost=lost,
        **kept,
    )


def labels_features(rows: list[results.DigitRow]) -> dict[str, np.ndarray]:
    """Return what hovering a digit shows: number, reading, probability."""
    return {
        "index": np.array([r.label for r in rows], int),
        "digit": np.array([r.digit for r in rows], int),
        "read": np.array([r.value for r in rows], object),  # "65": several
        "p": np.array([r.probability for r in rows], float),
        "2nd": np.array([r.runner_up for r in rows], int),
        "corrected": np.array([r.corrected is not None for r in rows], bool),
    }


def status_colormap() -> DirectLabelColormap:
    """Colours of the readings image's status codes (0 transparent)."""
    colours = {None: "transparent", 0: "transparent", **annotations.STATUS_COLOURS}
    return DirectLabelColormap(color_dict=colours)


class ReadingLayers:
    """The three layers of the last page read, in one viewer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Where the layers live.
    on_click : callable
        A napari mouse-drag callback added to each layer (box selection).
    """

    def __init__(self, viewer: napari.viewer.Viewer, on_click: Callable) -> None:
        self.viewer = viewer
        self.on_click = on_click
        self._steps = OneATurn()

    @property
    def ready(self) -> bool:
        """True when the last page's layers are all in place."""
        return self._steps.done

    def put(self, source: Image, reading: Reading) -> None:
        """Show a reading over its page, one layer per turn of the event loop."""
        if not reading.rows:
            self._steps.run([])
            for name in MINE:
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
            return
        where = {"scale": source.scale[-2:], "translate": source.translate[-2:]}
        unit = np.asarray(source.scale[-2:])
        step = reading.readings_scale * unit
        over = {"scale": step, "translate": where["translate"] + (step - unit) / 2}
        width = max(1.0, reading.scan.digit_height / 12)
        self._steps.run(
            [
                lambda: self._put_labels(reading, where),
                lambda: self._put(
                    READINGS_LAYER,
                    Labels,
                    annotations.pyramid(reading.readings),
                    over,
                    colormap=status_colormap(),
                ),
                lambda: self._put(
                    BOXES_LAYER,
                    Vectors,
                    reading.segments,
                    where,
                    edge_width=width,
                    vector_style="line",
                    edge_color=annotations.segment_colours(reading.codes),
                ),
                lambda: self._finish(reading),
            ]
        )

    def _put_labels(self, reading: Reading, where: dict) -> None:
        labels = self._put(LABELS_LAYER, Labels, reading.labels, where, opacity=0.4)
        labels.features = labels_features(reading.rows)

    def _finish(self, reading: Reading) -> None:
        self.colour_boxes(reading.codes)
        for layer in (self.viewer.layers[n] for n in MINE if n in self.viewer.layers):
            if self.on_click not in layer.mouse_drag_callbacks:
                layer.mouse_drag_callbacks.append(self.on_click)
        if LABELS_LAYER in self.viewer.layers:
            self.viewer.layers.selection.active = self.viewer.layers[LABELS_LAYER]

    def _put(self, name: str, kind: type, data: Any, where: dict, **kwargs: Any):
        """Update layer ``name`` in place, or add it where it is missing.

        ``data`` is an array, or a list of levels (multiscale if more than one).
        """
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if isinstance(data, list):
            kwargs["multiscale"] = len(data) > 1
            data = data if len(data) > 1 else data[0]
        multiscale = bool(kwargs.get("multiscale", False))
        same = isinstance(layer, kind) and layer.multiscale == multiscale
        if same and multiscale:  # napari cannot change the number of levels
            same = len(layer.data) == len(data)
        if same:
            layer.data = data
            for key, value in where.items():
                if not np.allclose(getattr(layer, key), value):
                    setattr(layer, key, value)
            return layer
        if layer is not None:  # Labels and Vectors layers: removed safely
            self.viewer.layers.remove(layer)
        return self.viewer.add_layer(kind(data, name=name, **where, **kwargs))

    def colour_boxes(self, codes: np.ndarray, selected: int | None = None) -> None:
        """Colour the boxes by status; the selected digit's box white."""
        if BOXES_LAYER in self.viewer.layers and len(codes):
            colours = annotations.segment_colours(codes, selected)
            self.viewer.layers[BOXES_LAYER].edge_color = colours

    def rewrite(self, reading: Reading, index: int, before: str = "") -> None:
        """Write digit ``index``'s reading again (corrected or recoded).

        ``before`` is the reading shown until now (erased first).
        """
        annotations.write_reading(
            reading.readings,
            reading.rows[index],
            int(reading.codes[index]),
            reading.readings_scale,
            before,
        )
        if READINGS_LAYER in self.viewer.layers:
            self.viewer.layers[READINGS_LAYER].refresh()

    def update_features(self, rows: list[results.DigitRow]) -> None:
        """Give the labels layer the table's current values (for hover)."""
        if LABELS_LAYER in self.viewer.layers:
            self.viewer.layers[LABELS_LAYER].features = labels_features(rows)
