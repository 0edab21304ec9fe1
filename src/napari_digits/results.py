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
Amounts
    Where the lines are amounts (cheques, invoices, a ledger's cells), the
    first digit of each line is weighed by the first-digit law (Benford's:
    digit ``d`` leads with probability ``log10(1 + 1/d)``, 1 six times as
    often as 9): a 1 with a long flag read 0.7 as a 4 and 0.3 as a 1 is read
    as a 1. Only an uncertain reading changes (:func:`first_digit_law`).
Marks
    A mark that is not a digit (a point, comma, dash or ``=`` among the
    digits, found when the scan is asked for ``marks``) has a row of its own
    with ``prediction`` -1 (probability 1, runner-up -1 at 0): it shows where
    the punctuation is and is left out of the numbers' digits.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from napari_digits.io import atomic_path
from napari_digits.scan import DigitRegion, Scan
from napari_digits.scan.regions import chain_lines

#: the exported CSV's header, in this order
CSV_HEADER = (
    "file",
    "page",
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
    order; ``corrected`` is the user's correction (None when there is none;
    see :func:`as_correction`);
    ``page`` is the page of ``file`` (from 1: a multi-page TIFF has several);
    ``label`` is the digit's label in the scan's label image (not exported).
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
    corrected: int | str | None = None
    label: int = 0
    page: int = 1

    @property
    def value(self) -> int | str:
        """The digit as read: the correction if there is one, else the prediction.

        -1 for a mark; text for a piece corrected to several digits.
        """
        return self.prediction if self.corrected is None else self.corrected

    @property
    def digits(self) -> str:
        """The digits this piece holds, as read: ``""`` (a mark), ``"7"``, ``"65"``."""
        value = self.value
        return value if isinstance(value, str) else str(value) if value >= 0 else ""

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
    lines = chain_lines(regions, 0.6 * digit_height)
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


#: how often each digit leads an amount: the first-digit law for 1..9; 0
#: (it leads only "0,50") as rarely as 9
FIRST_DIGITS = np.log10(1 + 1 / np.array([9, 1, 2, 3, 4, 5, 6, 7, 8, 9]))


def first_digit_law(
    regions: Sequence[DigitRegion], probabilities: np.ndarray, orders: Sequence[Order]
) -> np.ndarray:
    """Weigh the first digit of each line by :data:`FIRST_DIGITS` (amounts).

    Parameters
    ----------
    regions : sequence of DigitRegion
        The digits and marks of a page (marks are left as they are).
    probabilities : ndarray
        ``(N, 10)``, one row per region.
    orders : sequence of Order
        The regions' places in reading order (:func:`reading_order`).

    Returns
    -------
    ndarray
        A copy of ``probabilities`` where each line's first digit has the
        product of its probabilities and the law, normalised.

    Examples
    --------
    >>> from napari_digits.scan import DigitRegion
    >>> regions = [DigitRegion(1, (0, 0, 10, 6), (5, 3), 1),
    ...            DigitRegion(2, (0, 8, 10, 14), (5, 11), 1)]
    >>> p = np.zeros((2, 10)); p[:, 4], p[:, 1] = 0.7, 0.3  # a 4, or a 1?
    >>> orders = reading_order(regions, digit_height=10)
    >>> first_digit_law(regions, p, orders).argmax(axis=1)
    array([1, 4])
    """
    out = np.array(probabilities, dtype=np.float64, copy=True)
    first: dict[int, int] = {}
    for k, (region, order) in enumerate(zip(regions, orders, strict=True)):
        if region.mark:
            continue
        now = first.get(order.line)
        if now is None or order.position < orders[now].position:
            first[order.line] = k
    for k in first.values():
        weighed = out[k] * FIRST_DIGITS
        out[k] = weighed / max(weighed.sum(), 1e-30)
    return out.astype(np.asarray(probabilities).dtype, copy=False)


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
    page: int = 1,
    number_gap: float = 0.6,
    orders: Sequence[Order] | None = None,
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
    page : int
        The page of ``file`` (from 1), repeated in every row.
    number_gap : float
        See :func:`reading_order`.
    orders : sequence of Order, optional
        The regions' reading order, when it was computed already (else
        computed here with ``number_gap``).

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
    if orders is None:
        orders = reading_order(
            scan.regions, digit_height=scan.digit_height, number_gap=number_gap
        )
    pred, prob, runner, runner_p = top_two(probabilities) if len(scan) else [[]] * 4
    rows = [
        _row(file, r, o, int(pred[k]), prob[k], int(runner[k]), runner_p[k])
        for k, (r, o) in enumerate(zip(scan.regions, orders, strict=True))
    ]
    rows.sort(key=lambda row: (row.line, row.position))
    return [replace(row, digit=i, page=page) for i, row in enumerate(rows, start=1)]


