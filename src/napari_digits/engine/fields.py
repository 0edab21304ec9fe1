"""The field reader: a whole short line of digits read at once (CTC).

Imports Keras: only the engine process and the command line import this
module. The network: four blocks of 3x3 convolution, batch norm, ReLU and
max-pooling (32, 64, 96, 128 filters; the first two pool 2x2, the others
2x1) turn the ``32 x 192`` line into 48 frames of 4 columns, a dense layer
of 128 and a bidirectional GRU of 96 read them in context, and a dense
layer gives each frame the probabilities of the ten digits and the CTC
blank (:mod:`napari_digits.scan.fields` decodes them). It is trained with
the CTC loss on lines of MNIST training digits
(:mod:`napari_digits.synthetic_fields`): Adam, batch 64, the learning rate
on a cosine from 0.001 to 0 (:func:`train`, which can also start from a
reader's weights instead of new ones). Learning from corrections
fine-tunes it on the user's lines (:func:`finetune_reader`).
"""

from __future__ import annotations

import math
import os
import platform
import time

import numpy as np

from napari_digits.engine._tf import keras, tf
from napari_digits.engine.checkpoints import load_to_train, save_model
from napari_digits.scan.fields import BLANK, FIELD_HEIGHT, FIELD_WIDTH, FRAMES

layers = keras.layers


