"""The per-digit table: reading order, numbers, classification, CSV.

Pure numpy: the probabilities come from the engine (or any callable that
maps ``(N, 28, 28)`` uint8 crops to ``(N, 10)`` probabilities), so that this
module never imports TensorFlow.

Reading order
    Digits are taken left to right; each joins the text line whose last
    digit is nearest in height (within 0.6 digit heights) and to its left,
    else starts a new line; following the last digit, not a fixed row band,
    keeps a slightly skewed line together. Lines are then sorted top to
    bottom by their mean height.
Numbers
    On a line, a digit starts a new number when the gap to the previous
    digit is wider than ``number_gap`` digit heights (0.6 by default).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from napari_digits.scan import DigitRegion, Scan

#: the exported CSV's header, in this order
CSV_HEADER = (
    "file",
    "digit",
    "line",
    "position",
    "number",
    "min_row",
    "min_col",
    "max_row",
    "max_col",
    "centroid_row",
    "centroid_col",
    "prediction",
    "probability",
    "runner_up",
    "runner_up_probability",
    "corrected",
)

#: predictions below this probability are flagged for review
REVIEW_THRESHOLD = 0.8

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class DigitRow:
    """One row of the table: a digit, where it is, what it was read as.

    ``digit``, ``line``, ``position`` and ``number`` count from 1 in reading
    order; ``corrected`` is the user's correction (None when there is none).
    """

    file: str
    digit: int
    line: int
    position: int
    number: int
    min_row: int
    min_col: int
    max_row: int
    max_col: int
    centroid_row: float
    centroid_col: float
    prediction: int
    probability: float
    runner_up: int
    runner_up_probability: float
    corrected: int | None = None
    label: int = 0

    @property
    def value(self) -> int:
        """The digit as read: the correction if there is one, else the prediction."""
        return self.prediction if self.corrected is None else self.corrected

    def needs_review(self, threshold: float = REVIEW_THRESHOLD) -> bool:
        """Tell whether the prediction is uncertain and nobody corrected it."""
        return self.corrected is None and self.probability < threshold


@dataclass(frozen=True)
class Order:
    """Where a digit sits in reading order (all counted from 1)."""

    line: int
    position: int
    number: int


def reading_order(
    regions: Sequence[DigitRegion], *, digit_height: float, number_gap: float = 0.6
) -> list[Order]:
    """Group digits into lines and numbers (see the module's docstring).

    Parameters
    ----------
    regions : sequence of DigitRegion
        The digits, in any order.
    digit_height : float
        Typical digit height in pixels (``Scan.digit_height``).
    number_gap : float
        A gap wider than this many digit heights separates two numbers.

    Returns
    -------
    list of Order
        One per region, in the regions' order.

    Examples
    --------
    >>> from napari_digits.scan import DigitRegion
    >>> boxes = [(0, 0, 10, 6), (0, 8, 10, 14), (0, 30, 10, 36), (30, 0, 40, 6)]
    >>> regions = [DigitRegion(i, b, ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), 1)
    ...            for i, b in enumerate(boxes, 1)]
    >>> orders = reading_order(regions, digit_height=10)
    >>> [(o.line, o.position, o.number) for o in orders]
    [(1, 1, 1), (1, 2, 1), (1, 3, 2), (2, 1, 3)]
    """
    lines = _lines(regions, 0.6 * digit_height)
    out: list[Order | None] = [None] * len(regions)
    number = 0
    for line_no, members in enumerate(lines, start=1):
        previous = None
        for position, k in enumerate(members, start=1):
            box = regions[k].bbox
            if previous is None or box[1] - previous > number_gap * digit_height:
                number += 1
            previous = box[3]
            out[k] = Order(line_no, position, number)
    return out  # type: ignore[return-value]


def _lines(regions: Sequence[DigitRegion], tolerance: float) -> list[list[int]]:
    """Chain digits left to right into lines; lines sorted top to bottom."""
    lines: list[list[int]] = []
    for k in sorted(range(len(regions)), key=lambda k: regions[k].bbox[1]):
        row, col = regions[k].centroid
        best, best_d = None, tolerance
        for i, line in enumerate(lines):
            last = regions[line[-1]]
            d = abs(last.centroid[0] - row)
            if d <= best_d and last.centroid[1] < col:
                best, best_d = i, d
        if best is None:
            lines.append([k])
        else:
            lines[best].append(k)
    return sorted(lines, key=lambda m: np.mean([regions[k].centroid[0] for k in m]))


def top_two(probabilities: np.ndarray) -> tuple[np.ndarray, ...]:
    """Prediction, its probability, runner-up and its probability, per row.

    Parameters
    ----------
    probabilities : ndarray
        ``(N, C)`` class probabilities.

    Returns
    -------
    tuple of ndarray
        ``(prediction, probability, runner_up, runner_up_probability)``.
    """
    p = np.asarray(probabilities, np.float64).reshape(len(probabilities), -1)
    order = np.argsort(-p, axis=1, kind="stable")
    rows = np.arange(len(p))
    first, second = order[:, 0], order[:, 1]
    return first, p[rows, first], second, p[rows, second]


def build_table(
    scan: Scan,
    probabilities: np.ndarray,
    *,
    file: str = "",
    number_gap: float = 0.6,
) -> list[DigitRow]:
    """Make the per-digit table of a page, in reading order.

    Parameters
    ----------
    scan : Scan
        What :func:`napari_digits.scan.find_digits` found.
    probabilities : ndarray
        ``(N, 10)``, one row per ``scan.regions`` entry.
    file : str
        The page's file name, repeated in every row.
    number_gap : float
        See :func:`reading_order`.

    Returns
    -------
    list of DigitRow
        Sorted by line, then position; ``digit`` counts rows from 1.
    """
    probabilities = np.asarray(probabilities)
    if len(probabilities) != len(scan.regions):
        raise ValueError(
            f"{len(probabilities)} probability rows for {len(scan.regions)} digits"
        )
    orders = reading_order(
        scan.regions, digit_height=scan.digit_height, number_gap=number_gap
    )
    pred, prob, runner, runner_p = top_two(probabilities) if len(scan) else [[]] * 4
    rows = [
        _row(file, r, o, int(pred[k]), prob[k], int(runner[k]), runner_p[k])
        for k, (r, o) in enumerate(zip(scan.regions, orders, strict=True))
    ]
    rows.sort(key=lambda row: (row.line, row.position))
    return [replace(row, digit=i) for i, row in enumerate(rows, start=1)]


def _row(file, region, order, pred, prob, runner, runner_p) -> DigitRow:
    r0, c0, r1, c1 = region.bbox
    return DigitRow(
        file=file,
        digit=0,
        line=order.line,
        position=order.position,
        number=order.number,
        min_row=r0,
        min_col=c0,
        max_row=r1,
        max_col=c1,
        centroid_row=round(region.centroid[0], 2),
        centroid_col=round(region.centroid[1], 2),
        prediction=pred,
        probability=round(float(prob), 4),
        runner_up=runner,
        runner_up_probability=round(float(runner_p), 4),
        label=region.label,
    )


def read_page(
    image: np.ndarray,
    predict: Predict,
    *,
    file: str = "",
    number_gap: float = 0.6,
    **scan_options: object,
) -> tuple[Scan, list[DigitRow], np.ndarray]:
    """Find, classify and order the digits of one page.

    Parameters
    ----------
    image : ndarray
        The page (see :func:`napari_digits.scan.to_gray`).
    predict : callable
        Maps ``(N, 28, 28)`` uint8 crops to ``(N, 10)`` probabilities; it is
        not called when no digit was found.
    file : str
        Name written in the table's ``file`` column.
    number_gap : float
        See :func:`reading_order`.
    **scan_options
        Passed to :func:`napari_digits.scan.find_digits`.

    Returns
    -------
    scan : Scan
    rows : list of DigitRow
    probabilities : ndarray
        ``(N, 10)`` in the order of ``scan.regions``.
    """
    from napari_digits.scan import find_digits

    scan = find_digits(image, **scan_options)  # type: ignore[arg-type]
    probs = predict(scan.crops) if len(scan) else np.zeros((0, 10), np.float32)
    return scan, build_table(scan, probs, file=file, number_gap=number_gap), probs


def correct(rows: Sequence[DigitRow], index: int, value: int | None) -> list[DigitRow]:
    """Return the table with row ``index`` corrected to ``value`` (None: undo).

    A correction equal to the prediction is stored as no correction.
    """
    if value is not None and not 0 <= int(value) <= 9:
        raise ValueError(f"a digit is 0..9, not {value}")
    row = rows[index]
    value = None if value is None or int(value) == row.prediction else int(value)
    return [*rows[:index], replace(row, corrected=value), *rows[index + 1 :]]


def carry_corrections(
    old: Sequence[DigitRow], new: Sequence[DigitRow], *, min_iou: float = 0.5
) -> tuple[list[DigitRow], int]:
    """Keep the user's corrections when a page is read again.

    Each corrected row of ``old`` passes its correction to the row of ``new``
    of the same file whose box overlaps it most (IoU at least ``min_iou``).

    Returns
    -------
    rows : list of DigitRow
        ``new`` with the corrections carried over.
    carried : int
        How many corrections found their digit again.
    """
    keys = ("min_row", "min_col", "max_row", "max_col")
    done = [r for r in old if r.corrected is not None]
    rows = list(new)
    if not done or not rows:
        return rows, 0
    iou = box_iou(
        [[getattr(r, k) for k in keys] for r in done],
        [[getattr(r, k) for k in keys] for r in rows],
    )
    carried = 0
    for i, row in enumerate(done):
        j = int(iou[i].argmax())
        if iou[i, j] >= min_iou and rows[j].file == row.file:
            rows = correct(rows, j, row.corrected)
            carried += 1
    return rows, carried


def numbers(rows: Iterable[DigitRow]) -> dict[int, str]:
    """Return the numbers read on a page: number id -> its digits as text."""
    out: dict[int, str] = {}
    for row in sorted(rows, key=lambda r: (r.line, r.position)):
        out[row.number] = out.get(row.number, "") + str(row.value)
    return out


def to_features(rows: Sequence[DigitRow]) -> dict[str, np.ndarray]:
    """Columns of the table as arrays, for a napari layer's ``features``."""
    names = [f.name for f in fields(DigitRow)]
    cols: dict[str, np.ndarray] = {}
    for name in names:
        values = [getattr(r, name) for r in rows]
        if name == "corrected":
            values = [-1 if v is None else v for v in values]
        cols[name] = np.asarray(values)
    cols["review"] = np.asarray([r.needs_review() for r in rows], bool)
    return cols


