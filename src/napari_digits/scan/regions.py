"""What a scan returns: the digit regions, the scan, its error and constants."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: side of the MNIST field and of the box the digit is scaled into
FIELD = 28
BOX = 20
#: digits smaller than this (pixels) cannot be read; smaller "digits" are grain
MIN_HEIGHT = 8

Progress = Callable[[str], None]
#: maps (N, 28, 28) uint8 crops to (N, C) class probabilities
Classify = Callable[[np.ndarray], np.ndarray]


class ScanError(ValueError):
    """The image cannot be scanned as given; the message says what to do."""


@dataclass(frozen=True)
class DigitRegion:
    """One digit found on the page.

    ``bbox`` is ``(min_row, min_col, max_row, max_col)`` in page pixels, the
    max exclusive (scikit-image's convention); ``centroid`` is the centre of
    mass of its ink; ``label`` its value in :attr:`Scan.labels`; ``touching``
    is True when it was cut out of a wider component; ``mark`` is True for a
    mark that is not a digit (a point, comma, dash or ``=`` among digits).
    """

    label: int
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    area: int
    touching: bool = False
    mark: bool = False

    @property
    def height(self) -> int:
        """Height of the bounding box in pixels."""
        return self.bbox[2] - self.bbox[0]

    @property
    def width(self) -> int:
        """Width of the bounding box in pixels."""
        return self.bbox[3] - self.bbox[1]


@dataclass(frozen=True)
class Scan:
    """What :func:`find_digits` found on a page.

    ``crops[i]`` is the 28x28 uint8 MNIST-style image of ``regions[i]``;
    ``labels`` the page-sized label image (0 background, one label a digit);
    ``ink`` is ``"dark"`` or ``"light"``; ``messages`` says what the cleanup
    did, for the user; ``probabilities``, where the digits were read while
    scanning (``find_digits(fields=True)``), ``(N, 10)`` per region, and
    ``lines`` the short lines as the field reader read them: the labels of
    their regions left to right and their ``(32, 192)`` uint8 input image
    (:func:`napari_digits.scan.fields.short_lines`), for learning from
    corrections.
    """

    regions: tuple[DigitRegion, ...]
    crops: np.ndarray
    labels: np.ndarray
    ink: str
    digit_height: float
    messages: tuple[str, ...] = field(default=())
    probabilities: np.ndarray | None = None
    lines: tuple[tuple[tuple[int, ...], np.ndarray], ...] = ()

    def __len__(self) -> int:
        return len(self.regions)


def chain_lines(regions: Sequence[DigitRegion], tolerance: float) -> list[list[int]]:
    """Chain digits left to right into lines; lines sorted top to bottom.

    Each region, taken left to right, joins the line whose last region lies
    to its left with the nearest centre row, within ``tolerance`` pixels.

    Returns
    -------
    list of list of int
        Indices into ``regions``, a list per line, each left to right.
    """
    lines: list[list[int]] = []
    for k in sorted(range(len(regions)), key=lambda k: regions[k].bbox[1]):
        row, col = regions[k].centroid
        best, best_d = None, tolerance
        for i, line in enumerate(lines):
            last = regions[line[-1]]
            d = abs(last.centroid[0] - row)
            if d <= best_d and last.centroid[1] < col:
                best, best_d = i, d
        if best is None:
            lines.append([k])
        else:
            lines[best].append(k)
    return sorted(lines, key=lambda m: np.mean([regions[k].centroid[0] for k in m]))
