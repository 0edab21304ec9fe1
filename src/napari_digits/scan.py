"""Find the handwritten digits on a scanned page and cut MNIST-style crops.

The pipeline, one small function a step:

1. :func:`to_gray` - any 2D image (grey, RGB, RGBA; uint8, uint16, float)
   to float32 grey in 0..1.
2. :func:`ink_strength` - divide out a large-scale background estimate (a
   median of block means, computed on a downsampled page), detect whether
   the ink is darker or lighter than the paper, and return how much ink each
   pixel holds (0 paper .. 1 full ink), independent of uneven lighting.
3. :func:`binarize` - Otsu (default) or a local threshold on the ink
   strength, never below ``min_contrast`` so that a blank page stays blank.
4. :func:`find_digits` - connected components, then the cleanup rules:

   - *specks*: components smaller than ``min_area`` pixels are dropped;
   - *ruled lines*: horizontal or vertical runs of ink longer than four digit
     heights are erased before labelling (they may cross digits);
   - *fragments*: components that overlap in columns and are separated by a
     small vertical gap are merged when the union still has a digit's size;
   - *stray strokes*: a piece too small to be a digit (the detached bar of
     a 5) joins the digit within 0.2 digit heights of it if the union still
     has a digit's size;
   - *not digits*: components taller than 1.8 digit heights or wider than
     six (lines, borders, long strokes), shorter than 0.45 digit heights
     (printed text, dust, dashes), with too little ink, or solid blobs are
     rejected;
   - *touching digits*: a component wider than 1.3 digit heights (no single
     MNIST digit is) is flagged as ``touching`` and split into
     ``n = round(width / (0.75 digit heights))`` parts (0.75 is the median
     width-to-height ratio of MNIST digits), each cut made at the column
     with the least ink within a third of a part's width of the even split.

5. :func:`normalize_crop` - MNIST's own recipe: bounding box, longest side
   scaled to 20 pixels with the aspect ratio kept and anti-aliasing, placed
   in a 28x28 field by its centre of mass, white ink on black, uint8 0..255.

The digit height that scales every rule is estimated from the page (the
median height of the larger components) unless given.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

#: side of the MNIST field and of the box the digit is scaled into
FIELD = 28
BOX = 20
#: a component wider than this many digit heights holds touching digits
TOUCHING = 1.3
#: median width of an MNIST digit, in digit heights (MNIST test set: 0.75)
DIGIT_WIDTH = 0.75
#: ink below this (relative to the stroke) is not part of the digit's box
FRINGE = 0.35
#: digits smaller than this (pixels) cannot be read; smaller "digits" are grain
MIN_HEIGHT = 8

Progress = Callable[[str], None]


class ScanError(ValueError):
    """The image cannot be scanned as given; the message says what to do."""


@dataclass(frozen=True)
class DigitRegion:
    """One digit found on the page.

    ``bbox`` is ``(min_row, min_col, max_row, max_col)`` in page pixels, the
    max exclusive (scikit-image's convention); ``centroid`` is the centre of
    mass of its ink; ``label`` its value in :attr:`Scan.labels`; ``touching``
    is True when it was cut out of a wider component.
    """

    label: int
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    area: int
    touching: bool = False

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
    did, for the user.
    """

    regions: tuple[DigitRegion, ...]
    crops: np.ndarray
    labels: np.ndarray
    ink: str
    digit_height: float
    messages: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.regions)


# --------------------------------------------------------------------------
# grey levels, background, threshold
# --------------------------------------------------------------------------