def write_csv(rows: Iterable[DigitRow], path: str | Path) -> int:
    """Write the table with :data:`CSV_HEADER`; return the number of rows."""
    count = 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_HEADER)
        for row in rows:
            d = asdict(row)
            d["corrected"] = "" if row.corrected is None else row.corrected
            writer.writerow([d[k] for k in CSV_HEADER])
            count += 1
    return count


def read_csv(path: str | Path) -> list[DigitRow]:
    """Read a table written by :func:`write_csv`."""
    types = {f.name: f.type for f in fields(DigitRow)}
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            values = {}
            for key in CSV_HEADER:
                text = raw[key]
                kind = types[key]
                if key == "file":
                    values[key] = text
                elif key == "corrected":
                    values[key] = int(text) if text else None
                else:
                    values[key] = float(text) if "float" in str(kind) else int(text)
            rows.append(DigitRow(**values))
    return rows


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` with every box in ``b``.

    Boxes are ``(min_row, min_col, max_row, max_col)``, max exclusive.
    """
    a = np.asarray(a, float).reshape(-1, 4)
    b = np.asarray(b, float).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass(frozen=True)
class Score:
    """How a table compares with the ground truth of a page."""

    truth: int
    found: int
    correct: int
    extra: int

    @property
    def accuracy(self) -> float:
        """Digits found and read correctly, as a fraction of the true digits."""
        return self.correct / self.truth if self.truth else 1.0


def score(
    rows: Sequence[DigitRow], truth: Sequence[dict], *, min_iou: float = 0.3
) -> Score:
    """Match the table to ground-truth boxes by overlap and count correct digits.

    Parameters
    ----------
    rows : sequence of DigitRow
        The table (its ``value``: the correction, else the prediction).
    truth : sequence of dict
        Rows with ``min_row, min_col, max_row, max_col`` and ``label``
        (the sample's CSV, see :mod:`napari_digits.synthetic`).
    min_iou : float
        A found box matches the true box it overlaps most when their IoU is
        at least this.
    """
    keys = ("min_row", "min_col", "max_row", "max_col")
    tb = np.array([[t[k] for k in keys] for t in truth], float).reshape(-1, 4)
    fb = np.array([[getattr(r, k) for k in keys] for r in rows], float).reshape(-1, 4)
    iou = box_iou(tb, fb)
    found = correct_count = 0
    if iou.size:
        best = iou.argmax(axis=1)
        hit = iou[np.arange(len(tb)), best] >= min_iou
        found = int(hit.sum())
        correct_count = sum(
            int(rows[best[i]].value == int(truth[i]["label"]))
            for i in np.flatnonzero(hit)
        )
    extra = int((iou.max(axis=0) < min_iou).sum()) if iou.size else len(rows)
    return Score(len(tb), found, correct_count, extra)
