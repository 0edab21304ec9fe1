"""Learning from corrections: the digits a fine-tuning learns from.

Pure Python and numpy (no Qt, no TensorFlow). A user reads pages, corrects
some readings (the table's ``corrected`` column) and asks the model to learn
from them: the fine-tuning set is every corrected digit (its correction as the
label) and every digit read with a probability of at least ``confident`` and
not corrected (its prediction as the label), each with its 28x28 crop. Marks
(a value below 0) are left out, and so are pieces corrected to several digits
(two touching digits read as one: no crop of them is one digit). The short
lines the field reader read (:attr:`napari_digits.scan.Scan.lines`) are
learnt too, with their digits as the label (marks left out, a piece of
several digits giving all of them): each line where the user corrected a
digit (they looked at it) and each line all of whose digits were read with
confidence.
The engine does the fine-tuning
(:func:`napari_digits.engine.finetune.finetune`).

From saved tables (``napari-digits finetune RESULTS.csv...``) the crops are
made again: each page is read again with the model that made the table, and
the corrections are carried to the digits found again
(:func:`napari_digits.results.carry_corrections`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_digits.engine.protocol import FinetuneConfig
from napari_digits.results import DigitRow, Predict, carry_corrections, read_page
from napari_digits.scan import Scan
from napari_digits.scan.fields import FIELD_HEIGHT, FIELD_WIDTH, FRAMES

#: uncorrected digits read with at least this probability are learnt too
CONFIDENT = 0.99


@dataclass
class LearningSet:
    """Crops, labels and which were corrected, gathered from pages."""

    images: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    corrected: list[bool] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    lines: list[np.ndarray] = field(default_factory=list)
    line_digits: list[list[int]] = field(default_factory=list)
    #: how many of ``lines`` hold a correction
    lines_corrected: int = 0

    def add(self, other: LearningSet) -> None:
        """Append another set's digits and lines to this one."""
        self.images += other.images
        self.labels += other.labels
        self.corrected += other.corrected
        self.files += [f for f in other.files if f not in self.files]
        self.lines += other.lines
        self.line_digits += other.line_digits
        self.lines_corrected += other.lines_corrected

    def line_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(lines (M, 32, 192) uint8, digits (M, L) int32)``.

        Each line's digits are padded with -1 to the longest line's count.
        """
        width = max(map(len, self.line_digits), default=0)
        digits = np.full((len(self.lines), width), -1, np.int32)
        for k, read in enumerate(self.line_digits):
            digits[k, : len(read)] = read
        empty = np.zeros((0, FIELD_HEIGHT, FIELD_WIDTH))
        images = np.stack(self.lines) if self.lines else empty
        return images.astype(np.uint8), digits

    def finetune_config(
        self, base: str | Path, out: str | Path, **options: object
    ) -> FinetuneConfig:
        """Return the engine's request to learn this set's digits and lines.

        Parameters
        ----------
        base, out : str or path
            The model to fine-tune and the one to write.
        **options
            The other fields of :class:`~napari_digits.engine.protocol.FinetuneConfig`
            (time budget, provenance...).
        """
        images, labels, corrected = self.arrays()
        lines, line_digits = self.line_arrays()
        return FinetuneConfig(
            base=str(base),
            out=str(out),
            images=images,
            labels=labels,
            corrected=corrected,
            lines=lines,
            line_digits=line_digits,
            **options,  # type: ignore[arg-type]
        )

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(images (N, 28, 28) uint8, labels (N,), corrected (N,))``."""
        images = np.stack(self.images) if self.images else np.zeros((0, 28, 28))
        return (
            images.astype(np.uint8),
            np.array(self.labels, np.int64),
            np.array(self.corrected, bool),
        )

    @property
    def n_corrected(self) -> int:
        """How many digits were corrected by the user."""
        return int(sum(self.corrected))

    @property
    def holds_corrections(self) -> bool:
        """Whether the user corrected a digit or a line of this set."""
        return bool(self.n_corrected or self.lines_corrected)


def select(
    scan: Scan, rows: Sequence[DigitRow], *, confident: float = CONFIDENT
) -> LearningSet:
    """Pick the digits of one page to learn from.

    Parameters
    ----------
    scan : Scan
        The page's scan (its crops).
    rows : sequence of DigitRow
        The page's table, with the user's corrections; a row's ``label`` is
        its region's label in ``scan``.
    confident : float
        Uncorrected digits read with at least this probability are kept.

    Returns
    -------
    LearningSet
        The digits, and the page's short lines whose digits are all in
        ``rows``, one of them corrected or all read with confidence.
    """
    index = {region.label: k for k, region in enumerate(scan.regions)}
    out = LearningSet()
    for row in rows:
        k = index.get(row.label)
        if k is None or len(row.digits) != 1:  # a mark, or several digits
            continue
        if row.corrected is None and row.probability < confident:
            continue
        out.images.append(scan.crops[k])
        out.labels.append(int(row.digits))
        out.corrected.append(row.corrected is not None)
    by_label = {row.label: row for row in rows}
    for labels, image in scan.lines:
        line = [by_label.get(label) for label in labels]
        if any(row is None for row in line):
            continue
        digits = [row for row in line if row.digits]
        text = "".join(row.digits for row in digits)
        looked = any(row.corrected is not None for row in line)
        if len(text) > FRAMES // 2:  # more than the field reader can read
            continue
        if digits and (looked or min(r.probability for r in digits) >= confident):
            out.lines.append(image)
            out.line_digits.append([int(c) for c in text])
            out.lines_corrected += looked
    if out.images or out.lines:  # the page's file, learnt from
        out.files.append(rows[0].file)
    return out


def from_tables(
    rows: Iterable[DigitRow],
    predict: Predict,
    load: Callable[[Path, int], np.ndarray],
    *,
    confident: float = CONFIDENT,
    **scan_options: object,
) -> LearningSet:
    """Gather the learning set of saved tables by reading their pages again.

    Parameters
    ----------
    rows : iterable of DigitRow
        The tables' rows (several files and pages).
    predict : callable
        The model that made the tables (the same reading finds the same
        digits).
    load : callable
        ``load(file, page)`` returns the page's image (page counts from 1);
        it raises OSError (or ValueError) when the file cannot be read.
    confident : float
        See :func:`select`.
    **scan_options
        Passed to :func:`napari_digits.results.read_page`.

    Returns
    -------
    LearningSet
    """
    pages: dict[tuple[str, int], list[DigitRow]] = {}
    for row in rows:
        pages.setdefault((row.file, row.page), []).append(row)
    out = LearningSet()
    for (file, page), old in pages.items():
        image = load(Path(file), page)
        scan, new, _ = read_page(image, predict, file=file, **scan_options)
        new, _ = carry_corrections(old, new)
        out.add(select(scan, new, confident=confident))
    return out
