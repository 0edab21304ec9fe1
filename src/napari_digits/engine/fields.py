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
on a cosine from 0.001 to 0.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from napari_digits.engine._tf import keras, tf
from napari_digits.engine.checkpoints import save_model
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


def reader_path(model_path: str | os.PathLike) -> Path:
    """Return the field reader that goes with a classifier.

    ``<model>.fields.keras`` beside the classifier where there is one, else
    the one that ships in the package (``resources/fields.keras``).
    """
    own = Path(model_path).with_suffix(".fields.keras")
    if own.is_file():
        return own
    return Path(__file__).parent.parent / "resources" / "fields.keras"


def train(
    images: np.ndarray,
    digits: np.ndarray,
    lengths: np.ndarray,
    out: str | os.PathLike,
    *,
    steps: int = 4000,
    seed: int = 0,
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
    say : callable
        Called with a line of progress every 200 steps.

    Returns
    -------
    dict
        What was done: steps, final loss, wall and CPU seconds.
    """
    keras.utils.set_random_seed(seed)
    model = build()
    optimizer = keras.optimizers.Adam(1e-3)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, steps)
    frames = tf.fill([64], FRAMES)

    @tf.function
    def step(x, y, n, k):
        optimizer.learning_rate.assign(schedule(k))
        with tf.GradientTape() as tape:
            p = model(x, training=True)
            logits = tf.math.log(tf.maximum(p, 1e-8))
            loss = tf.reduce_mean(
                tf.nn.ctc_loss(
                    y, logits, n, frames, logits_time_major=False, blank_index=BLANK
                )
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    rng = np.random.default_rng(seed)
    start, cpu = time.perf_counter(), time.process_time()
    loss = float("nan")
    for k in range(steps):
        batch = rng.integers(len(images), size=64)
        x = images[batch, :, :, None].astype(np.float32) / 255.0
        y = np.maximum(digits[batch], 0)
        loss = float(
            step(
                tf.constant(x),
                tf.constant(y),
                tf.constant(lengths[batch]),
                tf.constant(k),
            )
        )
        if (k + 1) % 200 == 0:
            seconds = time.perf_counter() - start
            say(f"step {k + 1}/{steps}: loss {loss:.3f}, {seconds:.0f} s")
    save_model(model, out)
    return {
        "steps": steps,
        "batch_size": 64,
        "final_loss": round(loss, 4),
        "train_wall_time_s": round(time.perf_counter() - start, 1),
        "cpu_time_s": round(time.process_time() - cpu, 1),
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU, tensorflow "
        f"{tf.__version__}, Keras {keras.__version__}, "
        f"Python {platform.python_version()}",
    }
