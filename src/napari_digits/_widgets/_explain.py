"""Explain this digit: its crop, its ten probabilities, the feature maps.

A small Qt panel of the Read digits dock. The feature maps come from the
engine process (a ``FeatureMaps`` request, as the Learned filters dock asks
for them); this module only draws arrays.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

CROP_PIXELS = 56
MAP_PIXELS = 150


def gray_pixmap(image: np.ndarray, size: int) -> QPixmap:
    """Return a uint8 grey image as a QPixmap scaled without smoothing."""
    data = np.ascontiguousarray(image, np.uint8)
    qimage = QImage(
        data.data, data.shape[1], data.shape[0], data.shape[1], QImage.Format_Grayscale8
    )
    return QPixmap.fromImage(qimage.copy()).scaled(size, size, Qt.KeepAspectRatio)


def probability_text(probs: np.ndarray) -> str:
    """Return the ten probabilities as text bars, one line a class."""
    return "\n".join(
        f"{k} {'█' * round(p * 8):<8} {p:6.1%}" for k, p in enumerate(probs)
    )


def mosaic(maps: np.ndarray, gap: int = 1) -> np.ndarray:
    """Tile ``(H, W, F)`` feature maps in a near-square grid, uint8.

    Each map is scaled to its own maximum (activations are >= 0 after ReLU;
    negative values show black), so weak filters stay visible.
    """
    maps = np.asarray(maps, np.float32)
    h, w, count = maps.shape
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), 60, np.uint8)
    for k in range(count):
        m = np.clip(maps[..., k], 0, None)
        top = m.max()
        tile = (m / top * 255 if top > 0 else m).astype(np.uint8)
        r, c = divmod(k, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return out


class ExplainPanel(QWidget):
    """Crop and probabilities side by side with the first layer's feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.crop, self.probs, self.maps = QLabel(), QLabel(), QLabel()
        self.caption = QLabel()
        self.probs.setStyleSheet("font-family: monospace")
        self.caption.setWordWrap(True)
        for label in (self.crop, self.maps):
            label.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.caption.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.crop, 0, 0)
        layout.addWidget(self.probs, 0, 1)
        layout.addWidget(self.maps, 0, 2)
        layout.addWidget(self.caption, 1, 0, 1, 3)
        layout.setColumnStretch(3, 1)

    def show_digit(self, crop: np.ndarray, probs: np.ndarray, caption: str) -> None:
        """Show a digit's 28x28 crop and probabilities; forget older maps."""
        self.crop.setPixmap(gray_pixmap(crop, CROP_PIXELS))
        self.probs.setText(probability_text(probs))
        self.maps.clear()
        self.caption.setText(caption)

    def show_maps(self, maps: np.ndarray, caption: str) -> None:
        """Show the first layer's feature maps ``(H, W, F)`` as one mosaic."""
        self.maps.setPixmap(gray_pixmap(mosaic(maps), MAP_PIXELS))
        self.caption.setText(caption)

    def clear(self) -> None:
        """Show nothing (a new page was read)."""
        for label in (self.crop, self.probs, self.maps, self.caption):
            label.clear()

    @property
    def empty(self) -> bool:
        """True when no digit is shown."""
        pixmap = self.crop.pixmap()
        return pixmap is None or pixmap.isNull()
