"""Step 6: short lines read whole, as one number, by the field reader.

A digit-by-digit reader is only as good as its cuts: a chain of joined 0s,
a 1 with a flag or two digits that touch are cut wrongly as often as they
are cut right. The field reader (a convolutional-recurrent network trained
with CTC on lines of MNIST digits, :mod:`napari_digits.engine.fields`) reads
a whole short line without cutting it. Each line of digits that fits its
input (a line, or else each number of a line) is read both ways. Where the
field reader finds as many digits as the cuts did, each digit's
probabilities are the product of the two readers' (:func:`fuse`): two
experts that err in different ways, neither of which overrules a sure
other. Where it finds more or fewer, its reading wins only where it is far
more likely than the cuts' reading under the reader itself (the ratio of
the two sequences' CTC probabilities, :func:`sequence_log_probability`),
or where the two differ only by a digit read once or twice ("1" or "11":
CTC can hardly tell them apart, a blank frame is all between them) and the
classifier reads each new piece as the reader's digit: the line is cut
again between the columns where it read each digit. Last, a continental 1 cut
into its flag and its stem and read as "11" is joined back into one 1
(:func:`join_flags`).

The classifier and the field reader are one callable, ``classify``: ``(N,
28, 28)`` crops give ``(N, 10)`` probabilities and ``(N, FIELD_HEIGHT,
FIELD_WIDTH)`` lines give ``(N, FRAMES, 11)`` per-frame probabilities (the
ten digits, then the CTC blank); the engine's ``Predict`` does both.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage as ndi

from napari_digits.scan.components import enclosing
from napari_digits.scan.crops import _region
from napari_digits.scan.regions import Classify, DigitRegion, chain_lines

#: the field reader's input, white ink on black, the ink scaled to
#: ``FIELD_HEIGHT - 2 * FIELD_MARGIN`` rows (narrower if the line is long)
FIELD_HEIGHT = 32
FIELD_WIDTH = 192
FIELD_MARGIN = 2
#: input columns a frame of the reader's output (its pooling)
FRAME = 4
FRAMES = FIELD_WIDTH // FRAME
#: the CTC blank: the reader's last class
BLANK = 10
#: a reading of another count of digits than the cuts' wins only where the
#: reader finds it at least e ** READ_MORE_LIKELY times as probable as the
#: cuts' reading (chosen on ORAND-CAR-A ``train``, then measured on ``val``)
READ_MORE_LIKELY = 4.0
#: a reading that differs from the cuts' only by repeats wins where the
#: classifier reads each new piece as the reader's digit at least this
#: probable (chosen on touching pairs of MNIST 1s, measured on ORAND-CAR-A)
PIECE_SURE = 0.5
#: ink below this is left out of the line's box
INK = 0.3


def field_image(ink: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Make the field reader's input of a line of ink.

    Parameters
    ----------
    ink : ndarray
        float ``(h, w)`` in 0..1 (1 = full ink), only the line's ink.

    Returns
    -------
    image : ndarray
        uint8 ``(FIELD_HEIGHT, FIELD_WIDTH)``, white ink on black: the ink's
        box scaled to ``FIELD_HEIGHT - 2 * FIELD_MARGIN`` rows (fewer where
        it would be wider than the field), ``FIELD_MARGIN`` columns from the
        left.
    left : float
        The column of ``ink`` at the image's column ``FIELD_MARGIN``.
    scale : float
        Image columns per column of ``ink``.

    Examples
    --------
    >>> ink = np.zeros((40, 100)); ink[5:35, 10:30] = 1
    >>> image, left, scale = field_image(ink)
    >>> image.shape, left, round(scale, 3)
    ((32, 192), 10.0, 0.933)
    """
    rows = np.flatnonzero(ink.max(axis=1) > INK)
    cols = np.flatnonzero(ink.max(axis=0) > INK)
    out = np.zeros((FIELD_HEIGHT, FIELD_WIDTH), np.uint8)
    if rows.size == 0:
        return out, 0.0, 1.0
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    room = FIELD_HEIGHT - 2 * FIELD_MARGIN, FIELD_WIDTH - 2 * FIELD_MARGIN
    scale = min(room[0] / ink.shape[0], room[1] / ink.shape[1])
    small = ndi.zoom(ink.astype(np.float32), scale, order=1)[: room[0], : room[1]]
    top = (FIELD_HEIGHT - small.shape[0]) // 2
    cols_at = slice(FIELD_MARGIN, FIELD_MARGIN + small.shape[1])
    out[top : top + small.shape[0], cols_at] = np.round(np.clip(small, 0, 1) * 255)
    return out, float(cols[0]), float(scale)


