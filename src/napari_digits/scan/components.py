"""Step 4: connected components and the cleanup rules that keep the digits."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

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
    areas = np.bincount(labels[mask], minlength=n + 1)[1:].astype(np.int64)  # ink only
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
                union[lo] = enclosing([union[gi], union[gj]])
                gi = lo
    return np.array([_root(group, i) for i in range(n)])


def _root(group: np.ndarray, i: int) -> int:
    while group[i] != i:
        group[i] = group[group[i]]
        i = group[i]
    return int(i)


def enclosing(boxes) -> tuple[int, int, int, int]:
    """Return the smallest box ``(r0, c0, r1, c1)`` holding all ``boxes``."""
    b = np.asarray(boxes)
    return (
        int(b[:, 0].min()),
        int(b[:, 1].min()),
        int(b[:, 2].max()),
        int(b[:, 3].max()),
    )


def _overlap(a: np.ndarray, b: np.ndarray, axis: int) -> int:
    return int(min(a[axis + 2], b[axis + 2]) - max(a[axis], b[axis]))


def _mergeable(a: np.ndarray, b: np.ndarray, height: float) -> bool:
    u = enclosing([a, b])
    if u[2] - u[0] > 1.3 * height or u[3] - u[1] > 1.2 * height:
        return False
    narrow = min(a[3] - a[1], b[3] - b[1])
    if _overlap(a, b, 1) >= 0.5 * narrow and -_overlap(a, b, 0) <= 0.3 * height:
        return True  # stacked: a bar above its stem
    short = max(a[2] - a[0], b[2] - b[0]) < 0.75 * height
    return short and _overlap(a, b, 0) > 0 and _overlap(a, b, 1) > 0  # diagonal


#: a component taller than this many digit heights is not a digit (a
#: cheque's first digit is often written bigger: 1.8 lost ORAND's "5" of
#: "50.000"; 2.2 took ORAND-CAR-A ``train``'s amounts exact 54.7% -> 55.7%)
TALLEST = 2.2


def digit_like(boxes: np.ndarray, areas: np.ndarray, height: float) -> np.ndarray:
    """Which (merged) components can be digits, by size and shape.

    Rejected: taller than ``TALLEST`` (2.2) digit heights or wider than 6 (ruled lines,
    borders, long strokes); shorter than 0.45 digit heights (dust, dashes,
    printed text); less ink than 5% of a digit height squared (hairlines);
    solid blobs (over 75% of the box inked, both sides over 0.4 heights, and
    not tall: a solid upright bar is a 1 written with a broad pen, or scanned
    by a form reader that fattens narrow digits to fill their box).
    """
    h = (boxes[:, 2] - boxes[:, 0]).astype(float)
    w = (boxes[:, 3] - boxes[:, 1]).astype(float)
    fill = areas / np.maximum(h * w, 1)
    too_big = (h > TALLEST * height) | (w > 6 * height)
    too_small = (h < 0.45 * height) | (areas < 0.05 * height**2)
    blob = (fill > 0.75) & (h > 0.4 * height) & (w > 0.4 * height) & (w > 0.75 * h)
    return ~(too_big | too_small | blob)


def bars(boxes: np.ndarray, member: np.ndarray, height: float) -> np.ndarray:
    """Which groups are made of flat bars only: ``=``, ``≡``, stacked dashes.

    A group of two pieces or more, every piece under 0.3 digit heights tall
    and at least twice as wide as tall, is a mark, not a digit (the stacked
    bars of an ``=`` pass the fragment merge as a broken digit would).

    Parameters
    ----------
    boxes : ndarray
        ``(n, 4)`` boxes of the pieces.
    member : ndarray
        ``(n,)`` the group of each piece.

    Returns
    -------
    ndarray
        bool, one per group.
    """
    n = int(member.max()) + 1 if member.size else 0
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    flat = (h < 0.3 * height) & (w >= 2 * h)
    pieces = np.bincount(member, minlength=n)
    flat_pieces = np.bincount(member, weights=flat, minlength=n)
    return (pieces >= 2) & (flat_pieces == pieces)


def commas(boxes: np.ndarray, ok: np.ndarray, height: float) -> np.ndarray:
    """Which digit-like groups are commas: short, and hanging below a digit.

    A comma is written from about the foot of the digits down: a group under
    0.75 digit heights tall and 0.6 wide whose top is below the middle of a
    digit at least 1.5 times as tall, at most half a digit height beside it,
    and whose foot is at least a tenth of that digit's height below that
    digit's foot. Digits stand on the line; a cheque's commas (as tall as
    half a digit) were read as 1s.

    Parameters
    ----------
    boxes : ndarray
        ``(n, 4)`` boxes of the groups.
    ok : ndarray
        ``(n,)`` bool: the groups that can be digits (:func:`digit_like`).
    height : float
        The digit height, in pixels.

    Returns
    -------
    ndarray
        bool ``(n,)``.
    """
    out = np.zeros(len(boxes), bool)
    if len(boxes) > 20_000:
        return out
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    digits = np.flatnonzero(ok)
    for g in np.flatnonzero(ok & (h < 0.75 * height) & (w < 0.6 * height)):
        d = boxes[digits[digits != g]]
        b = boxes[g]
        dh = d[:, 2] - d[:, 0]
        gap = np.maximum(d[:, 1] - b[3], b[1] - d[:, 3])
        beside = (gap <= 0.5 * height) & (dh >= 1.5 * h[g])
        low = (b[0] > (d[:, 0] + d[:, 2]) / 2) & (b[2] >= d[:, 2] + 0.1 * dh)
        out[g] = bool((beside & low).any())
    return out


def _select(boxes, areas, specks, height, marks=False):
    """Merge fragments and keep digit-like groups: a label lookup table.

    Returns the lookup table, the kept groups' boxes (digits first, then the
    marks when ``marks``) and how many are digits.
    """
    idx = np.flatnonzero(~specks)
    roots, member = np.unique(merge_fragments(boxes[idx], height), return_inverse=True)
    gboxes = _group_boxes(boxes[idx], member, len(roots))
    gareas = np.bincount(member, weights=areas[idx], minlength=len(roots))
    flat = bars(boxes[idx], member, height)
    ok = digit_like(gboxes, gareas, height) & ~flat
    comma = commas(gboxes, ok, height)
    ok &= ~comma
    owner = np.where(ok, np.arange(len(roots)), -1)
    owner = attach_orphans(gboxes, gareas, owner, height)
    kept = np.flatnonzero(ok)
    if marks:
        mark = find_marks(gboxes, gareas, owner, flat | comma, height)
        owner[mark] = mark
        kept = np.concatenate([kept, mark])
    new_id = np.zeros(len(roots), np.int32)
    new_id[kept] = np.arange(1, len(kept) + 1)
    lut = np.zeros(len(boxes) + 1, np.int32)
    has = owner[member] >= 0
    lut[idx[has] + 1] = new_id[owner[member[has]]]
    final = _group_boxes(boxes[idx[has]], new_id[owner[member[has]]] - 1, len(kept))
    return lut, list(final), int(ok.sum())


def find_marks(
    boxes: np.ndarray,
    areas: np.ndarray,
    owner: np.ndarray,
    flat: np.ndarray,
    height: float,
) -> np.ndarray:
    """Find the marks that punctuate numbers: points, commas, dashes, ``=``.

    A mark is a group that is not a digit and joined no digit, has ink (at
    least 2% of a digit height squared), is shorter than 0.45 digit heights
    (or made of flat bars, see :func:`bars`, or a comma, see
    :func:`commas`: ``flat``), at most 1.5 digit heights
    wide, and sits on a line of digits: its rows overlap a digit's (widened
    by 0.3 digit heights) and it is at most one digit height from it.

    Returns
    -------
    ndarray
        The indices of the mark groups.
    """
    digits = boxes[owner == np.arange(len(owner))]
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    shape = ((h < 0.45 * height) | flat) & (w <= 1.5 * height)
    candidates = np.flatnonzero(
        (owner < 0) & shape & (areas >= 0.02 * height**2) & (h > 0)
    )
    if not digits.size or not candidates.size or len(boxes) > 20_000:
        return candidates[:0]
    reach = 0.3 * height
    out = []
    for g in candidates:
        b = boxes[g]
        rows = (b[0] < digits[:, 2] + reach) & (b[2] > digits[:, 0] - reach)
        gap = np.maximum(digits[:, 1] - b[3], b[1] - digits[:, 3])
        if (rows & (gap <= height)).any():
            out.append(g)
    return np.array(out, np.int64)


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