def to_gray(image: np.ndarray) -> np.ndarray:
    """Convert a 2D image to float32 grey levels in 0..1.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA. Integer
        images are scaled by their dtype's range; float images already in
        0..1 are kept, other floats are scaled by their min..max. Transparent
        RGBA pixels count as paper (their colour is ignored).

    Returns
    -------
    ndarray
        float32 ``(H, W)``.

    Raises
    ------
    ScanError
        For anything that is not a single 2D plane.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        return _rgb_to_gray(a)
    if a.ndim != 2:
        raise ScanError(
            f"expected a 2D page (grey, RGB or RGBA), got shape {a.shape}; "
            "choose one plane of the stack"
        )
    if a.dtype == bool:
        return a.astype(np.float32)
    return _scale(a)


def _scale(a: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        return _scale_int(a.astype(np.float32), np.iinfo(a.dtype))
    a = a.astype(np.float32, copy=False)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if lo >= 0.0 and hi <= 1.0:
        return np.nan_to_num(a, nan=0.0)
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.nan_to_num(a, nan=0.0)


def _scale_int(a: np.ndarray, info: np.iinfo) -> np.ndarray:
    a = a.astype(np.float32, copy=False)
    if info.min:
        a -= np.float32(info.min)
    a *= np.float32(1.0 / (float(info.max) - info.min))
    return a


def _rgb_to_gray(a: np.ndarray) -> np.ndarray:
    weights = np.array([0.2125, 0.7154, 0.0721], np.float32)
    if np.issubdtype(a.dtype, np.integer):  # weigh first: one float plane only
        gray = np.multiply(a[..., 0], weights[0], dtype=np.float32)
        for c in (1, 2):
            gray += np.multiply(a[..., c], weights[c], dtype=np.float32)
        gray = _scale_int(gray, np.iinfo(a.dtype))
    else:
        gray = _scale(a[..., :3]) @ weights
    if a.shape[-1] == 4:
        alpha = _scale(a[..., 3])
        paper = float(np.median(gray[alpha > 0.5])) if (alpha > 0.5).any() else 1.0
        gray = gray * alpha + paper * (1.0 - alpha)
    return gray.astype(np.float32, copy=False)


def background(gray: np.ndarray, *, size: int | None = None) -> np.ndarray:
    """Estimate the paper's large-scale brightness under the ink.

    The page is reduced to block means (blocks of ``size // 8`` pixels), a
    median filter of about ``size`` pixels removes the ink, and the result is
    smoothed and interpolated back to full size. Cheap even on huge pages.

    Parameters
    ----------
    gray : ndarray
        float32 ``(H, W)``.
    size : int, optional
        Window in pixels; it must be several times a digit's stroke and is by
        default ``max(64, longest side / 12)``.

    Returns
    -------
    ndarray
        float32 ``(H, W)``.
    """
    size = size or max(64, max(gray.shape) // 12)
    step = max(1, size // 8)
    h, w = (gray.shape[0] // step) * step, (gray.shape[1] // step) * step
    if h == 0 or w == 0:
        return np.full_like(gray, float(np.median(gray)))
    small = gray[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))
    small = ndi.median_filter(small, size=max(3, size // step | 1), mode="reflect")
    small = ndi.gaussian_filter(small, sigma=2.0, mode="reflect")
    return _resize(small, gray.shape)


def detect_ink(gray: np.ndarray, bg: np.ndarray) -> str:
    """Tell dark ink on light paper (``"dark"``) from the reverse (``"light"``).

    The ink is the minority that departs from the background: the sign of
    the skewness of ``gray - bg`` (sampled) says on which side it lies.
    """
    step = max(1, int(np.sqrt(gray.size / 250_000)))
    r = (gray[::step, ::step] - bg[::step, ::step]).astype(np.float64)
    return "dark" if float(np.mean((r - r.mean()) ** 3)) <= 0.0 else "light"


def ink_strength(
    gray: np.ndarray, *, ink: str = "auto", background_size: int | None = None
) -> tuple[np.ndarray, str]:
    """Return how much ink each pixel holds, with the lighting divided out.

    Parameters
    ----------
    gray : ndarray
        float32 ``(H, W)`` in 0..1 (see :func:`to_gray`).
    ink : {"auto", "dark", "light"}
        Dark ink on light paper, light ink on dark paper, or detect it.
    background_size : int, optional
        See :func:`background`.

    Returns
    -------
    strength : ndarray
        float32 ``(H, W)`` in 0..1: 0 paper, 1 ink as dark (light) as black
        (white) relative to the paper around it.
    ink : str
        ``"dark"`` or ``"light"``, the polarity used.
    """
    if ink not in ("auto", "dark", "light"):
        raise ScanError(f"ink must be 'auto', 'dark' or 'light', not {ink!r}")
    bg = background(gray, size=background_size)
    if ink == "auto":
        ink = detect_ink(gray, bg)
    if ink == "dark":
        strength = (bg - gray) / np.maximum(bg, 0.05)
    else:
        strength = (gray - bg) / np.maximum(1.0 - bg, 0.05)
    np.clip(strength, 0.0, 1.0, out=strength)
    return strength.astype(np.float32, copy=False), ink


def binarize(
    strength: np.ndarray,
    *,
    method: str = "otsu",
    min_contrast: float = 0.15,
    block_size: int = 51,
) -> np.ndarray:
    """Threshold the ink strength into an ink mask.

    Parameters
    ----------
    strength : ndarray
        Output of :func:`ink_strength`.
    method : {"otsu", "local"}
        One Otsu threshold for the whole page, or scikit-image's local
        (Gaussian-weighted mean) threshold in ``block_size`` windows.
    min_contrast : float
        The threshold never goes below this ink strength, so that paper grain
        and noise on a blank page are not ink.
    block_size : int
        Window of the local method (odd, in pixels).

    Returns
    -------
    ndarray
        bool ``(H, W)``.
    """
    from skimage import filters

    smooth = ndi.gaussian_filter(strength, sigma=1.0, truncate=2.0)
    if method == "otsu":
        step = max(1, int(np.sqrt(smooth.size / 1_000_000)))
        sample = smooth[::step, ::step]
        t = filters.threshold_otsu(sample) if np.ptp(sample) > 0 else 1.0
        return smooth > max(float(t), min_contrast)
    if method == "local":
        local = filters.threshold_local(
            smooth, block_size | 1, offset=-min_contrast / 2
        )
        return smooth > np.maximum(local, min_contrast)
    raise ScanError(f"threshold method must be 'otsu' or 'local', not {method!r}")


# --------------------------------------------------------------------------
# components
# --------------------------------------------------------------------------

_EIGHT = np.ones((3, 3), bool)


def erase_long_runs(mask: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Remove horizontal and vertical runs of ink at least ``length`` long.

    A binary opening with a line of ``length`` pixels (run as running sums,
    so its cost does not grow with ``length``) finds ruled lines and page
    borders, also where they cross a digit.

    Returns
    -------
    mask : ndarray
        The mask without the runs.
    erased : int
        How many pixels were removed.
    """
    length = int(max(3, length))
    runs = np.zeros_like(mask)
    for axis in (0, 1):
        full = ndi.uniform_filter1d(mask.astype(np.uint8), length, axis=axis)
        core = full >= 1.0 - 0.5 / length  # every pixel of the window is ink
        if core.any():
            runs |= ndi.maximum_filter1d(core, length, axis=axis, origin=0) & mask
    erased = int(runs.sum())
    return (mask & ~runs if erased else mask), erased


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label 8-connected components: labels, boxes (n, 4) and areas (n,)."""
    labels, n = ndi.label(mask, structure=_EIGHT, output=np.int32)
    slices = ndi.find_objects(labels)
    boxes = np.array(
        [(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in slices], np.int64
    ).reshape(-1, 4)
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.int64)
    return labels, boxes, areas


def estimate_digit_height(boxes: np.ndarray, areas: np.ndarray) -> float:
    """Median height of the larger components (the digits on a digit page).

    Components of at least a quarter of the 90th-percentile area take part,
    so that specks, printed text and fragments do not pull the estimate.
    """
    if len(boxes) == 0:
        return 0.0
    big = areas >= 0.25 * np.percentile(areas, 90)
    return float(np.median(boxes[big, 2] - boxes[big, 0]))


def merge_fragments(boxes: np.ndarray, height: float) -> np.ndarray:
    """Group components that are fragments of one broken digit.

    Two boxes merge when the union is at most 1.3 digit heights tall and 1.2
    wide and either they overlap in columns by half the narrower width with a
    vertical gap under 0.3 digit heights (a broken stroke of a 5 or a 7), or
    both are shorter than 0.75 digit heights and their boxes intersect (a
    diagonal break, as in an 8). Fragments side by side, not intersecting,
    are not merged: on a page they cannot be told from a number's digits.

    Returns
    -------
    ndarray
        int ``(n,)``: the group of each box (the smallest member's index).
    """
    n = len(boxes)
    group = np.arange(n)
    if n > 20_000:
        return group  # a noise field: merging is meaningless and quadratic
    union = boxes.copy()
    reach = int(0.3 * height)
    for i in np.argsort(boxes[:, 1]):
        gi = _root(group, i)
        b = union[gi]
        near = (union[:, 1] < b[3] + reach) & (union[:, 3] > b[1] - reach)
        near &= (union[:, 0] < b[2] + reach) & (union[:, 2] > b[0] - reach)
        for j in np.flatnonzero(near):
            gj = _root(group, j)
            if gj != gi and _mergeable(union[gi], union[gj], height):
                lo, hi = min(gi, gj), max(gi, gj)
                group[hi] = lo
                union[lo] = _union(union[gi], union[gj])
                gi = lo
    return np.array([_root(group, i) for i in range(n)])


def _root(group: np.ndarray, i: int) -> int:
    while group[i] != i:
        group[i] = group[group[i]]
        i = group[i]
    return int(i)


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array(
        [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
    )


def _overlap(a: np.ndarray, b: np.ndarray, axis: int) -> int:
    return int(min(a[axis + 2], b[axis + 2]) - max(a[axis], b[axis]))


def _mergeable(a: np.ndarray, b: np.ndarray, height: float) -> bool:
    u = _union(a, b)
    if u[2] - u[0] > 1.3 * height or u[3] - u[1] > 1.2 * height:
        return False
    narrow = min(a[3] - a[1], b[3] - b[1])
    if _overlap(a, b, 1) >= 0.5 * narrow and -_overlap(a, b, 0) <= 0.3 * height:
        return True  # stacked: a bar above its stem
    short = max(a[2] - a[0], b[2] - b[0]) < 0.75 * height
    return short and _overlap(a, b, 0) > 0 and _overlap(a, b, 1) > 0  # diagonal


def digit_like(boxes: np.ndarray, areas: np.ndarray, height: float) -> np.ndarray:
    """Which (merged) components can be digits, by size and shape.

    Rejected: taller than 1.8 digit heights or wider than 6 (ruled lines,
    borders, long strokes); shorter than 0.45 digit heights (dust, dashes,
    printed text); less ink than 5% of a digit height squared (hairlines);
    solid blobs (over 75% of the box inked, both sides over 0.4 heights).
    """
    h = (boxes[:, 2] - boxes[:, 0]).astype(float)
    w = (boxes[:, 3] - boxes[:, 1]).astype(float)
    fill = areas / np.maximum(h * w, 1)
    too_big = (h > 1.8 * height) | (w > 6 * height)
    too_small = (h < 0.45 * height) | (areas < 0.05 * height**2)
    blob = (fill > 0.75) & (h > 0.4 * height) & (w > 0.4 * height)
    return ~(too_big | too_small | blob)


def split_columns(mask: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Cut a component's mask into ``parts`` column ranges at ink minima.

    Each cut is made at the column with the least ink within a third of a
    part's width around the even split (the documented touching-digits rule).

    Returns
    -------
    list of (start, stop)
        Column ranges relative to the mask.
    """
    profile = mask.sum(axis=0)
    width = mask.shape[1]
    step = width / parts
    cuts = [0]
    for k in range(1, parts):
        centre = k * step
        lo = int(max(cuts[-1] + 1, centre - step / 3))
        hi = int(min(width - 1, centre + step / 3)) + 1
        cuts.append(lo + int(np.argmin(profile[lo:hi])) if hi > lo else int(centre))
    cuts.append(width)
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


# --------------------------------------------------------------------------
# the crops
# --------------------------------------------------------------------------


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
    small = _resize(ink, shape, area=True)
    small = small / max(float(small.max()), 1e-6)  # darkest stroke: 255, as MNIST
    out = np.zeros((field, field), np.float32)
    if small.sum() <= 0:
        return out.astype(np.uint8)
    cy, cx = ndi.center_of_mass(small)  # MNIST: whole-pixel shift to the centre
    top = min(max(round(field / 2 - cy), 0), field - shape[0])
    left = min(max(round(field / 2 - cx), 0), field - shape[1])
    out[top : top + shape[0], left : left + shape[1]] = small
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def _resize(
    image: np.ndarray, shape: tuple[int, ...], *, area: bool = False
) -> np.ndarray:
    """Resize a float image: bilinear, or an area average (``area=True``).

    Both are anti-aliased when shrinking (Pillow widens its filter with the
    reduction); the area average is the sharper when shrinking digits.
    """
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image, np.float32))
    how = Image.Resampling.BOX if area else Image.Resampling.BILINEAR
    out = pil.resize((shape[1], shape[0]), how)
    return np.asarray(out, np.float32)


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
    padded = np.pad(own, ((top, bottom), (left, right)))
    keep = ndi.maximum_filter(padded.view(np.uint8), size=2 * margin + 1)
    ink = np.where(keep, strength[r0 - top : r1 + bottom, c0 - left : c1 + right], 0)
    core = ink[padded]
    k = int(0.9 * (core.size - 1))  # the 90th percentile, cheaply
    level = float(np.partition(core, k)[k])
    ink = np.clip(ink / max(level, 1e-3), 0.0, 1.0)
    rows = np.flatnonzero(ink.max(axis=1) > FRINGE)
    cols = np.flatnonzero(ink.max(axis=0) > FRINGE)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