def decode(frames: np.ndarray) -> list[tuple[int, float, int]]:
    """Read a line from the field reader's per-frame probabilities (greedy CTC).

    The most probable class of each frame; runs of one class count once and
    blanks separate digits.

    Parameters
    ----------
    frames : ndarray
        ``(FRAMES, 11)`` probabilities: the ten digits, then the blank.

    Returns
    -------
    list of (digit, probability, frame)
        Each digit read, left to right, with its highest probability over
        its run of frames and the frame where its run starts.

    Examples
    --------
    >>> f = np.full((6, 11), 0.01); f[[0, 3, 5], 10] = 0.9
    >>> f[1, 4] = f[2, 4] = 0.9; f[4, 7] = 0.8
    >>> decode(f)
    [(4, 0.9, 1), (7, 0.8, 4)]
    """
    best = np.asarray(frames).argmax(axis=1)
    out: list[tuple[int, float, int]] = []
    previous = BLANK
    for t, c in enumerate(best):
        p = float(frames[t, c])
        if c != BLANK and c == previous:
            digit, q, start = out[-1]
            out[-1] = (digit, max(q, p), start)
        elif c != BLANK:
            out.append((int(c), p, t))
        previous = c
    return out


def read_lines(
    regions: list[DigitRegion],
    crops: np.ndarray,
    probabilities: np.ndarray,
    page: tuple[np.ndarray, np.ndarray],
    classify: Classify,
    height: float,
    margin: int,
) -> tuple[list[DigitRegion], np.ndarray, np.ndarray, int]:
    """Read each short line whole; fuse the two readings, or cut the line again.

    Parameters
    ----------
    regions, crops, probabilities
        The digits and marks found, their crops and their ``(N, 10)``
        class probabilities (a mark's row is ignored).
    page : (labels, strength)
        The page's label image (updated in place where a line is cut again)
        and ink strength.
    classify : callable
        See the module's docstring.
    height : float
        The digit height, in pixels.
    margin : int
        The crops' margin (see :func:`napari_digits.scan.find_digits`).

    Returns
    -------
    regions, crops, probabilities
        As given, with each short line's digits fused with the field
        reader's reading, or cut again where it won.
    read : int
        How many lines it changed.
    """
    labels, strength = page
    lines = short_lines(regions, page, height)
    if not lines:
        return regions, crops, probabilities, 0
    frames = np.asarray(classify(np.stack([image for _, image, _ in lines])))
    if frames.shape[1:] != (FRAMES, BLANK + 1):
        raise ValueError(
            f"classify gave {frames.shape} for lines of digits, not (N, {FRAMES}, "
            f"{BLANK + 1}): give one that also reads lines (the engine's Predict "
            "does) or read without fields (fields=False)"
        )
    regions, crops, probabilities = list(regions), list(crops), list(probabilities)
    won, next_label = 0, int(labels.max()) + 1
    for (unit, _, place), line in zip(lines, frames, strict=True):
        chars = decode(line)
        digits = [k for k in unit if not regions[k].mark]
        before = [int(np.argmax(probabilities[k])) for k in digits]
        if chars and len(chars) == len(digits):
            for k, (d, _, t) in zip(digits, chars, strict=True):
                probabilities[k] = fuse(probabilities[k], line, d, t)
            won += before != [int(np.argmax(probabilities[k])) for k in digits]
            continue
        if not chars:
            continue
        read = [d for d, _, _ in chars]
        likelier = (
            sequence_log_probability(line, read)
            - sequence_log_probability(line, before)
            >= READ_MORE_LIKELY
        )
        if not (likelier or _runs(read) == _runs(before)):
            continue
        cut = _cut_again([regions[k] for k in digits], chars, place, (labels, strength))
        if cut is None:
            continue
        made = _new_digits(cut, place[0], next_label, strength, margin)
        if made is None:
            continue
        new_probs = classify(np.stack(made[1]))[:, :10]
        sure = min(q[d] for q, d in zip(new_probs, read, strict=True))
        if not likelier and sure < PIECE_SURE:
            continue
        _relabel(labels, place[0], cut, next_label)
        next_label += len(made[0])
        for k in digits:
            regions[k] = None  # type: ignore[call-overload]
        regions += made[0]
        crops += made[1]
        probabilities += [
            _blend(q, d, p) for q, (d, p, _) in zip(new_probs, chars, strict=True)
        ]
        won += 1
    keep = [k for k, r in enumerate(regions) if r is not None]
    stack = np.stack([crops[k] for k in keep]) if keep else np.asarray(crops)
    return (
        [regions[k] for k in keep],
        stack,
        np.asarray([probabilities[k] for k in keep], np.float32).reshape(-1, 10),
        won,
    )


