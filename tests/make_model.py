"""Tiny Keras models for the learned-filters tests, built in a subprocess.

TensorFlow must never load in the pytest/viewer process, so the tests run this
file with ``sys.executable`` (see :func:`build_models`) and only read the
``.keras`` files it writes.

Run by hand: ``python tests/make_model.py OUT_DIR`` writes every model of
:data:`MODELS` into ``OUT_DIR`` (about 10 s, mostly importing TensorFlow),
each with a ``NAME.npz`` of its first layer's weights as Keras reads them back
(``kernel``, ``bias``, ``activation``, ``padding``): the tests' ground truth.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

#: name -> (input shape, first layer: filters, size, activation, padding, conv2?)
MODELS = {
    "conv2x2": ((28, 28, 1), (6, 2, "relu", "same"), True),
    "conv3x3": ((28, 28, 1), (8, 3, "relu", "valid"), True),
    "conv5x5": ((28, 28, 1), (3, 5, "tanh", "valid"), False),
    "rgb3x3": ((28, 28, 3), (4, 3, "relu", "valid"), False),
    "sobel_gauss": ((28, 28, 1), (2, 3, "linear", "valid"), False),
}
#: a model without any convolution layer
DENSE = "dense"


def sobel_gauss_weights() -> tuple[np.ndarray, np.ndarray]:
    """Keras weights whose filters compute the Sobel x and Gaussian convolutions.

    Keras correlates, so each classic kernel is stored flipped (rotated 180
    degrees); the bias is zero.
    """
    from napari_digits.kernels import classic_kernels

    catalogue = classic_kernels(3)
    kernel = np.stack([np.flip(catalogue["sobel_x"]), np.flip(catalogue["gaussian"])])
    return np.moveaxis(kernel, 0, -1)[:, :, None, :].astype(np.float32), np.zeros(2)


def _build(name: str, spec) -> object:  # pragma: no cover - runs in a subprocess
    import keras

    keras.utils.set_random_seed(0)
    shape, (filters, size, activation, padding), second = spec
    layers = [
        keras.Input(shape),
        keras.layers.Conv2D(filters, size, activation=activation, padding=padding),
    ]
    if second:
        layers += [
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(5, 2, activation="relu"),
        ]
    layers += [keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers, name=name)
    conv = model.layers[0]
    kernel, bias = conv.get_weights()
    if name == "sobel_gauss":
        kernel, bias = sobel_gauss_weights()
    else:  # a non-zero bias, so that the tests check it is added
        bias = np.linspace(-0.2, 0.2, bias.size)
    conv.set_weights([kernel, bias.astype(np.float32)])
    return model


def main(out: str) -> None:  # pragma: no cover - runs in a subprocess
    """Write every test model into ``out``."""
    import keras

    Path(out).mkdir(parents=True, exist_ok=True)
    for name, spec in MODELS.items():
        model = _build(name, spec)
        model.save(Path(out) / f"{name}.keras")
        kernel, bias = model.layers[0].get_weights()
        activation = model.layers[0].get_config()["activation"]
        padding = model.layers[0].get_config()["padding"]
        np.savez(Path(out) / f"{name}.npz", kernel=kernel, bias=bias,
                 activation=activation, padding=padding)  # fmt: skip
    dense = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    dense.save(Path(out) / f"{DENSE}.keras")


def build_models(out: Path) -> Path:
    """Build the models into ``out`` in a subprocess, once (reuse if present)."""
    if not (out / f"{DENSE}.keras").exists():
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        subprocess.run(
            [sys.executable, __file__, str(out)], check=True, timeout=300, env=env
        )
    return out


def first_layer(out: Path, name: str):
    """Return a test model's first layer, read back by Keras, as ConvWeights."""
    from napari_digits.engine.protocol import ConvWeights

    saved = np.load(out / f"{name}.npz")
    return ConvWeights(saved["kernel"], saved["bias"], str(saved["activation"]))


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1])
