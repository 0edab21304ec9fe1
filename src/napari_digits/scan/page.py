"""The whole pipeline: a page in, a :class:`Scan` out."""

from __future__ import annotations

import numpy as np

from napari_digits.scan.components import (
    _components,
    _select,
    erase_long_runs,
    estimate_digit_height,
)
from napari_digits.scan.crops import _no_crops, _region
from napari_digits.scan.gray import to_gray
from napari_digits.scan.ink import binarize, ink_strength
from napari_digits.scan.regions import BOX, MIN_HEIGHT, DigitRegion, Progress, Scan
from napari_digits.scan.touching import _pieces


def find_digits(
    image: np.ndarray,
    *,
    ink: str = "auto",
    method: str = "otsu",
    min_contrast: float = 0.15,
    digit_height: float | None = None,
    min_area: int | None = None,
    background_size: int | None = None,
    split_touching: bool = True,
    progress: Progress | None = None,
) -> Scan:
    """Find the digits on a page and make their MNIST-style crops.

    Parameters
    ----------
    image : ndarray
        A 2D page, see :func:`to_gray`.
    ink : {"auto", "dark", "light"}
        Ink darker or lighter than the paper; detected by default.
    method : {"otsu", "local"}
        Threshold method, see :func:`binarize`.
    min_contrast : float
        Lowest ink strength that counts as ink (0..1).
    digit_height : float, optional
        Typical digit height in pixels; estimated from the page by default.
    min_area : int, optional
        Specks under this many pixels are dropped; by default 1% of the
        squared digit height (at least 6).
    background_size : int, optional
        Window of the background estimate, see :func:`background`.
    split_touching : bool
        Split components wider than a digit into several digits.
    progress : callable, optional
        Called with a short description before each step.

    Returns
    -------
    Scan
        Regions sorted top to bottom then left to right, crops, labels.

    Raises
    ------
    ScanError
        When the image is not a 2D page or an option is invalid.
    """
    say = progress or (lambda _msg: None)
    say("normalising the background")
    messages: list[str] = []
    gray = to_gray(image, notes=messages)
    strength, ink = ink_strength(gray, ink=ink, background_size=background_size)
    del gray
    say("thresholding")
    mask = binarize(strength, method=method, min_contrast=min_contrast)
    say("labelling components")
    labels, boxes, areas = _components(mask)
    keep = areas >= 6
    height = digit_height or estimate_digit_height(boxes[keep], areas[keep])
    if height < MIN_HEIGHT or not keep.any():
        return _empty(labels.shape, ink, messages)
    if (boxes[:, 2] - boxes[:, 0] > 4 * height).any() or (
        boxes[:, 3] - boxes[:, 1] > 6 * height
    ).any():
        mask, erased = erase_long_runs(mask, int(4 * height))
        messages.append(f"erased {erased} pixels of ruled lines or borders")
        labels, boxes, areas = _components(mask)
    del mask
    say("cleaning up components")
    min_area = min_area if min_area is not None else max(6, int(0.01 * height**2))
    specks = areas < min_area
    lut, kept = _select(boxes, areas, specks, height)
    say("normalising crops")
    return _assemble(labels, lut, strength, kept, height, split_touching, ink, messages)


def _assemble(labels, lut, strength, boxes, height, split, ink, messages) -> Scan:
    """Relabel, split touching digits, crop; regions sorted top-left first."""
    labels = lut[labels]  # one label per kept (merged) component
    regions: list[DigitRegion] = []
    crops: list[np.ndarray] = []
    margin = max(1, round(height / BOX))  # about one MNIST pixel
    touching, next_label = 0, len(boxes) + 1
    for i, b in enumerate(boxes, start=1):
        box = tuple(int(v) for v in b)
        pieces = _pieces(labels, i, box, height if split else np.inf, next_label)
        touching += len(pieces) > 1
        next_label += len(pieces) - 1
        for lab, mask, flag in pieces:
            region, crop = _region(lab, mask, box, strength, flag, margin)
            if region is not None:
                regions.append(region)
                crops.append(crop)
    if touching:
        messages.append(f"split {touching} components of touching digits")
    if not regions:
        messages.append("no digits found")
    order = sorted(range(len(regions)), key=lambda k: regions[k].bbox[:2])
    stack = np.stack([crops[k] for k in order]) if crops else _no_crops()
    sorted_regions = tuple(regions[k] for k in order)
    return Scan(sorted_regions, stack, labels, ink, float(height), tuple(messages))


def _empty(shape, ink, messages) -> Scan:
    return Scan(
        (),
        _no_crops(),
        np.zeros(shape, np.int32),
        ink,
        0.0,
        (*messages, "no digits found"),
    )
