"""Touching digits: a component wider than a digit is cut into several."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

#: a component wider than this many digit heights holds touching digits
TOUCHING = 1.3
#: median width of an MNIST digit, in digit heights (MNIST test set: 0.75)
DIGIT_WIDTH = 0.75


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


def _pieces(labels, i, box, height, next_label, subs=None):
    """Kept component ``i`` as it is, or cut into touching digits (relabelled).

    ``subs`` are the digits' masks in the box (by default the width rule's
    column ranges). Returns ``(label, mask in box, touching)`` per digit; the
    parts after the first get labels from ``next_label`` on, written into
    ``labels``.
    """
    r0, c0, r1, c1 = box
    own = labels[r0:r1, c0:c1] == i
    if subs is None:
        parts = _parts(own, height)
        subs = []
        for a, z in split_columns(own, parts) if parts > 1 else []:
            sub = np.zeros_like(own)
            sub[:, a:z] = own[:, a:z]
            subs.append(sub)
    if len(subs) <= 1:
        return [(i, own, False)]
    pieces = []
    view = labels[r0:r1, c0:c1]
    for k, sub in enumerate(subs):
        lab = i if k == 0 else next_label + k - 1
        view[sub] = lab
        pieces.append((lab, sub, True))
    return pieces


def _parts(own: np.ndarray, height: float) -> int:
    """How many touching digits a component holds, by its width."""
    w = own.shape[1]
    if w <= TOUCHING * height:
        return 1
    return max(2, round(w / (DIGIT_WIDTH * height)))


# --------------------------------------------------------------------------
# cutting by the classifier's confidence
# --------------------------------------------------------------------------

#: components wider than this many digit heights are tried as several digits
#: (up to ``SURE_SPLIT``, only when their rows cross two strokes or more)
TRY_SPLIT = 0.4
SURE_SPLIT = 0.8
#: on a page of at least ``MANY_DIGITS`` digits, only components wider than
#: ``WIDER_THAN_MOST`` times their median width are tried: where every digit
#: is as wide as tall (forms that stretch digits to a square box), a single
#: digit is not two
MANY_DIGITS = 20
WIDER_THAN_MOST = 1.2
#: a piece cut from a component is at most this many digit heights wide
MAX_PIECE = 1.3
#: a component kept whole may be this wide: one digit of a wide hand (MNIST's
#: test digits stretched 1.6 times: 90.1% read, 5.1% spurious pieces, with
#: ``MAX_PIECE`` for it; 96.1% and 2.1% now). Cut pieces that wide too cost
#: the correction benchmark 1.3 points of ORAND; touching digits that stay
#: one piece are cut in two by :func:`halve_wide`
WHOLE_MAX = 1.6
#: a piece is at least this many digit heights wide, tall and this inked
MIN_PIECE_WIDTH = 0.12
MIN_PIECE_HEIGHT = 0.4
MIN_PIECE_AREA = 0.02
#: a piece's ink is at least this fraction of its component's height: the
#: up-stroke of a 1 or the foot of a 7 is part of a digit, not a digit
OF_COMPONENT = 0.5
#: at most this many candidate cuts a component (the search is quadratic)
MAX_CUTS = 10
#: added to the log-probability of each piece on a path: negative, because
#: a classifier reads the halves of one digit confidently too, so a cut must
#: gain this much confidence (chosen on bench/run.py real)
PIECE_BONUS = -0.3
#: a component narrower than ``TOUCHING`` digit heights whose score as one
#: digit (:func:`piece_scores`) is at least this stays one digit (or, from
#: ``ALWAYS_TRY`` digit heights on, two where :func:`two_digits` finds two)
CONFIDENT = float(np.log(0.95)) + PIECE_BONUS
#: a component at least this many digit heights wide is tried in two halves
#: (:func:`two_digits`) however confidently it reads as one digit: two MNIST
#: test digits that touch read as one with confidence a third of the time (a
#: "40" as a 0 at 98%). 8% of MNIST's single digits are this wide; at 0.9
#: (31%) the touching pairs gained nothing more and an A4 page read 18% slower
ALWAYS_TRY = 1.1
#: two neighbouring pieces, each at least ``TWO_WIDTH`` digit heights wide,
#: read as two different digits, each with at least ``TWO_CONFIDENT``: two
#: digits, even where the whole reads as one (:func:`two_digits`)
TWO_CONFIDENT = 0.95
TWO_WIDTH = 0.45
#: strokes a row of a single digit crosses: the median over the rows of
#: how many runs of ink a row holds is below 1.5 for 99% of MNIST's 1, 3, 5
#: and 7 and below 2.5 for 99.9% of every class (train set, 28x28, ink above
#: 35%); a piece above its class's limit (counted on its page pixels) is
#: likely two digits (touching "11", "00") and pays ``STROKE_PENALTY``
RUNS_LIMIT = np.array([2.5, 1.5, 2.5, 1.5, 2.5, 1.5, 2.5, 1.5, 2.5, 2.5])
STROKE_PENALTY = 2.0
#: no cut goes through a hole in the ink at least this big (digit heights
#: squared): the loop of one digit
LOOP_AREA = 0.01


def slant(own: np.ndarray) -> float:
    """Columns the ink moves right per row up (``d col / d(-row)``), -0.6..0.6.

    The regression slope of column on row over the component's ink: the
    slant of handwriting, so that cuts can follow it.
    """
    rows, cols = np.nonzero(own)
    if rows.size < 3 or np.ptp(rows) == 0:
        return 0.0
    r = rows - rows.mean()
    s = -float(np.dot(r, cols - cols.mean()) / np.dot(r, r))
    return float(np.clip(s, -0.6, 0.6))


class Sheared:
    """A component's mask sheared upright, and its pieces sheared back.

    Row ``r`` is shifted by ``round(s * (r - middle))`` columns, so that a
    slanted stroke becomes vertical and a vertical cut of the sheared mask
    follows the slant on the page.
    """

    def __init__(self, own: np.ndarray, s: float) -> None:
        h, w = own.shape
        shift = np.round(s * (np.arange(h) - (h - 1) / 2)).astype(int)
        self.shift = shift - shift.min()
        self.own = own
        self.mask = np.zeros((h, w + int(self.shift.max())), bool)
        rows, cols = np.nonzero(own)
        self.mask[rows, cols + self.shift[rows]] = True
        cols = np.flatnonzero(self.mask.any(axis=0))
        self.offset = int(cols[0]) if cols.size else 0
        self.mask = self.mask[:, self.offset : int(cols[-1]) + 1 if cols.size else 0]

    def piece(self, a: int, z: int) -> np.ndarray:
        """Return the pixels of ``own`` whose sheared column is in ``a..z-1``."""
        w = self.own.shape[1]
        cols = np.arange(w)[None, :] + self.shift[:, None] - self.offset
        return self.own & (cols >= a) & (cols < z)


def candidate_cuts(
    own: np.ndarray, height: float, holes: Sequence[tuple[int, int]] | None = None
) -> list[int]:
    """Columns where a component may be cut: minima of its ink profile.

    The local minima of the (lightly smoothed) column profile, at least
    ``MIN_PIECE_WIDTH`` digit heights from either end and from each other,
    the ``MAX_CUTS`` with the least ink, plus the cuts of the width rule
    (:func:`split_columns`), so that the search can always do as it does.
    No minimum inside a loop counts (:func:`_through_loops`); ``holes`` are
    the component's loops where already found (:func:`loops`).

    Returns
    -------
    list of int
        Sorted columns (relative to ``own``), without 0 and the width.
    """
    width = own.shape[1]
    profile = own.sum(axis=0).astype(float)
    smooth = np.convolve(np.pad(profile, 1, mode="edge"), [0.25, 0.5, 0.25], "valid")
    edge = max(1, int(MIN_PIECE_WIDTH * height))
    inner = np.arange(edge, width - edge)
    if inner.size == 0:
        return []
    left = smooth[inner] <= smooth[inner - 1]
    right = smooth[inner] <= smooth[np.minimum(inner + 1, width - 1)]
    if holes is None:
        holes = loops(own, height)
    inside = _through_loops(width, holes)
    minima = inner[left & right & ~inside[inner]]
    chosen: list[int] = []
    for c in minima[np.argsort(smooth[minima], kind="stable")]:
        if len(chosen) >= MAX_CUTS:
            break
        if all(abs(int(c) - k) >= edge for k in chosen):
            chosen.append(int(c))
    parts = _parts(own, height)
    if parts > 1:
        chosen += [b for _, b in split_columns(own, parts)[:-1]]
    return sorted(set(chosen))


def _through_loops(width: int, holes: Sequence[tuple[int, int]]) -> np.ndarray:
    """Which columns cut through a loop of the ink (the hole of a 0, 6, 8, 9).

    A hole of at least ``LOOP_AREA`` digit heights squared belongs to one
    digit: a cut through its inside (not its first or last column) would
    halve that digit, whose halves a classifier reads as confident 6s, 7s
    or 2s. Returns a bool per column of a component ``width`` wide whose
    loops' columns are ``holes`` (:func:`loops`).
    """
    out = np.zeros(width, bool)
    for start, stop in holes:
        out[start + 1 : stop - 1] = True
    return out


def loops(own: np.ndarray, height: float) -> list[tuple[int, int]]:
    """Return the columns (start, stop) of each hole of ``LOOP_AREA`` or more."""
    holes = ndi.binary_fill_holes(own) & ~own
    if not holes.any():
        return []
    labels, n = ndi.label(holes)
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    return [
        (sl[1].start, sl[1].stop)
        for i, sl in enumerate(ndi.find_objects(labels), start=1)
        if sl is not None and areas[i] >= LOOP_AREA * height**2
    ]


def candidate_pieces(
    own: np.ndarray, height: float, holes: Sequence[tuple[int, int]] | None = None
) -> tuple[list[int], list[tuple[int, int]]]:
    """Every column range between two cuts that could hold one digit.

    ``holes`` as for :func:`candidate_cuts`.

    Returns
    -------
    nodes : list of int
        0, the candidate cuts, the width.
    pieces : list of (start, stop)
        Ranges between two nodes, ``MIN_PIECE_WIDTH`` to ``MAX_PIECE`` digit
        heights wide (the whole component up to ``WHOLE_MAX``), whose ink is
        ``MIN_PIECE_HEIGHT`` digit heights tall (and ``OF_COMPONENT`` of the
        component's height) and covers ``MIN_PIECE_AREA`` of a digit height
        squared.
    """
    nodes = [0, *candidate_cuts(own, height, holes), own.shape[1]]
    inked = np.flatnonzero(own.any(axis=1))
    own_height = inked[-1] - inked[0] + 1 if inked.size else 0
    tall = max(MIN_PIECE_HEIGHT * height, OF_COMPONENT * own_height)
    pieces = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            whole = a == nodes[0] and b == nodes[-1]
            if b - a > (WHOLE_MAX if whole else MAX_PIECE) * height:
                if a == nodes[0]:
                    continue  # the whole comes last
                break
            if b - a < MIN_PIECE_WIDTH * height:
                continue
            rows = np.flatnonzero(own[:, a:b].any(axis=1))
            if rows.size == 0 or rows[-1] - rows[0] + 1 < tall:
                continue
            if own[:, a:b].sum() < MIN_PIECE_AREA * height**2:
                continue
            pieces.append((a, b))
    return nodes, pieces


def row_runs(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Median, over the inked rows, of the runs of ink a row of a piece holds.

    Each mask is first reduced to MNIST's scale (about 20 rows, an area
    average above 35% is ink), where the limits were measured: at page
    resolution the thin gaps of one stroke would count as more strokes.

    Parameters
    ----------
    masks : sequence of ndarray
        bool ``(h, w)`` masks of the pieces, in page pixels.

    Returns
    -------
    ndarray
        float ``(N,)``.
    """
    out = np.zeros(len(masks))
    for k, mask in enumerate(masks):
        m = _mnist_scale(np.asarray(mask, bool))
        starts = (m[:, 1:] & ~m[:, :-1]).sum(axis=1) + m[:, 0]
        inked = starts[m.any(axis=1)]
        out[k] = _median(inked) if inked.size else 0.0
    return out


def _median(values: np.ndarray) -> float:
    """``np.median`` of a few integers, without its overhead."""
    s = np.sort(values)
    n = s.size
    return (float(s[(n - 1) // 2]) + float(s[n // 2])) / 2


def _mnist_scale(mask: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return mask
    mask = mask[rows[0] : rows[-1] + 1]
    f = max(1, round(mask.shape[0] / 20))
    if f == 1:
        return mask
    h, w = -(-mask.shape[0] // f) * f, -(-mask.shape[1] // f) * f
    padded = np.zeros((h, w), np.float32)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(h // f, f, w // f, f).mean(axis=(1, 3)) > 0.35


def piece_scores(probabilities: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Score pieces: the best class's log-probability less its stroke penalty.

    Parameters
    ----------
    probabilities : ndarray
        ``(N, C)`` class probabilities of the pieces (the first ten classes
        are the digits).
    runs : ndarray
        ``(N,)``: the pieces' :func:`row_runs`.

    Returns
    -------
    ndarray
        ``(N,)``: ``max_c(log p_c - penalty_c) + PIECE_BONUS``.
    """
    p = np.asarray(probabilities, np.float64)[:, :10]
    too_many = np.asarray(runs)[:, None] >= RUNS_LIMIT
    score = np.log(np.maximum(p, 1e-6)) - STROKE_PENALTY * too_many
    return score.max(axis=1) + PIECE_BONUS


def best_path(
    nodes: list[int], scores: dict[tuple[int, int], float]
) -> list[tuple[int, int]] | None:
    """Cut ``nodes[0]..nodes[-1]`` into the pieces with the highest total score.

    Parameters
    ----------
    nodes : list of int
        Sorted cut positions, the ends included.
    scores : dict
        Score of each allowed piece ``(start, stop)`` (log-probability of its
        best class plus :data:`PIECE_BONUS`).

    Returns
    -------
    list of (start, stop) or None
        The pieces left to right; None when no path covers the component.

    Examples
    --------
    >>> best_path([0, 5, 10], {(0, 10): -0.1, (0, 5): 0.2, (5, 10): 0.25})
    [(0, 5), (5, 10)]
    """
    best: dict[int, tuple[float, list[tuple[int, int]]]] = {nodes[0]: (0.0, [])}
    for b in nodes[1:]:
        options = [
            (best[a][0] + s, [*best[a][1], (a, b)])
            for (a, bb), s in scores.items()
            if bb == b and a in best
        ]
        if options:
            best[b] = max(options, key=lambda o: o[0])
    return best[nodes[-1]][1] if nodes[-1] in best else None


def two_digits(
    span: tuple[int, int],
    nodes: Sequence[int],
    readings: dict[tuple[int, int], tuple[float, int, float]],
    height: float,
    holes: Sequence[tuple[int, int]] = (),
) -> list[tuple[int, int]] | None:
    """Cut ``span`` in two where its halves read as two different digits.

    A classifier that has seen digits with a piece of a neighbour reads two
    touching digits as the bigger one, often with confidence, so the whole
    can win :func:`best_path`. Halves of one digit mostly read as that digit
    or as a thin 1, and the loop rule keeps cuts out of 0, 6, 8 and 9; two
    wide halves read confidently as two different digits are two digits,
    and so are two read as the same digit where each holds a loop of its
    own (a "00": one wide 0 has one loop).

    Parameters
    ----------
    span : (start, stop)
        The piece :func:`best_path` kept whole.
    nodes : sequence of int
        The candidate cuts, ends included.
    readings : dict
        ``(start, stop) -> (score, class, probability)`` of each candidate
        piece.
    height : float
        The digit height, in pixels.
    holes : sequence of (start, stop)
        The columns of the component's loops (:func:`loops`).

    Returns
    -------
    list of (start, stop) or None
        The best-scoring such pair of pieces, or None where there is none.

    Examples
    --------
    >>> r = {(0, 9): (-0.3, 0, 0.98), (0, 4): (-0.3, 4, 0.99), (4, 9): (-0.3, 0, 0.99)}
    >>> two_digits((0, 9), [0, 4, 9], r, height=8)
    [(0, 4), (4, 9)]
    >>> r[4, 9] = (-0.3, 4, 0.99)  # both halves read as a 4: one digit
    >>> two_digits((0, 9), [0, 4, 9], r, height=8) is None
    True
    """
    a, z = span
    best: tuple[float, list[tuple[int, int]]] | None = None
    for m in nodes:
        if not a < m < z or min(m - a, z - m) < TWO_WIDTH * height:
            continue
        left, right = readings.get((a, m)), readings.get((m, z))
        if left is None or right is None:
            continue
        if left[1] == right[1] and not (_holds(holes, a, m) and _holds(holes, m, z)):
            continue
        if min(left[2], right[2]) < TWO_CONFIDENT:
            continue
        total = left[0] + right[0]
        if best is None or total > best[0]:
            best = (total, [(a, m), (m, z)])
    return None if best is None else best[1]


def _holds(holes: Sequence[tuple[int, int]], a: int, z: int) -> bool:
    """Whether the columns ``a..z-1`` hold one of ``holes`` whole."""
    return any(a <= start and stop <= z for start, stop in holes)


def halve_wide(
    path: list[tuple[int, int]],
    nodes: Sequence[int],
    readings: dict[tuple[int, int], tuple[float, int, float]],
    height: float,
    holes: Sequence[tuple[int, int]] = (),
) -> list[tuple[int, int]]:
    """Cut the pieces of a path that :func:`two_digits` finds to be two digits.

    The only piece of a path (a component kept whole) and every piece at
    least ``ALWAYS_TRY`` digit heights wide are tried.

    Parameters
    ----------
    path : list of (start, stop)
        Pieces left to right (:func:`best_path`).
    nodes, readings, height, holes
        As for :func:`two_digits`.

    Returns
    -------
    list of (start, stop)
        The path, with such pieces in two.
    """
    out = []
    for piece in path:
        wide = len(path) == 1 or piece[1] - piece[0] >= ALWAYS_TRY * height
        two = two_digits(piece, nodes, readings, height, holes) if wide else None
        out += two or [piece]
    return out
