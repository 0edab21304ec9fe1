"""Lines of MNIST digits, made to train the field reader.

Pure numpy/scipy. Each line holds one to seven MNIST training digits (and
a tenth as many digits printed in the system fonts), drawn
as the shipped model's augmentation draws them (continental 1s, 7s and
joined 0s, affine and elastic distortion, stroke width:
:mod:`napari_digits.augment`), scaled to one writing size with some
variation, set side by side half the time apart and half the time touching
or overlapping (the joined 0s of a cheque's "1.000"), now and then with a
point, a comma or a dash between digits or after the last (not part of the
reading), an underline, trailing digits written smaller, and slanted as a
whole; four lines in ten of at least three digits end in two to four 0s, as
amounts do. The lines are cut to their ink and scaled as the reader scales a
page's lines (:func:`napari_digits.scan.fields.field_image`).
:func:`vary_lines` writes a user's own lines again, varied, for fine-tuning.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_digits import augment
from napari_digits.scan.fields import (
    FIELD_HEIGHT,
    FIELD_MARGIN,
    FIELD_WIDTH,
    field_image,
)

#: longest line, in digits
MAX_DIGITS = 7
#: how often a line holds 1, 2, ... ``MAX_DIGITS`` digits
LENGTHS = np.array([0.08, 0.14, 0.2, 0.2, 0.18, 0.12, 0.08])
#: :func:`vary_lines`: a line's width changes by up to this fraction, and
#: its slant by up to this many columns a row
VARY_WIDTH = 0.2
VARY_SLANT = 0.3


def digit_pool(
    images: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[list[np.ndarray], np.ndarray]:
    """Distort MNIST digits as the shipped model's training does, cut to their ink.

    Parameters
    ----------
    images : ndarray
        uint8 ``(N, 28, 28)``, white ink on black.
    labels : ndarray
        ``(N,)`` classes.
    rng : numpy.random.Generator
        The randomness.

    Returns
    -------
    pool : list of ndarray
        float32 images of the digits' ink, 0..1, each cut to its box.
    classes : ndarray
        The class of each.
    """
    pool, classes = [], []
    o = (augment.CANVAS - 28) // 2
    for start in range(0, len(images), 1000):
        x = images[start : start + 1000].astype(np.float32) / 255
        y = labels[start : start + 1000]
        canvas = np.zeros((len(x), augment.CANVAS, augment.CANVAS), np.float32)
        canvas[:, o : o + 28, o : o + 28] = x
        canvas = augment.continental(canvas, y, rng)
        some = rng.random(len(x)) < 0.7
        canvas[some] = augment.stroke_width(augment.distort(canvas[some], rng), rng)
        for ink, label in zip(canvas, y, strict=True):
            tight = augment._tight(ink)
            if tight is not None and tight.shape[0] >= 8:
                pool.append(tight)
                classes.append(int(label))
    return pool, np.asarray(classes)


def make_fields(
    pool: list[np.ndarray], classes: np.ndarray, n: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Make ``n`` lines of digits from ``pool`` (see the module's docstring).

    Parameters
    ----------
    pool, classes
        From :func:`digit_pool`.
    n : int
        How many lines.
    seed : int
        Seed of the randomness.

    Returns
    -------
    images : ndarray
        uint8 ``(n, FIELD_HEIGHT, FIELD_WIDTH)``, white ink on black.
    digits : ndarray
        int32 ``(n, MAX_DIGITS)``: each line's digits, padded with -1.
    lengths : ndarray
        int32 ``(n,)``: how many digits each line holds.
    """
    rng = np.random.default_rng(seed)
    zeros = np.flatnonzero(classes == 0)
    images = np.zeros((n, FIELD_HEIGHT, FIELD_WIDTH), np.uint8)
    digits = np.full((n, MAX_DIGITS), -1, np.int32)
    lengths = np.zeros(n, np.int32)
    for k in range(n):
        ink, read = _line(pool, classes, zeros, rng)
        if rng.random() < 0.2:
            ink = ndi.gaussian_filter(ink, 0.7)
        images[k] = field_image(ink)[0]
        digits[k, : len(read)] = read
        lengths[k] = len(read)
    return images, digits, lengths


def _line(pool, classes, zeros, rng) -> tuple[np.ndarray, list[int]]:
    n = int(rng.choice(np.arange(1, MAX_DIGITS + 1), p=LENGTHS))
    ids = rng.integers(len(pool), size=n)
    if n >= 3 and rng.random() < 0.4:  # an amount: ends in zeros
        k = int(rng.integers(2, min(n, 4) + 1))
        ids[-k:] = zeros[rng.integers(len(zeros), size=k)]
    size = rng.uniform(24, 44)
    smaller_from = int(rng.integers(1, n + 1)) if rng.random() < 0.2 else n
    smaller = rng.uniform(0.65, 0.95)
    canvas = np.zeros((int(size * 2), int(size * (1.3 * n + 3))), np.float32)
    x, base = int(rng.uniform(0, 0.5) * size), int(size * 0.3)
    touching = rng.random() < 0.5
    for k, i in enumerate(ids):
        h = size * rng.uniform(0.88, 1.12) * (smaller if k >= smaller_from else 1)
        if classes[i] == 1 and rng.random() < 0.1:
            h *= 1.2
        z = h / pool[i].shape[0]
        digit = ndi.zoom(pool[i], (z, z * rng.uniform(0.85, 1.25)), order=1)
        if k > 0:
            gap = rng.uniform(-0.3, 0.08) if touching else rng.uniform(-0.1, 0.35)
            x += int(gap * size)
            if rng.random() < 0.15:
                x = _mark(canvas, x + int(0.05 * size), base, size, rng)
                x += int(0.1 * size)
        x = max(x, 0)
        top = max(
            0, base + int(size - digit.shape[0] + rng.uniform(-0.08, 0.08) * size)
        )
        _paste(canvas, digit, top, x)
        x += digit.shape[1]
    if rng.random() < 0.2:
        _mark(canvas, x + int(0.1 * size), base, size, rng)
    if rng.random() < 0.25:
        _underline(canvas, size, rng)
    s = rng.uniform(-0.35, 0.35)  # slant
    shear = np.array([[1, 0], [s, 1]])
    canvas = ndi.affine_transform(
        canvas, shear, offset=[0, -s * len(canvas) / 2], order=1
    )
    return canvas, [int(classes[i]) for i in ids]


