"""``napari-digits evaluate``: a model's MNIST test accuracy and confusion matrix.

TensorFlow runs in this process (a command line has no Qt, see DESIGN.md).
"""

from __future__ import annotations

import argparse

import numpy as np

from napari_digits.cli._engine import engine_models, error
from napari_digits.current_model import shipped_model_path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``sub``.

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
        "evaluate",
        help="score a model on the MNIST test set",
        description="Print the confusion matrix and the test accuracy of a .keras "
        "model (the shipped default model when no path is given).",
    )
    parser.add_argument("model", nargs="?", help="a .keras file (default: shipped)")
    parser.add_argument("--mnist", help="MNIST directory or mnist.npz")
    parser.add_argument(
        "--download",
        action="store_true",
        help="download MNIST (11 MB) into the Keras cache if it is nowhere",
    )
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)
    return parser


def format_confusion(confusion: np.ndarray) -> str:
    """Format a 10x10 confusion matrix with digit headers (rows: true digit).

    Parameters
    ----------
    confusion : numpy.ndarray
        Counts, rows the true digit, columns the predicted one.

    Returns
    -------
    str
        A plain-text table.
    """
    width = max(5, len(str(int(confusion.max()))) + 1)
    head = "true\\pred" + "".join(f"{d:>{width}}" for d in range(10))
    rows = [
        f"{digit:>9}" + "".join(f"{int(n):>{width}}" for n in row)
        for digit, row in enumerate(confusion)
    ]
    return "\n".join([head, *rows])


def run(args: argparse.Namespace) -> int:
    """Evaluate the model; the last line printed is ``test accuracy: 0.9934``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments.

    Returns
    -------
    int
        0 on success, 1 on a user error (message on stderr).
    """
    path = args.model or str(shipped_model_path())
    if args.limit is not None and args.limit < 1:
        return error("evaluate", f"--limit must be at least 1, not {args.limit}")
    try:
        models = engine_models(path)
        result = models.evaluate(path, args.mnist, args.limit, download=args.download)
    except Exception as exc:  # ModelFileError, MnistError, OSError...
        return error("evaluate", exc)
    print(f"model: {path}")
    print(f"{result.count} test images")
    print(format_confusion(result.confusion))
    print(f"test accuracy: {result.accuracy:.4f}")
    return 0