# --------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------


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
    gray = to_gray(image)
    strength, ink = ink_strength(gray, ink=ink, background_size=background_size)
    del gray
    say("thresholding")
    mask = binarize(strength, method=method, min_contrast=min_contrast)
    say("labelling components")
    messages: list[str] = []
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


def _select(boxes, areas, specks, height):
    """Merge fragments and keep digit-like groups: a label lookup table."""
    idx = np.flatnonzero(~specks)
    roots, member = np.unique(merge_fragments(boxes[idx], height), return_inverse=True)
    gboxes = _group_boxes(boxes[idx], member, len(roots))
    gareas = np.bincount(member, weights=areas[idx], minlength=len(roots))
    ok = digit_like(gboxes, gareas, height)
    owner = np.where(ok, np.arange(len(roots)), -1)
    owner = attach_orphans(gboxes, gareas, owner, height)
    kept = np.flatnonzero(ok)
    new_id = np.zeros(len(roots), np.int32)
    new_id[kept] = np.arange(1, len(kept) + 1)
    lut = np.zeros(len(boxes) + 1, np.int32)
    has = owner[member] >= 0
    lut[idx[has] + 1] = new_id[owner[member[has]]]
    final = _group_boxes(boxes[idx[has]], new_id[owner[member[has]]] - 1, len(kept))
    return lut, list(final)