def _paste(canvas: np.ndarray, ink: np.ndarray, top: int, left: int) -> None:
    region = canvas[top : top + ink.shape[0], left : left + ink.shape[1]]
    np.maximum(region, ink[: region.shape[0], : region.shape[1]], out=region)


def _mark(canvas, x: int, base: int, size: float, rng) -> int:
    """Draw a point, a comma or a dash at column ``x``; return its right end."""
    kind = rng.integers(3)
    if kind == 0:  # a point on the baseline
        side = max(2, int(size * rng.uniform(0.08, 0.15)))
        ink, top = (
            np.ones((side, side), np.float32),
            int(size * rng.uniform(0.75, 0.95)),
        )
        top -= side
    elif kind == 1:  # a comma, below the baseline
        w, length = (
            max(2, int(size * rng.uniform(0.07, 0.12))),
            int(size * rng.uniform(0.2, 0.4)),
        )
        ink = np.zeros((length, w + length // 3), np.float32)
        for r in range(length):
            ink[r, (length - r) // 3 : (length - r) // 3 + w] = 1
        top = int(size * rng.uniform(0.7, 0.9))
    else:  # a dash at mid-height
        w, t = (
            int(size * rng.uniform(0.2, 0.6)),
            max(2, int(size * rng.uniform(0.06, 0.12))),
        )
        ink, top = np.ones((t, w), np.float32), int(size * rng.uniform(0.4, 0.6))
    _paste(canvas, ink, base + top, x)
    return x + ink.shape[1]


def _underline(canvas: np.ndarray, size: float, rng) -> None:
    """Rule a line under the digits, touching them or not."""
    rows = np.flatnonzero(canvas.max(axis=1) > 0.3)
    cols = np.flatnonzero(canvas.max(axis=0) > 0.3)
    if rows.size == 0:
        return
    t = max(1, int(size * rng.uniform(0.04, 0.1)))
    r = min(len(canvas) - t, rows[-1] + int(size * rng.uniform(-0.08, 0.1)))
    a = max(0, cols[0] - int(size * rng.uniform(0, 0.5)))
    z = cols[-1] + int(size * rng.uniform(-0.3, 0.5))
    np.maximum(canvas[r : r + t, a:z], rng.uniform(0.6, 1), out=canvas[r : r + t, a:z])


def vary_lines(
    images: np.ndarray,
    rng: np.random.Generator,
    *,
    width: float = VARY_WIDTH,
    slant: float = VARY_SLANT,
) -> np.ndarray:
    """Write each line again a little narrower or wider, slanted, thicker or thinner.

    What the few lines a user corrected are learnt with, so that the field
    reader learns their hands rather than their pixels. Each line is scaled
    across by ``1 +- width`` (never past the field's right edge), sheared by
    up to ``slant`` columns a row about its middle row (moved right to keep
    its left end), its strokes made a pixel thicker or thinner a quarter of
    the time each, and its ink 0.75 to 1 times as bright.

    Parameters
    ----------
    images : ndarray
        uint8 ``(N, FIELD_HEIGHT, FIELD_WIDTH)`` lines, white ink on black,
        as :func:`napari_digits.scan.fields.field_image` makes them.
    rng : numpy.random.Generator
        The randomness.
    width, slant : float
        How much to change each line's width and slant, at most.

    Returns
    -------
    ndarray
        The varied lines, same shape and dtype.

    Examples
    --------
    >>> lines = np.zeros((2, FIELD_HEIGHT, FIELD_WIDTH), np.uint8)
    >>> lines[:, 4:28, 2:180] = 255
    >>> varied = vary_lines(lines, np.random.default_rng(0))
    >>> varied.shape, bool(varied[:, :, -1].any())
    ((2, 32, 192), False)
    """
    out = np.empty_like(images)
    h, w = images.shape[1:]
    m = FIELD_MARGIN
    for k, image in enumerate(images):
        cols = np.flatnonzero(image.max(axis=0))
        right = cols[-1] if cols.size else m
        shear = rng.uniform(-slant, slant)
        d = abs(shear) * h / 2
        sx = rng.uniform(1 - width, 1 + width)
        sx = min(sx, (w - 2 - 2 * m - d) / max(right - m + d, 1.0))
        # output (r, c) shows input (r, (c - m - d) / sx + m + shear * (r - h/2))
        line = ndi.affine_transform(
            image.astype(np.float32),
            np.array([[1.0, 0.0], [shear, 1.0 / sx]]),
            (0.0, m - (m + d) / sx - shear * h / 2),
            order=1,
        )
        pick = rng.random()
        if pick < 0.25:
            line = ndi.grey_dilation(line, size=(2, 2))
        elif pick < 0.5:
            line = ndi.grey_erosion(line, size=(2, 2))
        out[k] = np.clip(line * rng.uniform(0.75, 1.0), 0, 255).astype(np.uint8)
    return out
