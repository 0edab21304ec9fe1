"""Fine-tune a model on a user's corrected digits, with MNIST replayed.

Imports TensorFlow: runs only in the engine process or a command-line process
without Qt. The entry point is :func:`finetune` (re-exported by
:mod:`napari_digits.engine.models`).

Each batch mixes the user's digits (the corrected ones drawn
``CORRECTED_WEIGHT`` times as often as those read with confidence) with MNIST
training digits (``replay`` of the batch, 95% by default), half of them made
to look like real scans as the shipped model's training did
(:func:`napari_digits.augment.augment_batch`, continental styles included),
all shifted by up to 2 pixels, so that what the model knew is not forgotten;
the batch-norm statistics stay MNIST's; plain SGD with momentum moves the
weights gently.
The run ends after ``time_budget`` seconds (or ``MAX_STEPS`` batches; or
exactly ``batches`` batches where the config sets them), the
learning rate decaying to zero on the way (cosine); then the MNIST test
accuracy is measured. Where the user's short lines come too, the classifier
gets ``CLASSIFIER_SHARE`` of the budget and the field reader the rest
(:func:`napari_digits.engine.fields.finetune_reader`), saved beside the new
model as its own (``<out stem>.fields.keras``); without lines, the base
model's own reader is copied there. Then the model is saved, with its
provenance in the sidecar ``<out>.json``. The defaults were chosen on the
correction benchmark (``bench/run.py real``): Adam, a half-MNIST batch or
batch-norm updates forgot more MNIST (98.6-99.0%) for the same gain on the
user's digits; 7/8 MNIST kept 99.27%, 95% keeps 99.4%.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from napari_digits.augment import augment_batch
from napari_digits.current_model import own_reader_path, reader_path
from napari_digits.data import load_mnist
from napari_digits.engine._tf import keras
from napari_digits.engine.checkpoints import (
    ModelFileError,
    load_to_train,
    save_model,
    write_state,
)
from napari_digits.engine.fields import finetune_reader, fraction_done
from napari_digits.engine.protocol import FinetuneConfig, FinetuneResult
from napari_digits.engine.training import shift_images, test_accuracy, to_float
from napari_digits.io import atomic_path
from napari_digits.scan.fields import FIELD_HEIGHT, FIELD_WIDTH, FRAMES

#: a corrected digit is drawn this many times as often as a confident one
CORRECTED_WEIGHT = 2.0
#: at most this many batches, whatever the time budget
MAX_STEPS = 600
#: with lines to learn, the classifier's share of the time budget (the field
#: reader gets what is left, at least ``MIN_READER_SECONDS``)
CLASSIFIER_SHARE = 0.5
MIN_READER_SECONDS = 5.0


def _check(config: FinetuneConfig) -> None:
    """Refuse a run that cannot work before loading anything."""
    n = len(config.images)
    if n == 0:
        raise ValueError("no digits to learn from: correct some readings first")
    if config.images.shape[1:] != (28, 28) or len(config.labels) != n:
        raise ValueError("expected (N, 28, 28) crops and N labels")
    if len(config.corrected) != n:
        raise ValueError("expected one corrected flag per digit")
    labels = np.asarray(config.labels)
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError("labels are digits 0..9")
    if not str(config.out).endswith(".keras"):
        raise ModelFileError(f"the output {config.out} must end in .keras")
    if not 0.0 <= config.replay < 1.0:
        raise ValueError("replay is the fraction of MNIST in a batch, 0 <= r < 1")
    if not config.time_budget > 0:
        raise ValueError("the time budget must be a positive number of seconds")
    batches = config.batches
    if batches is not None and (
        isinstance(batches, bool) or not isinstance(batches, int) or batches < 1
    ):
        raise ValueError("batches is a whole number of batches, at least 1")
    if _has_lines(config):
        lines, digits = np.asarray(config.lines), np.asarray(config.line_digits)
        shape = (FIELD_HEIGHT, FIELD_WIDTH)
        if lines.shape[1:] != shape or len(digits) != len(lines):
            raise ValueError(
                f"expected (M, {shape[0]}, {shape[1]}) lines, M digit rows"
            )
        if digits.ndim != 2 or digits.min() < -1 or digits.max() > 9:
            raise ValueError("a line's digits are 0..9, padded with -1")
        if not (digits[:, 0] >= 0).all():
            raise ValueError("every line holds at least one digit")
        if (digits >= 0).sum(axis=1).max() > FRAMES // 2:
            raise ValueError(
                f"a line holds at most {FRAMES // 2} digits (the field reader's "
                f"{FRAMES} frames need a blank between two same digits)"
            )


def _has_lines(config: FinetuneConfig) -> bool:
    return config.lines is not None and len(config.lines) > 0


def _reader(
    config: FinetuneConfig, mnist, train_start: float, log: Callable[[str], None]
) -> dict | None:
    """Give the new model its own field reader: fine-tuned, copied or none.

    With lines, the base model's field reader is fine-tuned on them for the
    rest of the time budget; without, the base model's own reader (if it has
    one) is copied, so that the new model reads lines as its base did.
    """
    own = own_reader_path(config.out)
    base = reader_path(config.base)
    if not _has_lines(config):
        if base == own_reader_path(config.base):
            with atomic_path(own) as tmp:
                shutil.copyfile(base, tmp)
            return {"copied_from": str(base)}
        own.unlink(missing_ok=True)  # a reader of an older model of that name
        return None
    left = config.time_budget - (time.perf_counter() - train_start)
    log(f"fine-tuning the field reader on {len(config.lines)} lines")
    record = finetune_reader(
        base,
        np.asarray(config.lines, np.uint8),
        np.asarray(config.line_digits),
        own,
        mnist,
        time_budget=max(left, MIN_READER_SECONDS),
        seed=config.seed,
        batches=config.batches,
    )
    log(f"fine-tuned the field reader for {record['steps']} batches")
    return record


def finetune(
    config: FinetuneConfig, *, log: Callable[[str], None] = lambda _m: None
) -> FinetuneResult:
    """Fine-tune ``config.base`` on the user's digits and save it to ``config.out``.

    Parameters
    ----------
    config : FinetuneConfig
        The base model, the digits and their labels, the output, the budget.
    log : callable
        Receives lines of text for the user.

    Returns
    -------
    FinetuneResult

    Raises
    ------
    ValueError
        For no digits, bad shapes or labels, a bad budget.
    ModelFileError
        When the base model cannot be loaded or the output is not ``.keras``.
    napari_digits.data.MnistError
        If MNIST (for the replay) cannot be loaded.
    """
    _check(config)
    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    mnist = load_mnist(config.mnist)
    model = load_to_train(config.base, (10,), "model", "10-class digit classifier")
    for layer in model.layers:  # keep MNIST's normalisation statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    optimizer = keras.optimizers.SGD(config.learning_rate, momentum=0.9)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    user_x, user_y = to_float(np.asarray(config.images, np.uint8)), config.labels
    weight = np.where(np.asarray(config.corrected, bool), CORRECTED_WEIGHT, 1.0)
    weight = weight / weight.sum()
    n_mnist = min(config.batch_size - 1, round(config.batch_size * config.replay))
    n_user = config.batch_size - n_mnist
    eye = np.eye(10, dtype=np.float32)
    n_corrected = int(np.sum(config.corrected))
    log(
        f"fine-tuning {Path(config.base).name} on {len(user_y)} digits "
        f"({n_corrected} corrected), MNIST replayed, for up to "
        f"{config.time_budget:.0f} s"
    )
    # with lines, the field reader gets the rest of the budget
    budget = config.time_budget * (CLASSIFIER_SHARE if _has_lines(config) else 1.0)
    steps, train_start = 0, time.perf_counter()
    while (
        done := fraction_done(steps, MAX_STEPS, train_start, budget, config.batches)
    ) < 1.0:
        optimizer.learning_rate = (
            config.learning_rate * 0.5 * (1 + math.cos(math.pi * done))
        )
        u = rng.choice(len(user_y), n_user, p=weight)
        m = rng.integers(0, len(mnist.y_train), n_mnist)
        replay = augment_batch(mnist.x_train[m], rng, labels=mnist.y_train[m])
        x = np.concatenate([user_x[u], to_float(replay)])
        y = np.concatenate([eye[user_y[u]], eye[mnist.y_train[m]]])
        x, _ = shift_images(x, y, 2.0)
        model.train_on_batch(x, y)
        steps += 1
    accuracy = test_accuracy(model, mnist)
    reader = _reader(config, mnist, train_start, log)  # first: the model says "done"
    save_model(model, config.out)  # atomic; never a model with NaN weights
    wall = time.perf_counter() - start
    write_state(
        {
            "finetuned_from": str(config.base),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "digits": len(user_y),
            "corrected": n_corrected,
            "confident": len(user_y) - n_corrected,
            "steps": steps,
            "batch_size": config.batch_size,
            "optimizer": "SGD, momentum 0.9, cosine decay; batch norm frozen",
            "learning_rate": config.learning_rate,
            "replay": config.replay,
            "seed": config.seed,
            "time_budget_s": config.time_budget,
            "batches": config.batches,
            "wall_time_s": round(wall, 1),
            "mnist_test_accuracy": accuracy,
            "field_reader": reader,
            "provenance": config.provenance,
        },
        config.out,
    )
    log(f"fine-tuned for {steps} batches: MNIST test accuracy {accuracy:.4f}")
    return FinetuneResult(
        model_path=str(config.out),
        steps=steps,
        wall_time=wall,
        test_accuracy=accuracy,
        corrected=n_corrected,
        confident=len(user_y) - n_corrected,
        lines=(reader or {}).get("lines", 0),
    )