def _group_boxes(boxes: np.ndarray, member: np.ndarray, n: int) -> np.ndarray:
    """Bounding box of each group of boxes (``member``: group of each box)."""
    out = np.empty((n, 4), np.int64)
    out[:, :2] = np.iinfo(np.int64).max
    out[:, 2:] = np.iinfo(np.int64).min
    np.minimum.at(out[:, 0], member, boxes[:, 0])
    np.minimum.at(out[:, 1], member, boxes[:, 1])
    np.maximum.at(out[:, 2], member, boxes[:, 2])
    np.maximum.at(out[:, 3], member, boxes[:, 3])
    return out


def attach_orphans(
    boxes: np.ndarray, areas: np.ndarray, owner: np.ndarray, height: float
) -> np.ndarray:
    """Give a stray stroke to the digit next to it.

    A rejected piece that is too small to be a digit on its own but has ink
    (at least 3% of a digit height squared: the detached bar of a 5 or a 7)
    joins the nearest kept digit within 0.2 digit heights when the union
    still has a digit's size (1.3 heights tall, 1.2 wide).

    Parameters
    ----------
    boxes, areas : ndarray
        Boxes ``(n, 4)`` and ink areas ``(n,)`` of the merged components.
    owner : ndarray
        ``(n,)``: the kept digit each component belongs to, -1 if rejected.

    Returns
    -------
    ndarray
        ``owner`` with the stray strokes attached.
    """
    digits = np.flatnonzero(owner >= 0)
    h = boxes[:, 2] - boxes[:, 0]
    stray = (owner < 0) & (h < 0.45 * height) & (areas >= 0.03 * height**2)
    if not digits.size or len(boxes) > 20_000:
        return owner
    owner = owner.copy()
    d = boxes[digits]
    for i in np.flatnonzero(stray):
        b = boxes[i]
        gap_r = np.maximum(0, np.maximum(d[:, 0] - b[2], b[0] - d[:, 2]))
        gap_c = np.maximum(0, np.maximum(d[:, 1] - b[3], b[1] - d[:, 3]))
        union_h = np.maximum(d[:, 2], b[2]) - np.minimum(d[:, 0], b[0])
        union_w = np.maximum(d[:, 3], b[3]) - np.minimum(d[:, 1], b[1])
        gap = np.maximum(gap_r, gap_c).astype(float)
        fits = (gap <= 0.2 * height) & (union_h <= 1.3 * height)
        fits &= union_w <= 1.2 * height
        if fits.any():
            owner[i] = digits[np.flatnonzero(fits)[np.argmin(gap[fits])]]
    return owner


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


