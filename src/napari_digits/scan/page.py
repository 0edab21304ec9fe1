"""The whole pipeline: a page in, a :class:`Scan` out."""

from __future__ import annotations

import dataclasses

import numpy as np

from napari_digits.scan.components import (
    _components,
    _select,
    erase_long_runs,
    estimate_digit_height,
)
from napari_digits.scan.crops import _no_crops, _region, crop_piece
from napari_digits.scan.fields import join_flags, read_lines, short_lines
from napari_digits.scan.gray import to_gray
from napari_digits.scan.ink import binarize, ink_strength
from napari_digits.scan.regions import (
    BOX,
    MIN_HEIGHT,
    Classify,
    DigitRegion,
    Progress,
    Scan,
)
from napari_digits.scan.touching import (
    ALWAYS_TRY,
    CONFIDENT,
    MANY_DIGITS,
    MIN_PIECE_HEIGHT,
    SURE_SPLIT,
    TOUCHING,
    TRY_SPLIT,
    TWO_WIDTH,
    WIDER_THAN_MOST,
    Sheared,
    _pieces,
    best_path,
    candidate_pieces,
    halve_wide,
    loops,
    piece_scores,
    row_runs,
    slant,
    two_digits,
)


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
    classify: Classify | None = None,
    marks: bool = False,
    fields: bool = False,
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
    classify : callable, optional
        Maps ``(N, 28, 28)`` uint8 crops to ``(N, C)`` class probabilities.
        When given, components wider than ``TRY_SPLIT`` digit heights are
        over-cut at the minima of their ink profile and the cut whose pieces
        the classifier reads with the most confidence is kept
        (:func:`~napari_digits.scan.touching.best_path`); without it, the
        width rule cuts them.
    marks : bool
        Keep points, commas, dashes and ``=`` among digits as marks.
    fields : bool
        Read the digits with ``classify``, read each short line again whole
        with the field reader and join flagged 1s read as "11"
        (:mod:`napari_digits.scan.fields`); ``classify`` must then read
        lines too, and the scan holds the probabilities.
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
    lut, kept, n_digits = _select(boxes, areas, specks, height, marks)
    say("normalising crops")
    labels = lut[labels]  # one label per kept (merged) component
    margin = max(1, round(height / BOX))  # about one MNIST pixel
    plans: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    wholes: dict[int, np.ndarray] = {}
    if classify is not None and split_touching:
        say("cutting touching digits")
        digits = kept[:n_digits]
        plans, wholes = plan_cuts(labels, digits, strength, height, margin, classify)
    split = split_touching, plans, wholes, n_digits
    scan = _assemble(labels, strength, kept, height, margin, split, ink, messages)
    if not fields or classify is None:
        return scan
    say("reading short lines whole")
    return _read_fields(scan, strength, classify, margin)


def _read_fields(scan: Scan, strength, classify: Classify, margin: int) -> Scan:
    """Classify the digits, read short lines whole, join flagged 1s (``fields``)."""
    probs = np.zeros((0, 10), np.float32)
    if len(scan):
        probs = np.asarray(classify(scan.crops), np.float32)[:, :10]
    page = scan.labels, strength
    args = list(scan.regions), scan.crops, probs, page, classify, scan.digit_height
    regions, crops, probs, won = read_lines(*args, margin)
    regions, crops, probs, flags = join_flags(regions, crops, probs, page, margin)
    order = sorted(range(len(regions)), key=lambda k: regions[k].bbox[:2])
    regions = [regions[k] for k in order]
    lines = tuple(
        (tuple(regions[k].label for k in unit), image)
        for unit, image, _ in short_lines(regions, page, scan.digit_height)
    )
    messages = scan.messages
    if won:
        messages += (f"read {won} short lines whole with the field reader",)
    if flags:
        messages += (f"joined {flags} flags of 1s read as 11 back to their 1",)
    return dataclasses.replace(
        scan,
        regions=tuple(regions),
        crops=crops[order] if len(order) else crops,
        probabilities=probs[order] if len(order) else probs,
        messages=messages,
        lines=lines,
    )


