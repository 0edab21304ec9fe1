"""``napari-digits train-fields``: train the field reader on lines of MNIST digits.

Makes the training lines from MNIST's training digits
(:mod:`napari_digits.synthetic_fields`), trains the field reader with CTC
(:mod:`napari_digits.engine.fields`) and writes it with its record in
``<out>.json``. Name it ``<model>.fields.keras`` beside a classifier
``<model>.keras`` and that classifier reads short lines with it; the shipped
one is ``resources/fields.keras``. TensorFlow runs in this process (a
command line has no Qt, see DESIGN.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from napari_digits.cli._engine import error
from napari_digits.current_model import model_file_problem


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train-fields`` subcommand to ``sub``.

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
        "train-fields",
        help="train the field reader (whole short lines of digits) on MNIST",
        description="Train the field reader, which reads a short line of "
        "digits whole, on lines made of MNIST training digits; write it.",
    )
    parser.add_argument("--out", required=True, type=Path, help="the .keras to write")
    parser.add_argument(
        "--lines", type=int, default=150_000, help="lines to make (default: 150000)"
    )
    parser.add_argument(
        "--steps", type=int, default=4000, help="batches of 64 (default: 4000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rate",
        type=float,
        default=1e-3,
        help="Adam's learning rate at the start, cosine to 0 (default: 0.001)",
    )
    parser.add_argument(
        "--from",
        dest="start_from",
        type=Path,
        help="a field reader to train further (default: new weights)",
    )
    parser.add_argument("--mnist", help="MNIST directory or mnist.npz")
    parser.set_defaults(run=run)
    return parser


def _check(args: argparse.Namespace) -> str | None:
    """Return what is wrong with the arguments, or None."""
    from napari_digits.io import OutputError, check_output

    if args.out.suffix != ".keras":
        return f"the output {args.out} must end in .keras"
    if not 1 <= args.lines <= 1_000_000:
        return "--lines is 1 to 1000000 (each line holds 6 KB in memory)"
    if args.steps < 1:
        return "--steps must be at least 1"
    if not 0 < args.rate <= 0.1:
        return "--rate is a learning rate in (0, 0.1]"
    if args.start_from is not None:
        problem = model_file_problem(args.start_from)
        if problem:
            return f"--from: {problem}"
    try:
        inputs = [args.start_from] if args.start_from else []
        check_output(args.out, inputs=inputs, what="model")
    except OutputError as exc:
        return str(exc)
    return None


def run(args: argparse.Namespace) -> int:
    """Make the lines, train, save; print a summary line.

    Returns
    -------
    int
        0 on success, 1 on a user error (one ``error:`` line on stderr).
    """
    problem = _check(args)
    if problem:
        return error("train-fields", problem)
    from napari_digits.data import MnistError, load_mnist

    try:
        mnist = load_mnist(args.mnist)
    except MnistError as exc:
        return error("train-fields", str(exc))
    from napari_digits.cli._engine import engine_models

    engine_models()  # TensorFlow, quietly
    from napari_digits.engine import fields
    from napari_digits.engine.checkpoints import write_state

    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    command = " ".join(["napari-digits", "train-fields", *sys.argv[2:]])
    try:
        (images, digits, lengths), used, printed = _make_lines(args, mnist, say)
        record = fields.train(
            images,
            digits,
            lengths,
            args.out,
            steps=args.steps,
            seed=args.seed,
            rate=args.rate,
            start_from=args.start_from,
            say=say,
        )
        record = {
            "command": command,
            "lines": args.lines,
            "digits": {"mnist_train": used, "printed": printed},
            "seed": args.seed,
            **record,
        }
        write_state(record, args.out)  # <out>.json, strict JSON, atomically
    except Exception as exc:  # OSError, MemoryError, TensorFlow's errors...
        return error("train-fields", exc)
    print(
        f"trained the field reader for {args.steps} steps in "
        f"{record['train_wall_time_s']:.0f} s (loss {record['final_loss']}): "
        f"saved {args.out}"
    )
    return 0


def _make_lines(args: argparse.Namespace, mnist, say) -> tuple:
    """Make the training lines; return them, the MNIST and printed digits used."""
    import numpy as np

    from napari_digits.augment import font_digits, font_files
    from napari_digits.synthetic_fields import digit_pool, make_fields

    start = time.perf_counter()
    used = min(len(mnist.y_train), 4 * args.lines)  # 4 digits a line on average
    rng = np.random.default_rng(args.seed)
    printed = font_digits(font_files(), used // 10, rng)  # as the classifier's
    x = np.concatenate([mnist.x_train[:used], printed[0]])
    y = np.concatenate([mnist.y_train[:used], printed[1]])
    pool, classes = digit_pool(x, y, rng)
    lines = make_fields(pool, classes, args.lines, seed=args.seed)
    say(f"made {args.lines} lines in {time.perf_counter() - start:.0f} s")
    return lines, used, len(printed[1])
