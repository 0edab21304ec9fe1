"""Models in the engine process: load, evaluate, predict, inspect, train.

TensorFlow and Keras are imported here: only the engine process (see
:mod:`napari_digits.engine.server`) and the command line, which has no Qt,
import this module. Every function takes a model *path* and keeps loaded
models in a small cache keyed by the file's path and modification time.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from napari_digits.current_model import model_file_problem, reader_path
from napari_digits.data import MnistError, load_mnist
from napari_digits.engine._tf import keras, tf
from napari_digits.engine.checkpoints import ModelFileError, nonfinite_weights
from napari_digits.engine.devices import DeviceError, device_scope
from napari_digits.engine.finetune import finetune
from napari_digits.engine.protocol import (
    ConvWeights,
    DeviceInfo,
    Evaluation,
    ModelInfo,
)
from napari_digits.engine.training import train
from napari_digits.scan.fields import FIELD_HEIGHT, FIELD_WIDTH

__all__ = [
    "DeviceError",
    "ModelFileError",
    "describe",
    "evaluate",
    "feature_maps",
    "finetune",
    "first_layer",
    "list_devices",
    "load_model",
    "predict",
    "train",
]

#: 28x28 images per call of the compiled inference function (fewer of larger
#: images: the same pixels a call)
PREDICT_BATCH = 2048


def load_model(model_path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras`` model (cached by path, modification time and size).

    Parameters
    ----------
    model_path : str or path-like
        The ``.keras`` file.

    Returns
    -------
    keras.Model
        The model, not compiled.

    Raises
    ------
    ModelFileError
        If the file is missing, is not a Keras model (another kind of file,
        a damaged one), or has NaN or infinite weights (a diverged training):
        such a model is never used.
    """
    problem = model_file_problem(model_path)
    if problem:
        raise ModelFileError(problem)
    path = Path(model_path).expanduser()
    stat = path.stat()
    return _load(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int) -> keras.Model:
    """Load ``path``; the modification time and size only key the cache."""
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged archive
        raise ModelFileError(
            f"{path} is not a Keras model: it cannot be read "
            f"({type(exc).__name__}: {str(exc)[:200]}). Choose another file or "
            "train a new model."
        ) from None
    bad = nonfinite_weights(model)
    if bad:
        raise ModelFileError(
            f"{path} has {bad:,} NaN or infinite weights (a training that "
            "diverged): it would answer nonsense, so it is not used. Choose "
            "another file or train a new model."
        )
    return model


def _classifier(model_path: str | os.PathLike) -> keras.Model:
    """Load a model and check that it maps 28x28x1 images to 10 classes."""
    model = load_model(model_path)
    if tuple(model.input_shape[1:]) != (28, 28, 1) or model.output_shape[-1] != 10:
        raise ModelFileError(
            f"{model_path} is not an MNIST digit classifier: its input is "
            f"{model.input_shape[1:]} (need (28, 28, 1)) and it has "
            f"{model.output_shape[-1]} outputs (need 10)."
        )
    return model


@lru_cache(maxsize=4)
def _compiled(model: keras.Model) -> tf.types.experimental.GenericFunction:
    """Return a compiled inference function of ``model`` (traced once)."""
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])