def plan_cuts(
    labels: np.ndarray,
    boxes: list,
    strength: np.ndarray,
    height: float,
    margin: int,
    classify: Classify,
) -> tuple[dict[int, list[tuple[np.ndarray, np.ndarray]]], dict[int, np.ndarray]]:
    """Choose where to cut each wide component by the classifier's confidence.

    A component wider than ``TRY_SPLIT`` digit heights (on a page of at
    least ``MANY_DIGITS`` digits, also wider than ``WIDER_THAN_MOST`` times
    their median width: forms that stretch every digit to a square box),
    crossing two strokes a row when it is narrower than ``SURE_SPLIT``, that
    is wider than ``TOUCHING`` digit heights or that the classifier does not
    read as one digit with confidence (:data:`CONFIDENT`, stroke penalty
    included) is over-cut: every candidate piece is cropped, all are
    classified in one call, and the best path is kept (see
    :mod:`napari_digits.scan.touching`). A component read with confidence
    but at least ``ALWAYS_TRY`` digit heights wide is tried in two halves
    only, and the pieces of a path are cut in two where their halves read as
    two digits (:func:`~napari_digits.scan.touching.halve_wide`).
    Cuts follow the component's slant
    (:func:`~napari_digits.scan.touching.slant`), so that slanted digits that
    touch can be cut apart.

    Returns
    -------
    plans : dict
        Component label -> ``(mask in its box, crop)`` per digit, left to
        right.
    wholes : dict
        Component label -> the crop of the whole component, where one was
        made (to be reused when it is not cut).
    """
    try_from = TRY_SPLIT * height
    widths = [b[3] - b[1] for b in boxes]
    if len(widths) >= MANY_DIGITS:
        try_from = max(try_from, WIDER_THAN_MOST * float(np.median(widths)))
    wide, halves, wholes = _doubtful(
        labels, boxes, strength, height, margin, classify, try_from
    )
    jobs, crops, masks = [], [], []
    halved = {i for i, _, _ in halves}
    holes = {}  # the loops of each component, found once
    for i, box, sheared in wide + halves:
        holes[i] = loops(sheared.mask, height)
        nodes, pieces = candidate_pieces(sheared.mask, height, holes[i])
        if i in halved:  # only the two halves that two_digits may choose
            end, least = nodes[-1], TWO_WIDTH * height
            pieces = [(a, z) for a, z in pieces if (a == 0) != (z == end)]
            pieces = [(a, z) for a, z in pieces if z - a >= least]
        for a, z in pieces:
            crop = crop_piece(sheared.piece(a, z), box, strength, margin)
            if crop is not None:
                jobs.append((i, nodes, (a, z), sheared))
                crops.append(crop)
                masks.append(sheared.mask[:, a:z])
    if not crops:
        return {}, wholes
    probabilities = np.asarray(classify(np.stack(crops)))[:, :10]
    score = piece_scores(probabilities, row_runs(masks))
    classes, best = probabilities.argmax(axis=1), probabilities.max(axis=1)
    table: dict[int, tuple[list[int], dict, dict, Sheared]] = {}
    for job, s, c, p, crop in zip(jobs, score, classes, best, crops, strict=True):
        i, nodes, piece, sheared = job
        readings, made = table.setdefault(i, (nodes, {}, {}, sheared))[1:3]
        readings[piece] = (float(s), int(c), float(p))
        made[piece] = crop
    plans = {}
    for i, (nodes, readings, made, sheared) in table.items():
        if i in halved:
            whole = (nodes[0], nodes[-1])
            path = two_digits(whole, nodes, readings, height, holes[i])
        else:
            path = best_path(nodes, {p: r[0] for p, r in readings.items()})
        if path:
            path = halve_wide(path, nodes, readings, height, holes[i])
        if path:
            plans[i] = [(sheared.piece(a, z), made[a, z]) for a, z in path]
    return plans, wholes