def _row(file, region, order, pred, prob, runner, runner_p) -> DigitRow:
    if region.mark:
        pred, prob, runner, runner_p = -1, 1.0, -1, 0.0
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
    page: int = 1,
    number_gap: float = 0.6,
    fields: bool = True,
    amounts: bool = False,
    **scan_options: object,
) -> tuple[Scan, list[DigitRow], np.ndarray]:
    """Find, classify and order the digits of one page.

    Parameters
    ----------
    image : ndarray
        The page (see :func:`napari_digits.scan.to_gray`).
    predict : callable
        Maps ``(N, 28, 28)`` uint8 crops to ``(N, 10)`` probabilities (it is
        not called when no digit was found) and, with ``fields``, lines of
        digits to the field reader's probabilities (as the engine's
        ``Predict`` does; see :mod:`napari_digits.scan.fields`).
    file : str
        Name written in the table's ``file`` column.
    page : int
        Written in the table's ``page`` column (from 1).
    number_gap : float
        See :func:`reading_order`.
    fields : bool
        Read each short line again whole with the field reader, whose
        reading wins where it is confident and the two disagree.
    amounts : bool
        The lines are amounts: weigh each line's first digit by the
        first-digit law (:func:`first_digit_law`).
    **scan_options
        Passed to :func:`napari_digits.scan.find_digits`.

    Returns
    -------
    scan : Scan
    rows : list of DigitRow
    probabilities : ndarray
        ``(N, 10)`` in the order of ``scan.regions`` (as the table reads
        them: with ``amounts``, weighed by the law).
    """
    from napari_digits.scan import find_digits

    scan = find_digits(image, classify=predict, fields=fields, **scan_options)  # type: ignore[arg-type]
    probs = scan.probabilities
    if probs is None:
        probs = predict(scan.crops) if len(scan) else np.zeros((0, 10), np.float32)
    orders = reading_order(
        scan.regions, digit_height=scan.digit_height, number_gap=number_gap
    )
    if amounts and len(scan):
        probs = first_digit_law(scan.regions, probs, orders)
    rows = build_table(scan, probs, file=file, page=page, orders=orders)
    return scan, rows, probs


#: the correction of a row that is not a digit (a speck, a stroke of a
#: neighbour, punctuation read as a digit): it becomes a mark
NOT_A_DIGIT = -1
#: the most digits one piece may be corrected to
MAX_DIGITS = 12


def as_correction(value: int | str | None) -> int | str | None:
    """Return the correction ``value`` means, or raise ValueError.

    Parameters
    ----------
    value : int, str or None
        None or empty text: no correction; an int 0..9, or -1
        (``NOT_A_DIGIT``); text as typed in the table's fix cell: a digit,
        ``-`` or ``-1`` (not a digit), or up to :data:`MAX_DIGITS` digits.

    Returns
    -------
    int, str or None
        None, an int -1..9, or text of two or more digits (leading zeros
        kept: ``"05"``).

    Examples
    --------
    >>> as_correction("7"), as_correction("-"), as_correction(" 05 "), as_correction("")
    (7, -1, '05', None)
    """
    if value is None:
        return None
    if not isinstance(value, str):
        if not NOT_A_DIGIT <= int(value) <= 9:
            raise ValueError(f"a digit is 0..9 (or -1: not a digit), not {value}")
        return int(value)
    text = value.strip()
    if text in ("-", "-1"):
        return NOT_A_DIGIT
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_DIGITS:
        raise ValueError(
            f"a fix is a digit 0-9, up to {MAX_DIGITS} digits for a piece that "
            f"holds several, or - for not a digit; not {value!r}"
        )
    return int(text) if len(text) == 1 else text


def correct(
    rows: Sequence[DigitRow], index: int, value: int | str | None
) -> list[DigitRow]:
    """Return the table with row ``index`` corrected to ``value`` (None: undo).

    ``value`` is a digit 0..9, or ``NOT_A_DIGIT`` (-1): the row is then a
    mark, left out of the numbers and of learning, as punctuation is; or
    text of several digits (see :func:`as_correction`): the piece holds
    them, left to right, and is learnt only as part of its line. A
    correction equal to the prediction is stored as no correction.
    """
    value = as_correction(value)
    row = rows[index]
    value = None if value == row.prediction else value
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
        if row.digits:  # marks (-1) punctuate, they are not digits
            out[row.number] = out.get(row.number, "") + row.digits
    return out


def row_values(row: DigitRow) -> list[object]:
    """Return the row's values in :data:`CSV_HEADER` order (no correction: None)."""
    return [getattr(row, key) for key in CSV_HEADER]


def row_from_values(values: Mapping[str, object]) -> DigitRow:
    """Make a row from :data:`CSV_HEADER` values (text or typed; ``page`` optional).

    Empty text or None in ``corrected`` means no correction, else it is read
    by :func:`as_correction`; a table without a ``page`` column (written
    before pages were counted) is page 1.

    Raises
    ------
    ValueError
        For a missing column or value, or a value of the wrong kind (the
        message names the column).
    """
    out: dict[str, object] = {}
    for key in CSV_HEADER:
        value = values.get(key, 1 if key == "page" else None)
        if value in (None, "") and key not in ("corrected", "file"):
            raise ValueError(f"no value in column {key!r}")
        if key == "file":
            out[key] = "" if value is None else str(value)
        elif key == "corrected":
            out[key] = as_correction(value)  # type: ignore[arg-type]
        else:
            try:
                out[key] = _FIELD_TYPES[key](value)
            except (TypeError, ValueError):
                message = f"{value!r} in column {key!r} is not a number"
                raise ValueError(message) from None
    return DigitRow(**out)  # type: ignore[arg-type]