def as_model_input(images: np.ndarray) -> np.ndarray:
    """Convert ``(N, 28, 28[, 1])`` uint8 0..255 or float 0..1 to float32 NHWC.

    Parameters
    ----------
    images : numpy.ndarray
        The images, white ink on black like MNIST.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, 28, 28, 1)`` in 0..1.
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"expected images of shape (N, 28, 28), got {images.shape}")
    if np.issubdtype(images.dtype, np.integer):
        return (images.astype(np.float32) / 255.0)[..., None]
    return images.astype(np.float32, copy=False)[..., None]


def predict(model_path: str, images: np.ndarray) -> np.ndarray:
    """Return the class probabilities of ``images``.

    Parameters
    ----------
    model_path : str
        The ``.keras`` model.
    images : numpy.ndarray
        ``(N, 28, 28)``, uint8 in 0..255 or float in 0..1, white ink on black;
        or ``(N, FIELD_HEIGHT, FIELD_WIDTH)`` uint8 lines of digits, which
        the model's field reader reads
        (:func:`napari_digits.current_model.reader_path`).

    Returns
    -------
    numpy.ndarray
        float32 ``(N, 10)``, each row summing to 1; for lines, ``(N, FRAMES,
        11)`` per-frame probabilities.
    """
    if np.ndim(images) == 3 and np.shape(images)[1:] == (FIELD_HEIGHT, FIELD_WIDTH):
        model = load_model(reader_path(model_path))
        x = np.asarray(images, np.float32)[..., None] / 255.0
    else:
        model, x = _classifier(model_path), as_model_input(images)
    if len(x) == 0:
        return np.zeros((0, *model.output_shape[1:]), np.float32)
    run = _compiled(model)
    batch = max(1, PREDICT_BATCH * 28 * 28 // int(np.prod(x.shape[1:3])))
    parts = [
        run(tf.constant(x[i : i + batch])).numpy() for i in range(0, len(x), batch)
    ]
    return np.concatenate(parts).astype(np.float32, copy=False)


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Return the 10x10 confusion matrix (rows: true digit, columns: predicted)."""
    index = truth.astype(np.int64) * 10 + predicted.astype(np.int64)
    return np.bincount(index, minlength=100).reshape(10, 10)


def evaluate(
    model_path: str,
    mnist: str | None = None,
    limit: int | None = None,
    *,
    predictions: bool = False,
    download: bool = False,
) -> Evaluation:
    """Score a model on the MNIST test set.

    Parameters
    ----------
    model_path : str
        The ``.keras`` model.
    mnist : str, optional
        Where MNIST is (see :func:`napari_digits.data.load_mnist`).
    limit : int, optional
        Score only the first ``limit`` test images (at least 1).
    predictions : bool
        Also return every test digit's label and class probabilities.
    download : bool
        Download MNIST if it is nowhere (only when the user asked).

    Returns
    -------
    Evaluation
        Accuracy, confusion matrix and number of images.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a whole number of at least 1, not {limit}")
    _classifier(model_path)  # a bad model file fails before MNIST loads
    data = load_mnist(mnist, download=download).subset(test=limit)
    if len(data.y_test) == 0:
        raise MnistError(f"MNIST at {data.source} has no test images")
    probabilities = predict(model_path, data.x_test)
    confusion = confusion_matrix(data.y_test, probabilities.argmax(axis=1))
    accuracy = float(np.trace(confusion) / max(len(data.y_test), 1))
    extra = {}
    if predictions:
        extra = {"labels": np.array(data.y_test), "probabilities": probabilities}
    return Evaluation(
        accuracy=accuracy, confusion=confusion, count=len(data.y_test), **extra
    )


def _conv_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Return the model's 2D convolution layers, in order."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def first_layer(model_path: str) -> ConvWeights:
    """Return the weights of the model's first convolution layer.

    Parameters
    ----------
    model_path : str
        The ``.keras`` model.

    Returns
    -------
    ConvWeights
        Kernel ``(h, w, in, filters)``, bias, activation name and layer name.

    Raises
    ------
    ModelFileError
        If the model has no convolution layer.
    """
    model = load_model(model_path)
    convs = _conv_layers(model)
    if not convs:
        raise ModelFileError(f"{model_path} has no 2D convolution layer.")
    layer = convs[0]
    kernel, *rest = (np.asarray(w, np.float32) for w in layer.get_weights())
    bias = rest[0] if rest else np.zeros(kernel.shape[-1], np.float32)
    activation = layer.get_config().get("activation", "linear")
    return ConvWeights(kernel, bias, str(activation), layer.name)


def feature_maps(
    model_path: str, image: np.ndarray, depth: int = 1
) -> list[np.ndarray]:
    """Return the activations of the first ``depth`` convolution layers.

    Parameters
    ----------
    model_path : str
        The ``.keras`` model.
    image : numpy.ndarray
        A 2D image of any size at least the kernel's, float in 0..1 or uint8.
    depth : int
        How many convolution layers to go through.

    Returns
    -------
    list of numpy.ndarray
        One float32 ``(H', W', filters)`` array per layer, after the layer's
        activation (and the activation layer that follows a linear
        convolution), before pooling.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {image.shape}")
    if np.issubdtype(image.dtype, np.integer):
        image = image / 255.0
    stat = Path(model_path).stat()
    sub = _feature_model(str(model_path), stat.st_mtime_ns, depth)
    from napari_digits.learned_filters import check_feature_maps  # memory bound

    shapes = sub.compute_output_shape((1, *image.shape, 1))
    shapes = shapes if isinstance(shapes, list) else [shapes]
    check_feature_maps(image.shape, [shape[1:] for shape in shapes])
    try:
        outputs = sub(tf.constant(image[None, ..., None], tf.float32), training=False)
    except (ValueError, tf.errors.OpError) as exc:
        raise ValueError(
            f"image of shape {image.shape} is too small for this model's "
            f"first {depth} convolution layer(s)"
        ) from exc
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    return [np.asarray(out[0], np.float32) for out in outputs]