def _doubtful(labels, boxes, strength, height, margin, classify, try_from) -> tuple:
    """Return the components to over-cut or halve and the crops of whole ones.

    The components to over-cut, and those read as one digit with confidence
    but at least ``ALWAYS_TRY`` digit heights wide (to be cut in two only
    where :func:`~napari_digits.scan.touching.two_digits` finds two digits)
    come as lists of ``(label, box, Sheared)``; the crops as a dict label ->
    crop.
    """
    sure, maybe, crops, runs = [], [], [], []
    for i, b in enumerate(boxes, start=1):
        box = tuple(int(v) for v in b)
        width = box[3] - box[1]
        if width <= try_from:
            continue
        own = labels[box[0] : box[2], box[1] : box[3]] == i
        sheared = Sheared(own, slant(own))
        strokes = row_runs([sheared.mask])[0]
        if width <= SURE_SPLIT * height and strokes < 1.5:
            continue  # narrow and one stroke wide: one digit
        if width > TOUCHING * height:
            sure.append((i, box, sheared))
            continue
        crop = crop_piece(own, box, strength, margin)
        maybe.append((i, box, sheared))
        crops.append(crop)
        runs.append(strokes)
    halves = []
    if crops:
        whole = piece_scores(classify(np.stack(crops)), np.array(runs))
        for m, s in zip(maybe, whole, strict=True):
            if s < CONFIDENT:
                sure.append(m)
            elif m[1][3] - m[1][1] >= ALWAYS_TRY * height:  # box width
                halves.append(m)
    return sure, halves, {m[0]: c for m, c in zip(maybe, crops, strict=True)}


def _assemble(labels, strength, boxes, height, margin, split, ink, messages) -> Scan:
    """Split touching digits, crop; regions sorted top-left first."""
    split, plans, wholes, n_digits = split
    regions: list[DigitRegion] = []
    crops: list[np.ndarray] = []
    touching, next_label = 0, len(boxes) + 1
    for i, b in enumerate(boxes, start=1):
        box = tuple(int(v) for v in b)
        if i > n_digits:  # a mark: never cut, never classified as a digit
            region, crop = _region(
                i,
                labels[box[0] : box[2], box[1] : box[3]] == i,
                box,
                strength,
                False,
                margin,
            )
            if region is not None:
                regions.append(dataclasses.replace(region, mark=True))
                crops.append(crop)
            continue
        limit = height if split else np.inf
        plan = plans.get(i)
        subs = [mask for mask, _ in plan] if plan else None
        pieces = _pieces(labels, i, box, limit, next_label, subs)
        made = _made_crops(pieces, plan, wholes.get(i))
        touching += len(pieces) > 1
        next_label += len(pieces) - 1
        for (lab, mask, flag), made_crop in zip(pieces, made, strict=True):
            if flag and not _digit_piece(mask, height):
                labels[box[0] : box[2], box[1] : box[3]][mask] = 0
                continue
            region, crop = _region(lab, mask, box, strength, flag, margin, made_crop)
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


def _made_crops(pieces, plan, whole) -> list:
    """Return the crops already made of ``pieces`` (None where none was)."""
    if len(pieces) == 1:
        return [whole]
    return [c for _, c in plan] if plan else [None] * len(pieces)


def _digit_piece(mask: np.ndarray, height: float) -> bool:
    """Whether a piece cut from a wider component can be a digit.

    A piece less than ``MIN_PIECE_HEIGHT`` digit heights tall is a stretch of
    a line, an underline or a dash that touched the digits: not a digit.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    return rows.size > 0 and rows[-1] - rows[0] + 1 >= MIN_PIECE_HEIGHT * height


def _empty(shape, ink, messages) -> Scan:
    return Scan(
        (),
        _no_crops(),
        np.zeros(shape, np.int32),
        ink,
        0.0,
        (*messages, "no digits found"),
    )
