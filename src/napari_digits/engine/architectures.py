"""The network architectures and their training recipes, by name.

Imports Keras: only the engine process (or a command-line process without Qt)
imports this module.

``tutorial``
    The seed tutorial, faithfully: conv 32@2x2 relu, max-pool 2, conv 64@2x2
    relu, max-pool 2, dense 1024 relu, dropout (keep probability 0.8), dense 10
    softmax; Adam with a constant learning rate of 0.01, batch 64, 10 epochs.
``default``
    A small batch-normalised convolutional network designed for accuracy per
    second on a 2-core CPU: conv 20@3x3 relu, max-pool 2, batch norm; conv
    40@3x3 relu, max-pool 2, batch norm; conv 80@3x3 relu ("valid", 5x5),
    batch norm; dropout 0.2, dense 10 softmax. Normalising after pooling
    costs a quarter of normalising before it; momentum 0.9 lets short runs
    settle their statistics.
    Adam on a one-cycle schedule (warm-up then cosine decay to zero), batch
    128, peak learning rate 0.005; runs of 8 epochs or more add random shifts
    of up to 2 pixels (augmentation slows the short 4-epoch recipe down).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from napari_digits.engine._tf import keras
from napari_digits.engine.protocol import ARCHITECTURES

layers = keras.layers


@dataclass(frozen=True)
class Recipe:
    """How to build and train one architecture.

    ``schedule`` is ``"constant"`` or ``"one-cycle"`` (linear warm-up over
    ``warmup`` of the steps from a tenth of the peak, then cosine decay to
    zero); ``shift`` is the largest random translation, in pixels, applied to
    training images (0: no augmentation) in runs of at least ``shift_from``
    epochs.
    """

    build: Callable[[], keras.Model]
    epochs: int
    batch_size: int
    learning_rate: float
    schedule: str = "constant"
    warmup: float = 0.2
    shift: float = 0.0
    shift_from: int = 0
    label_smoothing: float = 0.0


def build_tutorial() -> keras.Model:
    """Build the seed tutorial's network (tflearn's defaults: "same" padding).

    Returns
    -------
    keras.Model
        The uncompiled model, input ``(28, 28, 1)``, output 10 probabilities.
    """
    return keras.Sequential(
        [
            keras.Input((28, 28, 1), name="image"),
            layers.Conv2D(32, 2, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(2, padding="same", name="pool1"),
            layers.Conv2D(64, 2, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(2, padding="same", name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(1024, activation="relu", name="dense"),
            layers.Dropout(0.2, name="dropout"),
            layers.Dense(10, activation="softmax", dtype="float32", name="digits"),
        ],
        name="tutorial",
    )


def build_default(widths: tuple[int, int, int] = (20, 40, 80)) -> keras.Model:
    """Build the default network: three relu convolutions, batch norm, dense 10.

    Parameters
    ----------
    widths : tuple of int
        Filters of the three convolution layers.

    Returns
    -------
    keras.Model
        The uncompiled model, input ``(28, 28, 1)``, output 10 probabilities.
    """
    w1, w2, w3 = widths
    return keras.Sequential(
        [
            keras.Input((28, 28, 1), name="image"),
            layers.Conv2D(w1, 3, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.BatchNormalization(momentum=0.9, name="norm1"),
            layers.Conv2D(w2, 3, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.BatchNormalization(momentum=0.9, name="norm2"),
            layers.Conv2D(w3, 3, activation="relu", name="conv3"),
            layers.BatchNormalization(momentum=0.9, name="norm3"),
            layers.Flatten(name="flatten"),
            layers.Dropout(0.2, name="dropout"),
            layers.Dense(10, activation="softmax", dtype="float32", name="digits"),
        ],
        name="default",
    )


RECIPES: dict[str, Recipe] = {
    "tutorial": Recipe(build_tutorial, **asdict(ARCHITECTURES["tutorial"])),
    "default": Recipe(
        build_default,
        **asdict(ARCHITECTURES["default"]),  # 4 epochs: 99.39% (seed 0) in 58 s
        schedule="one-cycle",
        shift=2.0,
        shift_from=8,
    ),
}


def recipe(name: str) -> Recipe:
    """Return the recipe of the architecture called ``name``.

    Parameters
    ----------
    name : str
        ``"default"`` or ``"tutorial"``.

    Returns
    -------
    Recipe
        How to build and train it.

    Raises
    ------
    ValueError
        If there is no such architecture.
    """
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}: choose one of {', '.join(RECIPES)}"
        ) from None