def short_lines(
    regions: list[DigitRegion], page: tuple[np.ndarray, np.ndarray], height: float
) -> list[tuple[list[int], np.ndarray, tuple]]:
    """Make the field reader's input of each line that fits it.

    Parameters
    ----------
    regions : list of DigitRegion
        The digits and marks found.
    page : (labels, strength)
        The page's label image and ink strength.
    height : float
        The digit height, in pixels.

    Returns
    -------
    list of (unit, image, place)
        For each short line: indices into ``regions`` left to right, its
        input (:func:`field_image`, only the line's own ink) and ``(box,
        left, scale)``: the line's box on the page and the map of the input's
        columns back to the box's.
    """
    labels, strength = page
    out = []
    for unit, box in _units(regions, height):
        own = np.isin(_at(labels, box), [regions[k].label for k in unit])
        image, left, scale = field_image(_at(strength, box) * own)
        out.append((unit, image, (box, left, scale)))
    return out


def _units(regions: list[DigitRegion], height: float) -> list[tuple[list[int], tuple]]:
    """Return the lines that fit the field reader: indices into ``regions``, box.

    A line fits where its box is at most as wide, for its height, as the
    reader's input (6.7 times as wide as tall): a longer line is left to
    the digit-by-digit reading.
    """
    fit = (FIELD_WIDTH - 2 * FIELD_MARGIN) / (FIELD_HEIGHT - 2 * FIELD_MARGIN)
    units = []
    for line in chain_lines(regions, 0.6 * height):
        r0, c0, r1, c1 = box = enclosing([regions[k].bbox for k in line])
        if c1 - c0 <= fit * (r1 - r0) and any(not regions[k].mark for k in line):
            units.append((line, box))
    return units


