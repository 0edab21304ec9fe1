"""``napari-digits finetune``: teach the model the user's corrected digits.

Reads the tables written by ``napari-digits read`` (or exported by the Read
digits widget) with the user's corrections in their ``corrected`` column,
reads their pages again to make the crops, and fine-tunes the model on the
corrected digits and on those read with high confidence, MNIST replayed so
that nothing is forgotten (see :mod:`napari_digits.corrections` and
:mod:`napari_digits.engine.finetune`). TensorFlow runs in this process (a
command line has no Qt, see DESIGN.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from napari_digits import corrections, results
from napari_digits.cli._engine import engine_models, error
from napari_digits.current_model import model_file_problem, shipped_model_path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``finetune`` subcommand to ``sub``.

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
        "finetune",
        help="fine-tune the model on the digits corrected in read tables",
        description="Fine-tune a model on the corrected digits of tables "
        "written by 'napari-digits read' (and the digits read with high "
        "confidence), with MNIST replayed; write the new model.",
    )
    parser.add_argument("tables", nargs="+", metavar="RESULTS.csv")
    parser.add_argument("--out", required=True, type=Path, help="the .keras to write")
    parser.add_argument(
        "--model", help="the model that read the tables (default: shipped)"
    )
    parser.add_argument(
        "--confident",
        type=float,
        default=corrections.CONFIDENT,
        help="also learn uncorrected digits read with at least this "
        f"probability (default: {corrections.CONFIDENT})",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=45.0,
        help="seconds of training (default: 45; loading and checks come on top)",
    )
    parser.add_argument(
        "--batches",
        type=int,
        help="train exactly this many batches instead (the classifier, then the "
        "field reader): the same run on any machine, however fast",
    )
    parser.add_argument("--mnist", help="MNIST directory or mnist.npz (the replay)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ink", choices=("auto", "dark", "light"), default="auto")
    parser.add_argument("--threshold", choices=("otsu", "local"), default="otsu")
    parser.add_argument("--digit-height", type=float, help="pixels (default: auto)")
    parser.add_argument(
        "--amounts",
        action="store_true",
        help="the tables were read with --amounts (read their pages so again)",
    )
    parser.set_defaults(run=run)
    return parser


def _load(table: Path):
    """Load a page named in ``table``: as written, else beside the table."""
    from napari_digits.io import iter_pages

    def load(file: Path, page: int) -> np.ndarray:
        path = file if file.exists() else table.parent / file
        for k, image in enumerate(iter_pages(path), start=1):
            if k == page:
                return image
        raise OSError(f"{path} has no page {page}")

    return load


def _check(args: argparse.Namespace) -> str | None:
    """Return what is wrong with the arguments, or None."""
    from napari_digits.io import OutputError, check_output

    if args.out.suffix != ".keras":
        return f"the output {args.out} must end in .keras"
    if not 0.0 < args.confident <= 1.0:
        return "--confident is a probability in (0, 1]"
    if not args.time_budget > 0:
        return "--time-budget must be a positive number of seconds"
    if args.batches is not None and args.batches < 1:
        return f"--batches must be at least 1, not {args.batches}"
    try:
        check_output(args.out, inputs=[*args.tables, args.model or ""], what="model")
    except OutputError as exc:
        return str(exc)
    for table in map(Path, args.tables):
        if not table.is_file():
            return f"no table {table}"
    return model_file_problem(args.model or shipped_model_path())


def run(args: argparse.Namespace) -> int:
    """Gather the corrected digits, fine-tune, save; print a summary line.

    Returns
    -------
    int
        0 on success, 1 on a user error (one ``error:`` line on stderr).
    """
    problem = _check(args)
    if problem:
        return error("finetune", problem)
    model = args.model or str(shipped_model_path())
    try:  # a table that is none: refused before TensorFlow's seconds to load
        tables = [(table, results.read_csv(table)) for table in map(Path, args.tables)]
    except (OSError, ValueError) as exc:
        return error("finetune", exc)
    models = engine_models()
    options = {"ink": args.ink, "method": args.threshold}
    options["digit_height"] = args.digit_height
    options["amounts"] = args.amounts
    try:
        models.predict(model, np.zeros((1, 28, 28), np.uint8))
        learning = corrections.LearningSet()
        for table, rows in tables:
            learning.add(
                corrections.from_tables(
                    rows,
                    lambda crops: models.predict(model, crops),
                    _load(table),
                    confident=args.confident,
                    **options,
                )
            )
        config = learning.finetune_config(
            model,
            args.out,
            mnist=args.mnist,
            seed=args.seed,
            time_budget=args.time_budget,
            batches=args.batches,
            provenance={"tables": list(args.tables), "files": learning.files},
        )
        result = models.finetune(
            config, log=lambda m: print(m, file=sys.stderr, flush=True)
        )
    except (OSError, ValueError) as exc:  # unreadable pages, bad tables, models
        return error("finetune", exc)
    print(
        f"fine-tuned on {len(config.labels)} digits ({result.corrected} corrected) and "
        f"{result.lines} lines in "
        f"{result.wall_time:.1f} s: MNIST test accuracy "
        f"{result.test_accuracy:.4f}, saved {result.model_path}"
    )
    return 0
