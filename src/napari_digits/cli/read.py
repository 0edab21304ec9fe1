"""``napari-digits read``: read the handwritten digits of scanned pages in batch.

Every image given, or found under a folder given, is scanned with
:func:`napari_digits.scan.find_digits` and classified; all digits go to one
table (the widget's columns, CSV or Parquet). Unreadable files are reported
and skipped. Rows are kept as files finish (:mod:`napari_digits.archive.journal`)
and written into the output atomically at the end; ``--resume`` carries on.

Sequentially, TensorFlow runs in this process (a command line has no Qt,
see DESIGN.md); with ``--workers`` or ``--scheduler`` it runs only in the
Dask workers (:mod:`napari_digits.archive.cluster`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from napari_digits import results
from napari_digits.archive.journal import Journal, check_journal, journal_path
from napari_digits.archive.pages import (
    FileResult,
    PageJob,
    ReadOptions,
    check_annotated,
    find_pages,
    plan_jobs,
    read_jobs,
)
from napari_digits.cli._engine import error
from napari_digits.current_model import model_file_problem, shipped_model_path
from napari_digits.io import OutputError, check_output


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
        "one table, one row a digit; optionally draw the boxes and predictions "
        "into annotated PNGs. Rows are kept in OUT.partial as files finish.",
    )
    parser.add_argument("pages", nargs="+", metavar="PAGE_OR_FOLDER")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="the table to write: CSV, or Parquet for a .parquet name",
    )
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
        "--marks",
        action="store_true",
        help="also list the points, commas, dashes and '=' among the digits "
        "(prediction -1; never part of a number's digits)",
    )
    parser.add_argument(
        "--amounts",
        action="store_true",
        help="the lines are amounts (cheques, invoices): weigh each line's first "
        "digit by the first-digit law, so an unsure 4-or-1 reads as 1",
    )
    parser.add_argument(
        "--review",
        type=float,
        default=results.REVIEW_THRESHOLD,
        help="flag predictions below this probability for review (default: 0.8)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="carry on an interrupted run (OUT.partial) and skip the files "
        "already in OUT",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="read on a local Dask cluster of N worker processes",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="read on a running Dask cluster (tcp://host:8786)",
    )
    parser.set_defaults(run=run)
    return parser


class UsageError(ValueError):
    """A value the command refuses before any work starts."""


@dataclass
class Tally:
    """What a run read, skipped and wrote."""

    files: int = 0
    pages: int = 0
    digits: int = 0
    flagged: int = 0
    skipped: list[str] = field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    """Read the pages; write the table (and annotated PNGs).

    Returns
    -------
    int
        0 when at least one page was read, 1 otherwise (messages on stderr).
    """
    try:
        jobs, model = _prepare(args)
        return _read(args, jobs, model)
    except (UsageError, OutputError) as exc:
        return error("read", exc)


def _prepare(args: argparse.Namespace) -> tuple[list[PageJob], str]:
    """Check every value and output before any work starts; plan the jobs."""
    most = 2 * (os.cpu_count() or 1)
    if args.workers is not None and not 1 <= args.workers <= most:
        raise UsageError(
            f"--workers is 1..{most} on this machine ({most // 2} cores; each "
            f"worker is a process with TensorFlow, about 1.1 GB), not {args.workers}; "
            "use --scheduler for more"
        )
    if not 0 <= args.review <= 1:
        raise UsageError(f"--review is a probability in 0..1, not {args.review}")
    if args.digit_height is not None and not 4 <= args.digit_height <= 4096:
        raise UsageError(f"--digit-height is 4..4096 pixels, not {args.digit_height}")
    model = str(Path(args.model).expanduser().resolve()) if args.model else None
    model = model or str(shipped_model_path())
    problem = model_file_problem(model)
    if problem:
        raise UsageError(problem)
    pages = find_pages(args.pages)
    if not pages:
        raise UsageError("no images found in " + ", ".join(args.pages))
    if not any(page.exists() for page in pages):
        raise UsageError("nothing to read: " + ", ".join(args.pages) + " not found")
    inputs = [*args.pages, *pages]
    check_output(args.out, inputs=inputs, what="--out")
    check_output(journal_path(args.out), inputs=inputs, what="--out's journal")
    check_journal(args.out, resume=args.resume)
    annotated = args.annotated and check_annotated(args.annotated, args.pages)
    jobs = plan_jobs(pages, annotated or None)
    if annotated:
        taken = {str(p.resolve()) for p in pages}
        for job in jobs:
            if str(Path(job.annotated).resolve()) in taken:
                raise UsageError(f"--annotated would write over the input {job.path}")
    return jobs, model


def _options(args: argparse.Namespace) -> ReadOptions:
    return ReadOptions(
        args.ink,
        args.threshold,
        args.digit_height,
        args.review,
        args.marks,
        args.amounts,
    )


def _settings(args: argparse.Namespace, model: str) -> dict[str, object]:
    """Return the options that change the rows (a resume must use the same)."""
    return {
        "model": model,
        "ink": args.ink,
        "threshold": args.threshold,
        "digit_height": args.digit_height,
        "marks": args.marks,
        # only when set: a journal of an older version (no amounts) resumes
        **({"amounts": True} if args.amounts else {}),
    }


def _read(args: argparse.Namespace, jobs: list[PageJob], model: str) -> int:
    options = _options(args)
    if args.workers or args.scheduler:
        from napari_digits.archive import cluster

        try:
            with cluster.connect(workers=args.workers, scheduler=args.scheduler) as c:
                cluster.load_model(c, model)
                return _journaled(
                    args, jobs, model, lambda todo: cluster.stream(c, todo, options)
                )
        except cluster.ClusterError as exc:
            return error("read", str(exc))
    try:
        predict = _predictor(model)
    except ValueError as exc:  # ModelFileError: a missing or unusable model
        return error("read", exc)
    return _journaled(args, jobs, model, lambda todo: read_jobs(todo, predict, options))


def _journaled(args, jobs: list[PageJob], model: str, read) -> int:
    """Read the jobs not in the journal, journal each, finalise the output."""
    journal = Journal.open(
        args.out, settings=_settings(args, model), resume=args.resume
    )
    todo = [job for job in jobs if job.path not in journal.done]
    if args.resume:
        _say(f"resuming: {len(journal.done)} file(s) already read, {len(todo)} to read")
    kept = (
        f"the files read so far are kept in {journal.path}; run the same "
        "command with --resume to carry on"
    )
    try:
        tally = _collect(read(todo), journal, total=len(todo), review=args.review)
    except KeyboardInterrupt:
        _close(journal)
        _say(f"stopped: {kept}")
        raise
    except Exception as exc:  # the journal's disk is full, the cluster went away...
        _close(journal)
        return error("read", f"{type(exc).__name__}: {exc}; {kept}")
    if not journal.done:
        journal.discard()
        return error("read", f"no page could be read; {args.out} not written")
    order = {job.path: job.order for job in jobs}
    written = journal.finalise(args.out, lambda file: order.get(file, -1))
    print(
        f"read {tally.digits} digits ({tally.flagged} to review) from {tally.pages} "
        f"page(s) of {tally.files} file(s), skipped {len(tally.skipped)}; "
        f"wrote {written} rows to {args.out}"
    )
    return 0


def _close(journal: Journal) -> None:
    with contextlib.suppress(OSError):  # a full disk: what was flushed is kept
        journal.close()


def _collect(
    done: Iterable[FileResult], journal: Journal, *, total: int, review: float
) -> Tally:
    """Journal each result as it comes, with a progress bar and messages."""
    tally = Tally()
    for result in _progress(done, total):
        if result.error:
            tally.skipped.append(result.file)
            _say(f"skipped {result.file}: {result.error}")
            continue
        for note in result.notes:
            _say(note)
        journal.append(result.file, result.pages, result.rows)
        tally.files += 1
        tally.pages += result.pages
        tally.digits += len(result.rows)
        tally.flagged += sum(r.needs_review(review) for r in result.rows)
    return tally


def _predictor(model: str):
    """Load the model once (TensorFlow in this process) and check it."""
    import numpy as np

    from napari_digits.allocator import reuse_freed_memory
    from napari_digits.cli._engine import engine_models

    reuse_freed_memory()  # page-sized arrays: about 20% faster a page
    models = engine_models()
    models.predict(model, np.zeros((1, 28, 28), np.uint8))
    return lambda crops: models.predict(model, crops)


def _progress(items: Iterable[FileResult], total: int) -> Iterator[FileResult]:
    """Wrap ``items`` in a progress bar on stderr (pages a second, ETA)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with napari
        return iter(items)
    return iter(
        tqdm(items, total=total, desc="reading pages", unit="page", file=sys.stderr)
    )


def _say(message: str) -> None:
    """Print a line to stderr without breaking the progress bar."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        print(message, file=sys.stderr)
    else:
        tqdm.write(message, file=sys.stderr)
