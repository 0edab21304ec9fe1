"""Make MNIST digits look like the digits a scan of real paper gives.

Pure numpy/scipy (no TensorFlow): the engine's training pipeline calls
:func:`augment_batch` on batches of training images when a run asks for
``augment`` (``napari-digits train --augment``). Each image, with probability
``p``, goes through the steps a real crop has been through, then is
normalised again by the reader's own recipe
(:func:`napari_digits.scan.normalize_crop`), so that the network sees what
the reader will show it:

0. *continental styles* (when the labels are given): a 1 with the long
   up-stroke (and sometimes the foot) written in continental Europe and Latin
   America, a 7 with a bar across its stem, a 0 with the stroke that joins it
   to the next digit of an amount; MNIST's American writers rarely write any
   of them, and real forms and cheques (Semeion, ORAND) are full of them;
1. *distortion*: a random affine map (rotation, shear, an aspect ratio from
   narrow to wide: forms that stretch each digit to fill its box) and an
   elastic field (smoothed random displacements);
2. *stroke width*: grey dilation or erosion (thick felt pens, thin ball
   points);
3. *coarse binary scans*: the digit reduced to 12-20 pixels, thresholded,
   and scaled back (16x16 and 32x32 form scanners);
4. *neighbours*: a slice of another digit glued at the left or right edge
   (what a cut between touching digits leaves behind);
5. after normalisation: *blur*, *noise*, and faint *printed patterns*
   (lines, dots, hatching of cheque paper) behind the ink.

:func:`font_digits` renders the digits of the system's fonts (printed
digits) as MNIST-style crops.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_digits.scan import normalize_crop

#: side of the canvas the distortions work on (room for wide digits)
CANVAS = 40
#: font families rendered by :func:`font_digits` (``fc-list`` file names)
FONT_FAMILIES = ("dejavu", "liberation", "free")


def augment_batch(
    images: np.ndarray,
    rng: np.random.Generator,
    *,
    p: float = 0.5,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Augment a batch of MNIST-style digits (see the module's docstring).

    Parameters
    ----------
    images : ndarray
        uint8 ``(N, 28, 28)`` (or float in 0..1), white ink on black.
    rng : numpy.random.Generator
        The randomness (seed it for reproducible runs).
    p : float
        Probability that an image is augmented; the others are returned as
        they are.
    labels : ndarray, optional
        The digits' classes, ``(N,)``: with them, augmented 1s, 7s and 0s may
        be redrawn in continental styles (:func:`continental`).

    Returns
    -------
    ndarray
        Same shape and dtype as ``images``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros((4, 28, 28), np.uint8); x[:, 6:22, 12:16] = 255
    >>> augment_batch(x, rng, p=1.0).shape
    (4, 28, 28)
    """
    x = np.asarray(images)
    floats = x.dtype != np.uint8
    out = x.astype(np.float32) / (1.0 if floats else 255.0)
    chosen = np.flatnonzero(rng.random(len(x)) < p)
    if chosen.size:
        classes = None if labels is None else np.asarray(labels)[chosen]
        out[chosen] = _augment(out[chosen], out, rng, classes)
    if floats:
        return out.astype(x.dtype)
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def _augment(
    x: np.ndarray,
    pool: np.ndarray,
    rng: np.random.Generator,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    n = len(x)
    canvas = np.zeros((n, CANVAS, CANVAS), np.float32)
    o = (CANVAS - 28) // 2
    canvas[:, o : o + 28, o : o + 28] = x
    if labels is not None:
        canvas = continental(canvas, labels, rng)
    canvas = distort(canvas, rng)
    canvas = stroke_width(canvas, rng)
    canvas = _neighbours(canvas, pool, rng)
    result = np.empty((n, 28, 28), np.float32)
    coarse = rng.random(n) < 0.2
    for i in range(n):
        ink = _tight(canvas[i])
        if ink is None:
            result[i] = x[i]
            continue
        if coarse[i]:
            ink = _coarse(ink, rng)
        result[i] = normalize_crop(ink).astype(np.float32) / 255.0
    return clutter(result, rng)


def continental(
    canvas: np.ndarray, labels: np.ndarray, rng: np.random.Generator, p: float = 0.5
) -> np.ndarray:
    """Redraw some 1s, 7s and 0s as continental Europe and Latin America write them.

    A 1 gets a straight up-stroke from the top of its stem, down to the left
    (a quarter to three quarters of its height long, 25-65 degrees from the
    vertical), and one in five of those also a foot; a 7 gets a bar across
    its stem, a little below the middle; a 0 gets the stroke that joins it to
    its neighbour in a written amount ("1.000"): from its left or right side,
    at any height, outwards, within 30 degrees of the horizontal, a fifth to
    half its height long. Strokes are drawn as wide as the digit's own (its
    ink over its skeleton's length), antialiased.

    Parameters
    ----------
    canvas : ndarray
        float ``(N, H, W)`` in 0..1, white ink on black, room around the digit.
    labels : ndarray
        ``(N,)`` classes.
    rng : numpy.random.Generator
        The randomness.
    p : float
        Probability that a 1, a 7 or a 0 is redrawn.

    Returns
    -------
    ndarray
        A copy, with the strokes added.
    """
    from skimage.morphology import skeletonize

    out = canvas.copy()
    picked = (rng.random(len(canvas)) < p) & np.isin(labels, (0, 1, 7))
    for i in np.flatnonzero(picked):
        mask = out[i] > 0.5
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size < 4:
            continue
        width = max(1.0, mask.sum() / max(int(skeletonize(mask).sum()), 1))
        top, bottom = rows[0], rows[-1]
        height = bottom - top + 1
        if labels[i] == 1:
            c0 = np.flatnonzero(mask[top : top + 2].any(axis=0)).mean()
            length = height * rng.uniform(0.25, 0.75)
            angle = np.deg2rad(rng.uniform(25, 65))
            end = (top + length * np.cos(angle), c0 - length * np.sin(angle))
            _stroke(out[i], (top, c0), end, width)
            if rng.random() < 0.2:
                c1 = np.flatnonzero(mask[bottom - 1 : bottom + 1].any(axis=0)).mean()
                half = height * rng.uniform(0.15, 0.3)
                _stroke(out[i], (bottom, c1 - half), (bottom, c1 + half), width)
        elif labels[i] == 0:
            r = int(top + height * rng.uniform(0.1, 0.9))
            ink = np.flatnonzero(mask[r])
            if ink.size == 0:
                continue
            side = 1 if rng.random() < 0.5 else -1
            c = ink[-1] if side > 0 else ink[0]
            length = height * rng.uniform(0.2, 0.5)
            angle = np.deg2rad(rng.uniform(-30, 30))
            end = (r - length * np.sin(angle), c + side * length * np.cos(angle))
            _stroke(out[i], (r, c), end, width)
        else:
            r = int(top + height * rng.uniform(0.45, 0.65))
            stem = np.flatnonzero(mask[r])
            if stem.size == 0:
                continue
            cols = np.flatnonzero(mask.any(axis=0))
            half = (cols[-1] - cols[0] + 1) * rng.uniform(0.18, 0.3)
            tilt = half * np.tan(np.deg2rad(rng.uniform(-10, 10)))
            c = stem.mean()
            _stroke(out[i], (r + tilt, c - half), (r - tilt, c + half), width)
    return out


def _stroke(image: np.ndarray, a: tuple, b: tuple, width: float) -> None:
    """Draw the segment ``a``-``b`` (row, col), ``width`` wide, into ``image``."""
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32)
    (ay, ax), (by, bx) = a, b
    dy, dx = by - ay, bx - ax
    t = np.clip(((yy - ay) * dy + (xx - ax) * dx) / max(dy * dy + dx * dx, 1e-6), 0, 1)
    dist = np.hypot(yy - ay - t * dy, xx - ax - t * dx)
    np.maximum(image, np.clip(width / 2 + 0.5 - dist, 0, 1), out=image)


