"""``napari-digits train``: train a network on MNIST with a progress bar.

TensorFlow runs in this process (a command line has no Qt, see DESIGN.md).
"""

from __future__ import annotations

import argparse
import sys

from napari_digits.cli._engine import engine_models, error
from napari_digits.current_model import model_file_problem
from napari_digits.engine.protocol import ConfigError, TrainConfig, TrainingProgress
from napari_digits.io import OutputError, check_output


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``sub``.

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
        "train",
        help="train a CNN on MNIST",
        description="Train the default or the tutorial network on MNIST and save "
        "it as a .keras file (checkpointed after every epoch). --resume "
        "continues --out with the architecture and recipe of its checkpoint.",
    )
    parser.add_argument(
        "--model", choices=("default", "tutorial"), help="default: default"
    )
    parser.add_argument("--out", required=True, help="the .keras file to write")
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--mnist", help="MNIST directory or mnist.npz")
    parser.add_argument(
        "--download",
        action="store_true",
        help="download MNIST (11 MB) into the Keras cache if it is nowhere",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, gpu or GPU:N")
    parser.add_argument("--seed", type=int, help="default: 0")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--mixed-precision", action="store_true", help="GPU only")
    parser.add_argument("--resume", action="store_true", help="continue --out")
    parser.add_argument("--time-budget", type=float, help="stop after N seconds")
    parser.add_argument(
        "--augment",
        action="store_true",
        help="make half of each batch look like real scans and add printed "
        "digits of the system fonts (slower; see napari_digits.augment)",
    )
    parser.add_argument(
        "--continental",
        action="store_true",
        help="with --augment: also redraw some 1s (up-stroke, foot), 7s "
        "(crossed) and 0s (joined to the next digit) as continental Europe and "
        "Latin America write them",
    )
    parser.add_argument(
        "--scan-statistics",
        action="store_true",
        help="with --augment: re-estimate the batch-norm statistics at the end "
        "on batches half made to look like real scans, as trained, instead of "
        "on clean MNIST",
    )
    parser.add_argument(
        "--init",
        metavar="MODEL",
        help="start from MODEL's weights instead of random ones (fine-tune it "
        "with this recipe; --model must be its architecture)",
    )
    parser.add_argument("--train-limit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--test-limit", type=int, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)
    return parser


class _Bar:
    """A tqdm bar over all the batches of the run, with loss and accuracy."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, p: TrainingProgress) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=p.epochs * p.batches, unit="batch", file=sys.stderr)
            self.bar.n = (p.epoch - 1) * p.batches
        self.bar.n = (p.epoch - 1) * p.batches + p.batch
        post = {"epoch": f"{p.epoch}/{p.epochs}", "loss": f"{p.loss:.4f}"}
        if p.test_accuracy is not None:
            post["test"] = f"{p.test_accuracy:.4f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def write(self, message: str) -> None:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    """Train as the arguments say; print a summary line.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments.

    Returns
    -------
    int
        0 on success, 1 on a user error (message on stderr).
    """
    try:
        config = _config(args)
        check_output(
            config.out, inputs=[config.init] if config.init else [], what="--out"
        )
    except (ConfigError, OutputError) as exc:
        return error("train", exc)  # before TensorFlow loads
    if config.init and (problem := model_file_problem(config.init)):
        return error("train", f"cannot start from {config.init}: {problem}")
    bar = _Bar()
    try:
        models = engine_models()
        result = models.train(
            config, on_progress=bar, should_stop=lambda: False, log=bar.write
        )
    except Exception as exc:  # MnistError, DeviceError, ModelFileError, OSError...
        bar.close()
        return error("train", exc)
    bar.close()
    accuracy = result.test_accuracy
    print(
        f"trained {result.architecture} for {result.epochs_done} epoch(s) in "
        f"{result.wall_time:.1f} s: test accuracy "
        f"{'n/a' if accuracy is None else f'{accuracy:.4f}'}, saved {result.model_path}"
    )
    return 0


def _config(args: argparse.Namespace) -> TrainConfig:
    """Return the TrainConfig the arguments describe (checked)."""
    return TrainConfig(
        out=args.out,
        architecture=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        device=args.device,
        mixed_precision=args.mixed_precision,
        mnist=args.mnist,
        seed=args.seed,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        resume=args.resume,
        time_budget=args.time_budget,
        augment=args.augment,
        download=args.download,
        continental=args.continental,
        scan_statistics=args.scan_statistics,
        init=args.init,
    )