def _at(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    return image[box[0] : box[2], box[1] : box[3]]


def sequence_log_probability(frames: np.ndarray, digits: list[int]) -> float:
    """Return the field reader's log probability of reading ``digits``.

    The CTC forward algorithm: the sum over every way of spreading the
    digits (and blanks between them) over the frames.

    Parameters
    ----------
    frames : ndarray
        ``(FRAMES, 11)`` per-frame probabilities: the ten digits, then the blank.
    digits : list of int
        The reading, left to right (may be empty).

    Returns
    -------
    float
        ``log P(digits | frames)``.

    Examples
    --------
    Blank, 4, blank is the likeliest way to read one 4 here (0.9 * 0.8 *
    0.9 = 0.648); the others (4, 4, blank...) add the rest:

    >>> f = np.full((3, 11), 0.01); f[:, 10] = 0.9; f[1, 10] = 0.1; f[1, 4] = 0.8
    >>> round(float(np.exp(sequence_log_probability(f, [4]))), 3)
    0.664
    >>> sequence_log_probability(f, [4]) > sequence_log_probability(f, [4, 4])
    True
    """
    logs = np.log(np.clip(np.asarray(frames, np.float64), 1e-30, None))
    states = [BLANK]
    for digit in digits:
        states += [int(digit), BLANK]
    states = np.asarray(states)
    # a state may also be entered from two back when it is a digit unlike that one
    skip = np.zeros(len(states), bool)
    skip[2:] = (states[2:] != BLANK) & (states[2:] != states[:-2])
    alpha = np.full(len(states), -np.inf)
    alpha[:2] = logs[0, states[:2]]
    for t in range(1, len(logs)):
        stay = alpha.copy()
        stay[1:] = np.logaddexp(stay[1:], alpha[:-1])
        stay[2:][skip[2:]] = np.logaddexp(stay[2:][skip[2:]], alpha[:-2][skip[2:]])
        alpha = stay + logs[t, states]
    return float(np.logaddexp.reduce(alpha[-2:]))


def fuse(q: np.ndarray, frames: np.ndarray, digit: int, start: int) -> np.ndarray:
    """Multiply a digit's classifier probabilities by the field reader's.

    Parameters
    ----------
    q : ndarray
        The classifier's ``(10,)`` probabilities for the digit's crop.
    frames : ndarray
        The line's ``(FRAMES, 11)`` per-frame probabilities.
    digit, start : int
        The digit the reader read there and the frame its run starts at
        (:func:`decode`).

    Returns
    -------
    ndarray
        float32 ``(10,)``: ``q`` times the reader's probabilities of the ten
        digits at the run's surest frame (the blank left out), normalised.

    Examples
    --------
    >>> f = np.full((3, 11), 0.01); f[0, 7] = 0.7; f[0, 1] = 0.29; f[1:, 10] = 1
    >>> q = np.full(10, 0.001); q[1] = 0.99
    >>> int(np.argmax(fuse(q, f, 7, 0)))
    1
    """
    run = start + np.flatnonzero(frames[start:].argmax(axis=1) != digit)[:1]
    end = int(run[0]) if run.size else len(frames)
    surest = start + int(np.argmax(frames[start:end, digit]))
    reader = frames[surest, :10].astype(np.float64)
    out = np.asarray(q, np.float64)[:10] * (reader / reader.sum() + 1e-4)
    return (out / out.sum()).astype(np.float32)


def _blend(q: np.ndarray, digit: int, p: float) -> np.ndarray:
    """Pull the classifier's probabilities ``q`` towards ``digit`` by ``p``."""
    out = (1 - p) * np.asarray(q, np.float32)[:10]
    out[digit] += p
    return out


def _cut_again(digits, chars, place, page) -> tuple | None:
    """Cut a line's digits at the columns between the digits the reader read.

    Returns the new digits' masks in the line's box and the mask of all of
    them (None where a piece would be empty). The reader marks each digit
    near its left edge (its run's first frame), so the cut before a digit is
    the column with the least ink between the middle of the two digits'
    marks and the later one.
    """
    labels, _ = page
    box, left, scale = place
    own = np.isin(_at(labels, box), [r.label for r in digits])
    columns = [
        left + (FRAME * t + FRAME / 2 - FIELD_MARGIN) / scale for _, _, t in chars
    ]
    profile = own.sum(axis=0)
    cuts = [0]
    for a, b in itertools.pairwise(columns):
        lo = max(cuts[-1] + 1, round((a + b) / 2))
        hi = min(own.shape[1] - 1, round(b))
        if hi < lo:
            return None
        cuts.append(lo + int(np.argmin(profile[lo : hi + 1])))
    cuts.append(own.shape[1])
    masks = []
    for a, b in itertools.pairwise(cuts):
        m = np.zeros_like(own)
        m[:, a:b] = own[:, a:b]
        if not m.any():
            return None
        masks.append(m)
    return masks, own


def _runs(digits: list[int]) -> list[int]:
    """Count each run of one digit once ("1100" -> "10")."""
    return [d for d, _ in itertools.groupby(digits)]


def _new_digits(cut, box, next_label, strength, margin) -> tuple | None:
    """Make regions and crops of the cut pieces in ``box``."""
    masks, _ = cut
    regions, crops = [], []
    for k, mask in enumerate(masks):
        region, crop = _region(next_label + k, mask, box, strength, True, margin)
        if region is None:
            return None
        regions.append(region)
        crops.append(crop)
    return regions, crops


def _relabel(labels, box, cut, next_label) -> None:
    """Write the cut pieces' labels, from ``next_label``, in ``box`` of ``labels``."""
    masks, own = cut
    view = _at(labels, box)
    view[own] = 0
    for k, mask in enumerate(masks):
        view[mask] = next_label + k


#: the left of two touching 1s at most this tall, for the right one's height,
#: is the flag of one continental 1, not a digit of its own
FLAG = 0.75


def join_flags(
    regions: list[DigitRegion],
    crops: np.ndarray,
    probabilities: np.ndarray,
    page: tuple[np.ndarray, np.ndarray],
    margin: int,
) -> tuple[list[DigitRegion], np.ndarray, np.ndarray, int]:
    """Join each continental 1 read as "11" back into one 1.

    A 1 written with a long up-stroke (the flag) is cut, by the cuts and by
    the field reader alike, into two 1s: the slanted flag and the stem. Two
    pieces of one component read as 1s, side by side, the left one at most
    ``FLAG`` times as tall as the right one, are one 1 (two 1s written
    together are as tall as each other).

    Parameters
    ----------
    regions, crops, probabilities, page, margin
        As for :func:`read_lines`.

    Returns
    -------
    regions, crops, probabilities
        With each flag joined to its stem.
    joined : int
        How many flags were joined.
    """
    labels, strength = page
    read = [
        -1 if r.mark else int(np.argmax(p))
        for r, p in zip(regions, probabilities, strict=True)
    ]
    order = sorted(range(len(regions)), key=lambda k: regions[k].bbox[1])
    gone, crops, probabilities = set(), list(crops), list(probabilities)
    for i, j in itertools.pairwise(order):
        a, b = regions[i], regions[j]
        if i in gone or read[i] != 1 or read[j] != 1 or not (a.touching and b.touching):
            continue
        touch = a.bbox[3] >= b.bbox[1] and a.bbox[1] < b.bbox[1]
        rows = min(a.bbox[2], b.bbox[2]) - max(a.bbox[0], b.bbox[0])
        if not touch or rows <= 0 or a.height > FLAG * b.height:
            continue
        box = enclosing([a.bbox, b.bbox])
        own = np.isin(_at(labels, box), [a.label, b.label])
        region, crop = _region(a.label, own, box, strength, True, margin)
        _at(labels, box)[own] = a.label
        regions[i], crops[i] = region, crop
        probabilities[i] = probabilities[j]
        gone.add(j)
    keep = [k for k in range(len(regions)) if k not in gone]
    return (
        [regions[k] for k in keep],
        np.stack([crops[k] for k in keep]) if keep else np.asarray(crops),
        np.asarray([probabilities[k] for k in keep], np.float32).reshape(-1, 10),
        len(gone),
    )