def build() -> keras.Model:
    """Build the field reader (see the module's docstring), untrained."""
    x = inputs = keras.Input((FIELD_HEIGHT, FIELD_WIDTH, 1))
    for filters, pool in ((32, (2, 2)), (64, (2, 2)), (96, (2, 1)), (128, (2, 1))):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(pool)(x)
    x = layers.Permute((2, 1, 3))(x)
    x = layers.Reshape((FRAMES, -1))(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Bidirectional(layers.GRU(96, return_sequences=True))(x)
    outputs = layers.Softmax()(layers.Dense(BLANK + 1)(x))
    return keras.Model(inputs, outputs, name="field_reader")


def _ctc_step(model: keras.Model, optimizer, batch_size: int, *, training: bool):
    """Return a compiled step: one batch of lines, CTC loss, one update."""
    frames = tf.fill([batch_size], FRAMES)

    @tf.function
    def step(x, y, n, rate):
        optimizer.learning_rate.assign(rate)
        with tf.GradientTape() as tape:
            p = model(x, training=training)
            logits = tf.math.log(tf.maximum(p, 1e-8))
            loss = tf.reduce_mean(
                tf.nn.ctc_loss(
                    y, logits, n, frames, logits_time_major=False, blank_index=BLANK
                )
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    def run(images, digits, lengths, rate):
        x = images[:, :, :, None].astype(np.float32) / 255.0
        loss = step(
            tf.constant(x),
            tf.constant(np.maximum(digits, 0).astype(np.int32)),
            tf.constant(np.asarray(lengths, np.int32)),
            tf.constant(rate, tf.float32),
        )
        return float(loss)

    return run


def _load_reader(path: str | os.PathLike) -> keras.Model:
    """Load a field reader to train it further (ModelFileError if it is not one)."""
    return load_to_train(path, (FRAMES, BLANK + 1), "field reader", "field reader")


def _cosine(rate: float, done: float) -> float:
    return rate * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


def train(
    images: np.ndarray,
    digits: np.ndarray,
    lengths: np.ndarray,
    out: str | os.PathLike,
    *,
    steps: int = 4000,
    seed: int = 0,
    rate: float = 1e-3,
    start_from: str | os.PathLike | None = None,
    say=print,
) -> dict:
    """Train a field reader on lines of digits and save it atomically.

    Parameters
    ----------
    images, digits, lengths
        The lines (:func:`napari_digits.synthetic_fields.make_fields`).
    out : str or path-like
        The ``.keras`` file to write.
    steps : int
        Batches of 64 to train on.
    seed : int
        Seed of the initial weights and of the batches.
    rate : float
        Adam's learning rate at the start (cosine decay to 0).
    start_from : str or path-like, optional
        A field reader to train further, instead of new weights.
    say : callable
        Called with a line of progress every 200 steps.

    Returns
    -------
    dict
        What was done: steps, rate, final loss, wall and CPU seconds.

    Raises
    ------
    ModelFileError
        When ``start_from`` is not a field reader.
    """
    keras.utils.set_random_seed(seed)
    model = build() if start_from is None else _load_reader(start_from)
    step = _ctc_step(model, keras.optimizers.Adam(rate), 64, training=True)
    rng = np.random.default_rng(seed)
    start, cpu = time.perf_counter(), time.process_time()
    loss = float("nan")
    for k in range(steps):
        batch = rng.integers(len(images), size=64)
        now = _cosine(rate, k / steps)
        loss = step(images[batch], digits[batch], lengths[batch], now)
        if (k + 1) % 200 == 0:
            seconds = time.perf_counter() - start
            say(f"step {k + 1}/{steps}: loss {loss:.3f}, {seconds:.0f} s")
    save_model(model, out)
    return {
        "steps": steps,
        "rate": rate,
        "start_from": None if start_from is None else str(start_from),
        "batch_size": 64,
        "final_loss": round(loss, 4),
        "train_wall_time_s": round(time.perf_counter() - start, 1),
        "cpu_time_s": round(time.process_time() - cpu, 1),
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU, tensorflow "
        f"{tf.__version__}, Keras {keras.__version__}, "
        f"Python {platform.python_version()}",
    }


#: a fine-tuning batch of lines: ``FINETUNE_USER`` of the user's, the rest
#: synthetic lines of MNIST digits (replayed so that nothing is forgotten)
FINETUNE_BATCH = 32
FINETUNE_USER = 16
#: at most this many batches, whatever the time budget
FINETUNE_STEPS = 200
#: Adam's learning rate at the start (cosine decay to 0); chosen with the
#: varied lines on the ORAND `train` images the correction benchmark leaves
#: untouched (README, "Real documents")
FINETUNE_RATE = 1e-3
#: synthetic lines made for the replay
REPLAY_LINES = 1000


def fraction_done(
    steps: int, most: int, start: float, budget: float, batches: int | None = None
) -> float:
    """Return how much of a fine-tuning run is done (1 or more: stop).

    Of ``most`` steps or of ``budget`` seconds since ``start``
    (``time.perf_counter``), the larger; of ``batches`` alone where it is set
    (a run the same on any machine).
    """
    if batches is not None:
        return steps / batches
    return max(steps / most, (time.perf_counter() - start) / budget)


def finetune_reader(
    base: str | os.PathLike,
    lines: np.ndarray,
    digits: np.ndarray,
    out: str | os.PathLike,
    mnist,
    *,
    time_budget: float,
    seed: int = 0,
    batches: int | None = None,
) -> dict:
    """Fine-tune a field reader on the user's lines and save it atomically.

    Each batch holds ``FINETUNE_USER`` of the user's lines, each written
    again a little narrower or wider, slanted, thicker or thinner
    (:func:`napari_digits.synthetic_fields.vary_lines`) and moved by up to
    2 rows and 3 columns, and synthetic lines of MNIST training digits
    (:func:`napari_digits.synthetic_fields.make_fields`); the batch-norm
    statistics stay the base reader's; Adam, the learning rate decaying
    from ``FINETUNE_RATE`` to 0 over ``FINETUNE_STEPS`` batches or
    ``time_budget`` seconds (making the synthetic lines included), whichever
    ends first; or over exactly ``batches`` batches where it is set.

    Parameters
    ----------
    base : str or path-like
        The field reader to start from.
    lines, digits
        The user's lines ``(M, 32, 192)`` uint8 and their digits ``(M, L)``,
        padded with -1.
    out : str or path-like
        The ``.keras`` file to write.
    mnist : napari_digits.data.Mnist
        MNIST, for the synthetic lines.
    time_budget : float
        Seconds.
    seed : int
        Seed of the batches and of the synthetic lines.
    batches : int, optional
        Train exactly this many batches, whatever the time.

    Returns
    -------
    dict
        What was done: lines, batches, final loss, seconds.

    Raises
    ------
    napari_digits.engine.checkpoints.ModelFileError
        When ``base`` is not a field reader.
    """
    from napari_digits.synthetic_fields import (
        VARY_SLANT,
        VARY_WIDTH,
        digit_pool,
        make_fields,
        vary_lines,
    )

    start = time.perf_counter()
    model = _load_reader(base)
    rng = np.random.default_rng(seed)
    some = rng.choice(len(mnist.y_train), 2 * REPLAY_LINES, replace=False)
    pool, classes = digit_pool(mnist.x_train[some], mnist.y_train[some], rng)
    replay, replay_digits, replay_n = make_fields(
        pool, classes, REPLAY_LINES, seed=seed
    )
    width = max(digits.shape[1], replay_digits.shape[1])
    user_digits = _pad(digits, width)
    replay_digits = _pad(replay_digits, width)
    user_n = (digits >= 0).sum(axis=1)
    step = _ctc_step(
        model, keras.optimizers.Adam(FINETUNE_RATE), FINETUNE_BATCH, training=False
    )
    steps, loss = 0, float("nan")
    while True:
        done = fraction_done(steps, FINETUNE_STEPS, start, time_budget, batches)
        if done >= 1.0:
            break
        u = rng.integers(len(lines), size=FINETUNE_USER)
        r = rng.integers(REPLAY_LINES, size=FINETUNE_BATCH - FINETUNE_USER)
        loss = step(
            np.concatenate([_jitter(vary_lines(lines[u], rng), rng), replay[r]]),
            np.concatenate([user_digits[u], replay_digits[r]]),
            np.concatenate([user_n[u], replay_n[r]]),
            _cosine(FINETUNE_RATE, done),
        )
        steps += 1
    save_model(model, out)
    return {
        "from": str(base),
        "lines": len(lines),
        "steps": steps,
        "batch_size": FINETUNE_BATCH,
        "user_lines_a_batch": FINETUNE_USER,
        "user_lines_varied": {"width": VARY_WIDTH, "slant": VARY_SLANT},
        "learning_rate": FINETUNE_RATE,
        "final_loss": round(loss, 4),
        "wall_time_s": round(time.perf_counter() - start, 1),
    }


def _pad(digits: np.ndarray, width: int) -> np.ndarray:
    out = np.full((len(digits), width), -1, np.int32)
    out[:, : digits.shape[1]] = digits
    return out


def _jitter(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move each line by up to 2 rows and 3 columns (blank where it left)."""
    out = np.zeros_like(images)
    h, w = images.shape[1:]
    moves = rng.integers([-2, -3], [3, 4], size=(len(images), 2))
    for k, (dr, dc) in enumerate(moves):
        src = images[k, max(0, -dr) : h - max(0, dr), max(0, -dc) : w - max(0, dc)]
        r, c = max(0, dr), max(0, dc)
        out[k, r : r + src.shape[0], c : c + src.shape[1]] = src
    return out