def _pieces(labels, i, box, height, next_label):
    """Kept component ``i`` as it is, or cut into touching digits (relabelled).

    Returns ``(label, mask in box, touching)`` per digit; the parts after the
    first get labels from ``next_label`` on, written into ``labels``.
    """
    r0, c0, r1, c1 = box
    own = labels[r0:r1, c0:c1] == i
    parts = _parts(own, height)
    if parts == 1:
        return [(i, own, False)]
    pieces = []
    for k, (a, z) in enumerate(split_columns(own, parts)):
        lab = i if k == 0 else next_label + k - 1
        sub = np.zeros_like(own)
        sub[:, a:z] = own[:, a:z]
        labels[r0:r1, c0 + a : c0 + z][own[:, a:z]] = lab
        pieces.append((lab, sub, True))
    return pieces


def _parts(own: np.ndarray, height: float) -> int:
    """How many touching digits a component holds, by its width."""
    w = own.shape[1]
    if w <= TOUCHING * height:
        return 1
    return max(2, round(w / (DIGIT_WIDTH * height)))


def _region(lab, mask, box, strength, touching, margin):
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
    own = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    ink = _crop_ink(strength, own, tight, margin)
    region = DigitRegion(
        label=int(lab),
        bbox=tight,
        centroid=(float(rows.mean() + r0), float(cols.mean() + c0)),
        area=int(rows.size),
        touching=touching,
    )
    return region, normalize_crop(ink)


def _no_crops() -> np.ndarray:
    return np.zeros((0, FIELD, FIELD), np.uint8)


def _empty(shape, ink, messages) -> Scan:
    return Scan(
        (),
        _no_crops(),
        np.zeros(shape, np.int32),
        ink,
        0.0,
        (*messages, "no digits found"),
    )
