"""``napari-digits read``: read the handwritten digits of scanned pages in batch.

Every image given, or found under a folder given, is scanned with
:func:`napari_digits.scan.find_digits` and classified; all digits go to one
CSV (the widget's columns). Unreadable files are reported and skipped.
TensorFlow runs in this process (a command line has no Qt, see DESIGN.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from napari_digits import results
from napari_digits.current_model import shipped_model_path
from napari_digits.scan import ScanError

#: file suffixes taken from a folder (a file named explicitly is always tried)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``read`` subcommand to ``sub``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the top-level parser.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    parser = sub.add_parser(
        "read",
        help="find and classify the handwritten digits of scanned pages",
        description="Read every page given (or found in a folder given) into "
        "one CSV, one row a digit; optionally draw the boxes and predictions "
        "into annotated PNGs.",
    )
    parser.add_argument("pages", nargs="+", metavar="PAGE_OR_FOLDER")
    parser.add_argument("--out", required=True, type=Path, help="the CSV to write")
    parser.add_argument("--model", help="a .keras model (default: shipped)")
    parser.add_argument(
        "--annotated", type=Path, metavar="DIR", help="write annotated PNGs here"
    )
    parser.add_argument(
        "--ink",
        choices=("auto", "dark", "light"),
        default="auto",
        help="ink darker or lighter than the paper (default: detected)",
    )
    parser.add_argument(
        "--threshold",
        choices=("otsu", "local"),
        default="otsu",
        help="one Otsu threshold a page, or a local one (default: otsu)",
    )
    parser.add_argument("--digit-height", type=float, help="pixels (default: auto)")
    parser.add_argument(
        "--review",
        type=float,
        default=results.REVIEW_THRESHOLD,
        help="flag predictions below this probability for review (default: 0.8)",
    )
    parser.set_defaults(run=run)
    return parser


def find_pages(paths: Iterable[str | Path]) -> list[Path]:
    """List the pages: files as given, folders searched for images (sorted).

    Parameters
    ----------
    paths : iterable of str or Path
        Files and folders.

    Returns
    -------
    list of Path
        Missing paths are kept, so that they are reported as unreadable.
    """
    pages: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            pages.extend(sorted(p for p in found if p.is_file()))
        else:
            pages.append(path)
    return pages


def load_page(path: Path) -> tuple[np.ndarray, str]:
    """Read an image file; a stack gives its first plane (and a note saying so).

    Raises
    ------
    OSError
        When the file is missing or not an image.
    """
    import imageio.v3 as iio

    try:
        image = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types for a bad file
        raise OSError(f"cannot read it as an image ({type(exc).__name__})") from exc
    rgb = image.ndim == 3 and image.shape[-1] in (3, 4)
    if image.ndim > 3 or (image.ndim == 3 and not rgb):
        return image.reshape(-1, *image.shape[-(3 if rgb else 2) :])[0], (
            "a stack: read its first plane"
        )
    return image, ""


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


def _predictor(model: str):
    """Load the model once (TensorFlow in this process) and check it."""
    from napari_digits.engine import models

    models.predict(model, np.zeros((1, 28, 28), np.uint8))
    return lambda crops: models.predict(model, crops)


def _progress(items: list[Path]):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with napari
        return items
    return tqdm(items, desc="reading pages", unit="page", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Read the pages; write the CSV (and annotated PNGs).

    Returns
    -------
    int
        0 when at least one page was read, 1 otherwise (messages on stderr).
    """
    pages = find_pages(args.pages)
    if not pages:
        print("no images found in " + ", ".join(args.pages), file=sys.stderr)
        return 1
    model = args.model or str(shipped_model_path())
    try:
        predict = _predictor(model)
    except ValueError as exc:  # ModelFileError: a missing or unusable model
        print(f"error: {exc}", file=sys.stderr)
        return 1
    options = {"ink": args.ink, "method": args.threshold}
    options["digit_height"] = args.digit_height
    rows, read, skipped, written = [], 0, [], set()
    if args.annotated:
        args.annotated.mkdir(parents=True, exist_ok=True)
    for path in _progress(pages):
        try:
            image, note = load_page(path)
            _, page_rows, _ = results.read_page(
                image, predict, file=str(path), **options
            )
        except (OSError, ScanError) as exc:
            skipped.append(path)
            _say(f"skipped {path}: {exc}")
            continue
        read += 1
        _say(f"{path}: {note}" if note else "")
        if not page_rows:
            _say(f"{path}: no digits found")
        elif args.annotated:
            out = _unique(args.annotated / f"{path.stem}.png", written)
            annotate(image, page_rows, args.review).save(out)
        rows.extend(page_rows)
    results.write_csv(rows, args.out)
    flagged = sum(r.needs_review(args.review) for r in rows)
    print(
        f"read {len(rows)} digits ({flagged} to review) from {read} page(s), "
        f"skipped {len(skipped)}; wrote {args.out}"
    )
    return 0 if read else 1


def _say(message: str) -> None:
    """Print a line to stderr without breaking the progress bar."""
    if not message:
        return
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        print(message, file=sys.stderr)
    else:
        tqdm.write(message, file=sys.stderr)


def _unique(path: Path, taken: set[Path]) -> Path:
    """``path``, or ``stem-2.png``... when this run already wrote that name."""
    k, candidate = 1, path
    while candidate in taken:
        k += 1
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
    taken.add(candidate)
    return candidate
