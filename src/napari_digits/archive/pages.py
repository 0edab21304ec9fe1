"""Which files to read, in which order, and reading one file into rows.

Pure core (numpy, Pillow): the classifier comes in as a callable mapping
``(N, 28, 28)`` uint8 crops to ``(N, 10)`` probabilities, so this module
runs the same in the command line's process and in a Dask worker.

A *job* is one file; every page of it is read (a multi-page TIFF gives
several) and its rows carry the page number, from 1. The job's ``order`` is
its place in the sorted list of files, which fixes the order of the rows in
the output whatever the order in which jobs finish.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_digits import results
from napari_digits.io import OutputError, atomic_path, iter_pages
from napari_digits.scan import ScanError

#: file suffixes taken from a folder (a file named explicitly is always tried)
IMAGE_SUFFIXES = {
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".gif",
    ".webp",
}


@dataclass(frozen=True)
class ReadOptions:
    """How pages are read (the options of :func:`napari_digits.results.read_page`)."""

    ink: str = "auto"
    method: str = "otsu"
    digit_height: float | None = None
    review: float = results.REVIEW_THRESHOLD
    marks: bool = False
    amounts: bool = False

    def scan_options(self) -> dict[str, object]:
        """Return the keyword arguments of ``read_page``."""
        return {
            "ink": self.ink,
            "method": self.method,
            "digit_height": self.digit_height,
            "marks": self.marks,
            "amounts": self.amounts,
        }


@dataclass(frozen=True)
class PageJob:
    """One file to read: its place in the output, its path, its annotated PNG.

    ``annotated`` is the PNG to draw the readings into (None: none); page 2
    and later of a multi-page file go to ``<stem>-p<page>.png`` beside it.
    """

    order: int
    path: str
    annotated: str | None = None


@dataclass
class FileResult:
    """What reading one file gave: rows of every page, notes, or an error."""

    order: int
    file: str
    pages: int = 0
    rows: list[results.DigitRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def find_pages(paths: Iterable[str | Path]) -> list[Path]:
    """List the files to read: files as given, folders searched for images.

    Parameters
    ----------
    paths : iterable of str or Path
        Files and folders.

    Returns
    -------
    list of Path
        In the order given, each folder's images sorted; missing paths are
        kept, so that they are reported as unreadable; no file twice.
    """
    pages: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            pages.extend(sorted(p for p in found if p.is_file()))
        else:
            pages.append(path)
    return list(dict.fromkeys(pages))


def plan_jobs(pages: Sequence[Path], annotated: Path | None = None) -> list[PageJob]:
    """Give the files their order and each its own annotated PNG name.

    Two files with the same stem get ``stem.png`` and ``stem-2.png``, in the
    files' order, so that the names do not depend on which finishes first.
    """
    taken: set[str] = set()
    jobs = []
    for order, page in enumerate(pages):
        out = None
        if annotated is not None:
            out = str(annotated / _unique(f"{page.stem}", taken))
        jobs.append(PageJob(order, str(page), out))
    return jobs


def _unique(stem: str, taken: set[str]) -> str:
    k, name = 1, f"{stem}.png"
    while name in taken:
        k += 1
        name = f"{stem}-{k}.png"
    taken.add(name)
    return name


def check_annotated(folder: Path, inputs: Sequence[str | Path]) -> Path:
    """Refuse an annotated folder that is, or is inside, a folder of inputs.

    Its PNGs would replace scans there, or be read as scans next time.
    The folder is created if needed (its parent must exist).

    Raises
    ------
    OutputError
        When the folder is an input folder, inside one, or cannot be made.
    """
    resolved = folder.resolve()
    for given in map(Path, inputs):
        if given.is_dir() and resolved.is_relative_to(given.resolve()):
            raise OutputError(
                f"--annotated {folder} is inside the input folder {given}: its "
                "PNGs would replace or join the scans there; choose another folder"
            )
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--annotated {folder}: cannot make it ({exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"--annotated {folder} is not writable")
    return folder


def read_job(
    job: PageJob, predict: results.Predict, options: ReadOptions
) -> FileResult:
    """Read every page of one file into rows (and annotated PNGs).

    A file that cannot be read as an image, or a page the scan refuses, is
    an ``error`` in the result, not an exception; anything else (a
    ``MemoryError``, a bug) propagates, so that the caller can retry it.

    Parameters
    ----------
    job : PageJob
        The file.
    predict : callable
        ``(N, 28, 28)`` uint8 crops to ``(N, 10)`` probabilities.
    options : ReadOptions
        How to find the digits.

    Returns
    -------
    FileResult
    """
    result = FileResult(job.order, job.path)
    try:
        for number, image in enumerate(iter_pages(job.path), start=1):
            _read_page(job, number, image, predict, options, result)
    except (OSError, ScanError) as exc:
        return FileResult(job.order, job.path, error=str(exc))
    return result


def read_jobs(
    jobs: Iterable[PageJob], predict: results.Predict, options: ReadOptions
) -> Iterator[FileResult]:
    """Read files one after another in this process, as :func:`read_job`.

    A file that raises anything else (a ``MemoryError``, a bug) becomes a
    result with an ``error`` too, so that one bad page never stops the run.
    """
    for job in jobs:
        try:
            yield read_job(job, predict, options)
        except Exception as exc:
            yield FileResult(job.order, job.path, error=f"{type(exc).__name__}: {exc}")


def _read_page(job, number, image, predict, options, result) -> None:
    _, rows, _ = results.read_page(
        image, predict, file=job.path, page=number, **options.scan_options()
    )
    where = job.path if number == 1 else f"{job.path} page {number}"
    if not rows:
        result.notes.append(f"{where}: no digits found")
    elif job.annotated:
        out = Path(job.annotated)
        if number > 1:
            out = out.with_name(f"{out.stem}-p{number}{out.suffix}")
        with atomic_path(out) as tmp:
            annotate(image, rows, options.review).save(tmp, format="PNG")
    result.rows.extend(rows)
    result.pages += 1


def annotate(image: np.ndarray, rows: Sequence[results.DigitRow], review: float):
    """Draw each digit's box and reading onto an RGB copy of the page.

    Returns
    -------
    PIL.Image.Image
    """
    from PIL import Image, ImageDraw, ImageFont

    from napari_digits.scan import to_gray

    if image.ndim == 3 and image.dtype == np.uint8:
        base = Image.fromarray(image[..., :3])
    else:
        base = Image.fromarray((to_gray(image) * 255).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(base)
    size = max(10, int(np.median([r.max_row - r.min_row for r in rows]) * 0.4))
    font = ImageFont.load_default(size=size)
    for r in rows:
        colour = (230, 60, 0) if r.needs_review(review) else (0, 170, 0)
        draw.rectangle(
            [r.min_col, r.min_row, r.max_col, r.max_row], outline=colour, width=2
        )
        label = f"{r.value} {r.probability:.0%}"
        draw.text(
            (r.min_col, r.min_row - size - 2), label, fill=(200, 0, 160), font=font
        )
    return base


def plane_count(shape: Sequence[int], *, rgb: bool = False) -> int:
    """Return how many pages a stack of this shape holds (1 for a page)."""
    lead = shape[: len(shape) - (3 if rgb else 2)]
    return int(np.prod(lead)) if len(lead) else 1


def read_planes(
    data,
    predict: results.Predict,
    *,
    file: str = "",
    rgb: bool = False,
    number_gap: float = 0.6,
    **scan_options: object,
) -> Iterator[tuple[np.ndarray, list[results.DigitRow]]]:
    """Yield every plane of a stack with its rows, one plane at a time.

    Parameters
    ----------
    data : array-like
        ``(..., H, W)`` or ``(..., H, W, C)`` with ``rgb``; a lazy (dask)
        stack is loaded one plane at a time.
    predict : callable
        ``(N, 28, 28)`` uint8 crops to ``(N, 10)`` probabilities.
    file : str
        Written in every row's ``file`` column.
    rgb : bool
        The last axis is colour.
    number_gap : float
        See :func:`napari_digits.results.reading_order`.
    **scan_options
        Passed to :func:`napari_digits.scan.find_digits`.

    Yields
    ------
    plane : numpy.ndarray
        The plane as read (loaded).
    rows : list of DigitRow
        Its rows; ``page`` is the plane's number, from 1, in C order of the
        leading axes.
    """
    lead = tuple(data.shape[: data.ndim - (3 if rgb else 2)])
    for page, index in enumerate(np.ndindex(*lead), start=1):
        plane = np.asarray(data[index])
        _, rows, _ = results.read_page(
            plane,
            predict,
            file=file,
            page=page,
            number_gap=number_gap,
            **scan_options,
        )
        yield plane, rows