_FIELD_TYPES = {
    f.name: float if "float" in str(f.type) else int for f in fields(DigitRow)
}

#: suffixes written as Parquet by :func:`open_table` (anything else is CSV)
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet(path: str | Path) -> bool:
    """Tell whether :func:`open_table` writes ``path`` as Parquet."""
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


class TableWriter:
    """Append rows to an open CSV or Parquet file (see :func:`open_table`)."""

    def __init__(self, write: Callable[[Sequence[Sequence[object]]], None]) -> None:
        self._write = write
        self.count = 0

    def write(self, rows: Iterable[DigitRow]) -> None:
        """Append ``rows`` (in their order)."""
        self.write_values([row_values(row) for row in rows])

    def write_values(self, rows: Sequence[Sequence[object]]) -> None:
        """Append rows given as values in :data:`CSV_HEADER` order (None: empty)."""
        if rows:
            self._write(rows)
            self.count += len(rows)


@contextlib.contextmanager
def open_table(path: str | Path) -> Iterator[TableWriter]:
    """Write a table to ``path`` atomically, rows appended as they come.

    The file is CSV with :data:`CSV_HEADER` (Parquet for a ``.parquet`` or
    ``.pq`` suffix, the same columns) and appears at ``path`` only when the
    block ends without an exception (:func:`napari_digits.io.atomic_path`):
    a crash or a kill leaves the previous file, never a partial one.

    Parameters
    ----------
    path : str or Path
        The file.

    Yields
    ------
    TableWriter
        ``write(rows)`` appends rows; ``count`` says how many were written.
    """
    with atomic_path(path) as tmp:
        if is_parquet(path):
            with _parquet_writer(tmp) as writer:
                yield writer
        else:
            with open(tmp, "w", newline="") as f:
                csv_writer = csv.writer(f)
                csv_writer.writerow(CSV_HEADER)
                yield TableWriter(lambda rows: csv_writer.writerows(_csv_rows(rows)))


def _csv_rows(rows: Iterable[Sequence[object]]) -> Iterator[list[object]]:
    for values in rows:
        yield ["" if v is None else v for v in values]


def _parquet_schema():
    import pyarrow as pa

    kinds = {int: pa.int32(), float: pa.float64()}
    return pa.schema(
        [
            (key, pa.string() if key in _TEXT else kinds[_FIELD_TYPES[key]])
            for key in CSV_HEADER
        ]
    )


#: columns written as text in Parquet (``corrected``: "65" keeps its digits)
_TEXT = ("file", "corrected")


def _as_text(values: Sequence[object]) -> list[str | None]:
    return [None if v is None else str(v) for v in values]


@contextlib.contextmanager
def _parquet_writer(tmp: Path) -> Iterator[TableWriter]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema()

    def write(rows: Sequence[Sequence[object]]) -> None:
        columns = zip(*rows, strict=True)
        arrays = [
            pa.array(_as_text(c) if f.name in _TEXT else c, f.type)
            for c, f in zip(columns, schema, strict=True)
        ]
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema))

    with pq.ParquetWriter(tmp, schema) as writer:
        yield TableWriter(write)


def write_csv(rows: Iterable[DigitRow], path: str | Path) -> int:
    """Write the table with :data:`CSV_HEADER` atomically; return the number of rows.

    A ``.parquet`` path is written as Parquet (see :func:`open_table`).
    """
    with open_table(path) as table:
        table.write(rows)
    return table.count


def iter_table(path: str | Path, *, batch: int = 65536) -> Iterator[DigitRow]:
    """Yield the rows of a CSV or Parquet table, a few at a time (bounded memory).

    Parameters
    ----------
    path : str or Path
        A table written by :func:`open_table` (or an older CSV without ``page``).
    batch : int
        Parquet rows read at a time.
    """
    if is_parquet(path):
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as f:
            for chunk in f.iter_batches(batch_size=batch):
                yield from map(row_from_values, chunk.to_pylist())
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        try:
            for values in reader:
                yield row_from_values(values)
        except (ValueError, csv.Error) as exc:  # UnicodeDecodeError included
            where = f"line {reader.line_num}: " if reader.line_num else ""
            raise ValueError(
                f"{path} is no table written by napari-digits ({where}{exc})"
            ) from None


def read_csv(path: str | Path) -> list[DigitRow]:
    """Read a table written by :func:`write_csv`.

    Raises
    ------
    ValueError
        For a file that is no such table (the message names it, and the line).
    """
    return list(iter_table(path))


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