def distort(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random affine map and elastic field, per image, about the centre."""
    n, h, w = canvas.shape
    angle = np.deg2rad(rng.uniform(-15, 15, n))
    shear = rng.uniform(-0.3, 0.3, n)
    sy = rng.uniform(0.85, 1.15, n)
    sx = sy * np.exp(rng.uniform(np.log(0.6), np.log(1.8), n))
    cos, sin = np.cos(angle), np.sin(angle)
    # output -> input coordinates: inverse of rotate @ shear @ scale
    a = np.stack([[cos, -sin], [sin, cos]]).transpose(2, 0, 1)
    s = np.stack([[np.ones(n), shear], [np.zeros(n), np.ones(n)]]).transpose(2, 0, 1)
    k = np.stack([[sy, np.zeros(n)], [np.zeros(n), sx]]).transpose(2, 0, 1)
    inv = np.linalg.inv(a @ s @ k)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c = np.stack([yy - h / 2, xx - w / 2])  # (2, h, w)
    src = np.einsum("nij,jhw->inhw", inv, c)
    alpha = rng.uniform(0, 2.5, n)[:, None, None]
    field = rng.uniform(-1, 1, (2, n, h, w)).astype(np.float32)
    field = ndi.gaussian_filter(field, sigma=(0, 0, 4, 4))
    field /= np.maximum(np.abs(field).max(axis=(2, 3), keepdims=True), 1e-6)
    src[0] += h / 2 + alpha * field[0]
    src[1] += w / 2 + alpha * field[1]
    idx = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, h, w))
    coords = np.stack([idx, src[0], src[1]])
    return ndi.map_coordinates(canvas, coords, order=1, mode="constant", cval=0.0)


def stroke_width(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thicken (grey dilation) or thin (erosion) some of the strokes."""
    out = canvas.copy()
    pick = rng.random(len(canvas))
    for i in np.flatnonzero(pick < 0.25):
        out[i] = ndi.grey_dilation(canvas[i], size=(2, 2))
    for i in np.flatnonzero((pick >= 0.25) & (pick < 0.35)):
        out[i] = ndi.grey_dilation(canvas[i], size=(3, 3))
    for i in np.flatnonzero((pick >= 0.35) & (pick < 0.45)):
        thin = ndi.grey_erosion(canvas[i], size=(2, 2))
        if thin.max() > 0.5:
            out[i] = thin
    return out


def _neighbours(
    canvas: np.ndarray, pool: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Glue a few columns of another digit at the left or right edge."""
    out = canvas.copy()
    for i in np.flatnonzero(rng.random(len(canvas)) < 0.15):
        other = pool[rng.integers(len(pool))]
        cols = np.flatnonzero(out[i].max(axis=0) > 0.3)
        ocols = np.flatnonzero(other.max(axis=0) > 0.3)
        if cols.size == 0 or ocols.size == 0:
            continue
        k = int(rng.integers(2, 6))
        top = (CANVAS - 28) // 2 + int(rng.integers(-3, 4))
        if rng.random() < 0.5:  # the right end of a left neighbour
            piece, right = other[:, ocols[-1] - k + 1 : ocols[-1] + 1], cols[0]
            left = max(0, right - k + 1)
        else:  # the left end of a right neighbour
            piece, left = other[:, ocols[0] : ocols[0] + k], cols[-1]
        piece = piece[:, : CANVAS - left]
        region = out[i, top : top + 28, left : left + piece.shape[1]]
        np.maximum(region, piece[: region.shape[0], : region.shape[1]], out=region)
    return out


def _tight(image: np.ndarray) -> np.ndarray | None:
    rows = np.flatnonzero(image.max(axis=1) > 0.35)
    cols = np.flatnonzero(image.max(axis=0) > 0.35)
    if rows.size == 0 or cols.size == 0:
        return None
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _coarse(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scan the digit at low resolution, binary, and scale it back up."""
    side = int(rng.integers(12, 21))
    zoom = side / max(ink.shape)
    small = ndi.zoom(ink, zoom, order=1) > rng.uniform(0.3, 0.5)
    if not small.any():
        return ink
    big = ndi.zoom(small.astype(np.float32), 3.0, order=1)
    return np.clip(big, 0, 1)


def clutter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, noise and faint printed patterns on normalised 28x28 digits."""
    n = len(x)
    out = x.copy()
    blur = np.flatnonzero(rng.random(n) < 0.2)
    if blur.size:
        out[blur] = ndi.gaussian_filter(out[blur], sigma=(0, 0.6, 0.6))
        out[blur] /= np.maximum(out[blur].max(axis=(1, 2), keepdims=True), 1e-6)
    pattern = np.flatnonzero(rng.random(n) < 0.2)
    yy, xx = np.mgrid[0:28, 0:28]
    for i in pattern:
        period = rng.uniform(2.5, 7)
        theta = rng.uniform(0, np.pi)
        wave = np.cos((yy * np.cos(theta) + xx * np.sin(theta)) * 2 * np.pi / period)
        level = rng.uniform(0.05, 0.25)
        out[i] = np.maximum(out[i], level * (wave > 0.6))
    noisy = np.flatnonzero(rng.random(n) < 0.2)
    if noisy.size:
        amp = rng.uniform(0.02, 0.12, (noisy.size, 1, 1))
        out[noisy] += amp * np.abs(rng.standard_normal((noisy.size, 28, 28)))
    return np.clip(out, 0, 1)


def font_files(families: Sequence[str] = FONT_FAMILIES) -> list[Path]:
    """List the system's TrueType/OpenType files of ``families`` (``fc-list``).

    Returns
    -------
    list of Path
        Sorted; empty when fontconfig is missing. Math fonts are left out.
    """
    try:
        out = subprocess.run(
            ["fc-list", ":", "file"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = {Path(line.split(":")[0].strip()) for line in out.splitlines()}
    return sorted(
        f
        for f in files
        if f.suffix.lower() in (".ttf", ".otf")
        and any(fam in f.name.lower() for fam in families)
        and "math" not in f.name.lower()
    )


def font_digits(
    fonts: Sequence[Path], count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``count`` printed digits from ``fonts`` as MNIST-style crops.

    Each digit: a random font, a height of 24-64 pixels, a slight rotation,
    sometimes a thicker stroke, then the reader's normalisation.

    Returns
    -------
    images : ndarray
        uint8 ``(count, 28, 28)``, white ink on black.
    labels : ndarray
        uint8 ``(count,)``.
    """
    from PIL import Image, ImageDraw, ImageFont

    images = np.zeros((count, 28, 28), np.uint8)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    if not fonts:
        return images[:0], labels[:0]
    cache: dict[tuple[int, int], ImageFont.FreeTypeFont] = {}
    for i in range(count):
        f, size = int(rng.integers(len(fonts))), int(rng.integers(24, 65))
        if (f, size) not in cache:
            cache[f, size] = ImageFont.truetype(str(fonts[f]), size)
        font = cache[f, size]
        canvas = Image.new("L", (size * 2, size * 2), 0)
        ImageDraw.Draw(canvas).text(
            (size // 2, size // 4), str(labels[i]), font=font, fill=255
        )
        canvas = canvas.rotate(float(rng.uniform(-6, 6)), resample=Image.BILINEAR)
        ink = np.asarray(canvas, np.float32) / 255.0
        if rng.random() < 0.3:
            ink = ndi.grey_dilation(ink, size=(3, 3))
        tight = _tight(ink)
        if tight is not None:
            images[i] = normalize_crop(tight)
    return images, labels