@lru_cache(maxsize=8)
def _feature_model(path: str, mtime_ns: int, depth: int) -> keras.Model:
    """Build a sub-model on a variable-size input giving conv activations."""
    model = load_model(path)
    if depth < 1 or depth > len(_conv_layers(model)):
        raise ValueError(
            f"depth must be between 1 and {len(_conv_layers(model))} for {path}"
        )
    inputs = keras.Input((None, None, 1))
    x, outputs, pending = inputs, [], False
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if len(outputs) == depth and not pending:
            break
        x = layer(x)
        if isinstance(layer, keras.layers.Conv2D):
            outputs.append(x)
            pending = layer.get_config().get("activation") == "linear"
        elif pending and isinstance(layer, keras.layers.Activation | keras.layers.ReLU):
            outputs[-1], pending = x, False
        elif pending and not isinstance(layer, keras.layers.BatchNormalization):
            pending = False
    return keras.Model(inputs, outputs[:depth])


def describe(model_path: str) -> ModelInfo:
    """Describe a model file: input shape, classes, layers and parameter count.

    Parameters
    ----------
    model_path : str
        The ``.keras`` model.

    Returns
    -------
    ModelInfo
        What the model expects and contains.
    """
    model = load_model(model_path)
    return ModelInfo(
        path=str(model_path),
        input_shape=tuple(model.input_shape),
        n_classes=int(model.output_shape[-1]),
        layers=tuple(
            f"{layer.name} ({type(layer).__name__})" for layer in model.layers
        ),
        params=int(model.count_params()),
    )


def list_devices() -> list[DeviceInfo]:
    """List the CPU and every GPU TensorFlow sees.

    Returns
    -------
    list of DeviceInfo
        ``CPU`` first, then ``GPU:0``, ``GPU:1``...
    """
    devices = [DeviceInfo("CPU", "CPU", f"{os.cpu_count()} cores")]
    for i, gpu in enumerate(tf.config.list_physical_devices("GPU")):
        details = tf.config.experimental.get_device_details(gpu)
        devices.append(DeviceInfo(f"GPU:{i}", "GPU", details.get("device_name", "")))
    return devices


def predict_on(device: str, model_path: str, images: np.ndarray) -> np.ndarray:
    """Run :func:`predict` on a chosen device (``"auto"``, ``"cpu"``, ``"GPU:0"``)."""
    with device_scope(device):
        return predict(model_path, images)
