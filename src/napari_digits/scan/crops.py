"""Step 5: MNIST-style 28x28 crops of the digits found."""

from __future__ import annotations

import numpy as np

from napari_digits.scan.gray import resize
from napari_digits.scan.regions import BOX, FIELD, DigitRegion

#: ink below this (relative to the stroke) is not part of the digit's box
FRINGE = 0.35


def normalize_crop(
    ink: np.ndarray, *, box: int = BOX, field: int = FIELD
) -> np.ndarray:
    """Make a 28x28 MNIST-style image of one digit.

    Parameters
    ----------
    ink : ndarray
        float ``(h, w)`` in 0..1 (1 = full ink) covering exactly the digit's
        bounding box; anything outside the digit must already be 0.
    box, field : int
        The longest side is scaled to ``box`` pixels (aspect ratio kept,
        anti-aliased), then the digit is placed in a ``field`` x ``field``
        image so that its centre of mass sits in the middle.

    Returns
    -------
    ndarray
        uint8 ``(field, field)``, white ink on black, 0..255 like MNIST.

    Examples
    --------
    >>> crop = normalize_crop(np.ones((40, 10)))
    >>> crop.shape, crop.dtype, crop.max()
    ((28, 28), dtype('uint8'), np.uint8(255))
    """
    h, w = ink.shape
    scale = box / max(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))  # area average
    small = resize(ink, shape, area=True)
    peak = float(small.max())
    out = np.zeros((field, field), np.float32)
    if peak <= 0:  # no ink (the ink is never negative)
        return out.astype(np.uint8)
    small = small / max(peak, 1e-6)  # darkest stroke: 255, as MNIST
    cy, cx = _center_of_mass(small)  # MNIST: whole-pixel shift to the centre
    top = min(max(round(field / 2 - cy), 0), field - shape[0])
    left = min(max(round(field / 2 - cx), 0), field - shape[1])
    out[top : top + shape[0], left : left + shape[1]] = small
    np.clip(out, 0, 1, out=out)
    out *= 255
    return np.round(out, out=out).astype(np.uint8)


def _center_of_mass(image: np.ndarray) -> tuple[float, float]:
    """``scipy.ndimage.center_of_mass`` of a 2D image, the same sums, cheaper."""
    total = image.sum()
    rows = np.arange(image.shape[0], dtype=float)[:, None]
    cols = np.arange(image.shape[1], dtype=float)[None, :]
    return (image * rows).sum() / total, (image * cols).sum() / total


def _crop_ink(
    strength: np.ndarray, own: np.ndarray, box: tuple[int, ...], margin: int
) -> np.ndarray:
    """Cut the digit's ink: its own pixels and their faint fringe.

    The fringe (``margin`` pixels around the thresholded shape) holds the
    anti-aliased edge that MNIST's 20-pixel box includes; ink of neighbours
    is left out. Values are divided by the stroke's typical strength.
    """
    r0, c0, r1, c1 = box
    top, left = min(margin, r0), min(margin, c0)
    bottom = min(margin, strength.shape[0] - r1)
    right = min(margin, strength.shape[1] - c1)
    padded = np.zeros((top + own.shape[0] + bottom, left + own.shape[1] + right), bool)
    padded[top : top + own.shape[0], left : left + own.shape[1]] = own
    keep = _dilate(padded, margin)
    ink = np.where(keep, strength[r0 - top : r1 + bottom, c0 - left : c1 + right], 0)
    core = ink[padded]
    k = int(0.9 * (core.size - 1))  # the 90th percentile, cheaply
    level = float(np.partition(core, k)[k])
    ink /= max(level, 1e-3)
    np.clip(ink, 0.0, 1.0, out=ink)
    rows = np.flatnonzero(ink.max(axis=1) > FRINGE)
    cols = np.flatnonzero(ink.max(axis=0) > FRINGE)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilate by a square of side ``2 * radius + 1``, by shifted ORs.

    The same pixels as a maximum filter of that size; cheaper on a digit's
    small box for the few pixels of radius used here.
    """
    rows = mask.copy()
    for d in range(1, radius + 1):
        rows[d:] |= mask[:-d]
        rows[:-d] |= mask[d:]
    out = rows.copy()
    for d in range(1, radius + 1):
        out[:, d:] |= rows[:, :-d]
        out[:, :-d] |= rows[:, d:]
    return out


def _region(lab, mask, box, strength, touching, margin, crop=None):
    """Describe and crop the digit ``mask`` (in ``box``) holds.

    ``crop``, when given, is the crop already made of the same mask in the
    same box; returns ``(None, None)`` for an empty mask.
    """
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None, None
    r0, c0 = box[0], box[1]
    tight = (
        r0 + int(rows.min()),
        c0 + int(cols.min()),
        r0 + int(rows.max()) + 1,
        c0 + int(cols.max()) + 1,
    )
    if crop is None:
        crop = _crop(mask, tight, box, strength, margin)
    region = DigitRegion(
        label=int(lab),
        bbox=tight,
        centroid=(float(rows.mean() + r0), float(cols.mean() + c0)),
        area=int(rows.size),
        touching=touching,
    )
    return region, crop


def crop_piece(mask, box, strength, margin) -> np.ndarray | None:
    """Return the crop :func:`_region` makes of ``mask`` in ``box`` (None: empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, c0 = box[0], box[1]
    tight = (r0 + int(rows[0]), c0 + int(cols[0]))
    tight += (r0 + int(rows[-1]) + 1, c0 + int(cols[-1]) + 1)
    return _crop(mask, tight, box, strength, margin)


def _crop(mask, tight, box, strength, margin) -> np.ndarray:
    """Crop the digit of ``mask`` (in ``box``) whose page box is ``tight``."""
    top, left = tight[0] - box[0], tight[1] - box[1]
    own = mask[top : top + tight[2] - tight[0], left : left + tight[3] - tight[1]]
    return normalize_crop(_crop_ink(strength, own, tight, margin))


def _no_crops() -> np.ndarray:
    return np.zeros((0, FIELD, FIELD), np.uint8)
