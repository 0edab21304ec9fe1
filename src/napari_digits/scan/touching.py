"""Touching digits: a component wider than a digit is cut into several."""

from __future__ import annotations

import itertools

import numpy as np

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
