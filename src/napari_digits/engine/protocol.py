"""The typed protocol between the viewer and the engine process.

Requests go in, events come out. Every message is a small frozen dataclass of
plain Python values and numpy arrays, so it pickles across the process
boundary. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
import numbers
import pickle
from dataclasses import dataclass, field

import numpy as np

# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    """A compute device TensorFlow sees: ``name`` is ``"CPU"`` or ``"GPU:0"``..."""

    name: str
    kind: str  # "CPU" or "GPU"
    description: str = ""


@dataclass(frozen=True)
class ConvWeights:
    """The weights of one convolution layer.

    ``kernel`` has shape ``(height, width, in_channels, filters)`` (Keras
    order), ``bias`` shape ``(filters,)``; ``activation`` is the Keras name of
    the layer's activation (``"relu"``, ``"linear"``...).
    """

    kernel: np.ndarray
    bias: np.ndarray
    activation: str = "linear"
    layer_name: str = ""


@dataclass(frozen=True)
class TrainingProgress:
    """Where a training run stands, sent every few batches and at epoch ends.

    ``epoch`` counts from 1. ``test_accuracy`` and ``checkpoint`` are set only
    on the event that ends an epoch (``epoch_end`` is True); ``first_layer``
    too, so that a view of the filters can follow a training without a
    second request to the busy engine.
    """

    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    accuracy: float | None = None
    elapsed: float = 0.0
    eta: float | None = None
    epoch_end: bool = False
    test_accuracy: float | None = None
    checkpoint: str | None = None
    first_layer: ConvWeights | None = None


@dataclass(frozen=True)
class TrainingResult:
    """The outcome of a finished (or stopped) training run."""

    model_path: str
    epochs_done: int
    test_accuracy: float | None
    wall_time: float
    stopped: bool = False
    history: dict[str, list[float]] = field(default_factory=dict)
    architecture: str = ""


@dataclass(frozen=True)
class Evaluation:
    """Test-set accuracy and the 10x10 confusion matrix (rows: true digit).

    ``labels`` (N,) and ``probabilities`` (N, 10) float32 of each test digit
    are set when the request asked for the predictions.
    """

    accuracy: float
    confusion: np.ndarray
    count: int
    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What a model expects and contains."""

    path: str
    input_shape: tuple[int | None, ...]
    n_classes: int
    layers: tuple[str, ...]
    params: int


@dataclass(frozen=True)
class Hyperparameters:
    """An architecture's own training defaults (what ``None`` in TrainConfig means)."""

    epochs: int
    batch_size: int
    learning_rate: float


#: the architectures the engine trains, with their defaults; the engine's
#: recipes and the Training widget's form both read this one table
ARCHITECTURES: dict[str, Hyperparameters] = {
    "default": Hyperparameters(epochs=4, batch_size=128, learning_rate=5e-3),
    "tutorial": Hyperparameters(epochs=10, batch_size=64, learning_rate=0.01),
}


# --------------------------------------------------------------------------
# requests
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Ping:
    """Ask the engine whether it is alive; the result is its process id."""


@dataclass(frozen=True)
class ListDevices:
    """List the devices TensorFlow sees; the result is a list of DeviceInfo."""


class ConfigError(ValueError):
    """A request's value is out of range; the message names it and the range."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, checked when it is made.

    ``None`` for architecture, epochs, batch size, learning rate or seed means
    the architecture's own default (``"default"``, seed 0) for a new run, and
    the checkpoint's value for a resumed one. ``train_limit``/``test_limit``
    take the first N images (for quick runs and tests). ``resume`` continues
    from ``out``'s checkpoint, with the architecture and recipe recorded in
    its sidecar. ``download`` allows fetching MNIST when it is not found.

    Raises
    ------
    ConfigError
        When a value is out of range (see :meth:`validate`).
    """

    out: str
    architecture: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    device: str = "auto"  # "auto", "cpu", "gpu" or a name from ListDevices
    mixed_precision: bool = False
    mnist: str | None = None
    seed: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    resume: bool = False
    time_budget: float | None = None  # seconds of training, then stop cleanly
    augment: bool = False  # real-paper augmentation and printed digits (augment.py)
    download: bool = False
    continental: bool = False  # with augment: 1s, 7s, 0s in continental styles too
    init: str | None = None  # start from this model's weights, not random ones
    # with augment: batch-norm statistics of scan-like batches, not clean MNIST
    scan_statistics: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse values that cannot mean a training (before anything runs).

        The engine calls it again on every request it receives, since an
        unpickled config skips ``__init__``.

        Raises
        ------
        ConfigError
            Naming the first value out of range and the range it must be in.
        """
        if not isinstance(self.out, str) or not self.out.endswith(".keras"):
            raise ConfigError(
                f"the output {self.out!r} must be a path ending in .keras"
            )
        if self.architecture is not None and self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"unknown architecture {self.architecture!r}: choose one of "
                f"{', '.join(ARCHITECTURES)}"
            )
        for name in ("epochs", "batch_size", "train_limit", "test_limit"):
            _check_count(name, getattr(self, name))
        _check_positive("learning_rate", self.learning_rate)
        _check_positive("time_budget", self.time_budget)
        if self.seed is not None and not (
            _is_int(self.seed) and 0 <= self.seed < 2**32
        ):
            raise ConfigError(
                f"seed must be an integer from 0 to 2**32-1, not {self.seed!r}"
            )
        if self.continental and not self.augment:
            raise ConfigError("--continental redraws augmented digits: add --augment")
        if self.scan_statistics and not self.augment:
            raise ConfigError(
                "--scan-statistics re-estimates the statistics of augmented "
                "batches: add --augment"
            )
        if self.init is not None and (
            not isinstance(self.init, str) or not self.init.endswith(".keras")
        ):
            raise ConfigError(f"--init {self.init!r} must be a .keras model file")
        if not isinstance(self.device, str) or not self.device.strip():
            raise ConfigError(
                f"device must be a name such as auto or cpu, not {self.device!r}"
            )


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_count(name: str, value: object) -> None:
    """Refuse a count that is not a whole number of at least 1 (None passes)."""
    if value is not None and not (_is_int(value) and value >= 1):
        flag = name.replace("_", "-")
        raise ConfigError(f"{flag} must be a whole number of at least 1, not {value!r}")


def _check_positive(name: str, value: object) -> None:
    """Refuse a number that is not finite and above 0 (None passes)."""
    if value is None:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        flag = name.replace("_", "-")
        raise ConfigError(f"{flag} must be a finite number above 0, not {value!r}")


@dataclass(frozen=True)
class Train:
    """Train a model; streams TrainingProgress, returns a TrainingResult."""

    config: TrainConfig


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tune a model on a user's own digits, MNIST replayed.

    ``images`` are ``(N, 28, 28)`` uint8 crops (white ink on black) and
    ``labels`` their digits; ``corrected`` flags the ones the user corrected
    (the others were read with high confidence). ``lines`` are ``(M, 32,
    192)`` uint8 short lines as the field reader reads them and
    ``line_digits`` their digits, ``(M, L)`` padded with -1
    (:meth:`napari_digits.corrections.LearningSet.line_arrays`): where there
    are some, the field reader is fine-tuned too. ``provenance`` is recorded
    as is in the new model's sidecar (which files, how many corrections).
    ``batches``, where set, makes the run the same on any machine: the
    classifier and the field reader each train exactly that many batches and
    ``time_budget`` is ignored.
    """

    base: str
    out: str
    images: np.ndarray
    labels: np.ndarray
    corrected: np.ndarray
    mnist: str | None = None
    seed: int = 0
    time_budget: float = (
        45.0  # seconds of training (loading and the MNIST check come on top)
    )
    learning_rate: float = 0.01  # SGD with momentum 0.9, cosine decay
    batch_size: int = 64
    replay: float = 0.95  # fraction of each batch drawn from MNIST
    provenance: dict = field(default_factory=dict)
    lines: np.ndarray | None = None
    line_digits: np.ndarray | None = None
    batches: int | None = None  # a fixed number of batches instead of the time


@dataclass(frozen=True)
class FinetuneResult:
    """The fine-tuned model: where, how long, its MNIST test accuracy."""

    model_path: str
    steps: int
    wall_time: float
    test_accuracy: float
    corrected: int
    confident: int
    lines: int = 0  # short lines the field reader learnt


@dataclass(frozen=True)
class Finetune:
    """Fine-tune a model (see FinetuneConfig); returns a FinetuneResult."""

    config: FinetuneConfig


@dataclass(frozen=True)
class Evaluate:
    """Evaluate a saved model on the MNIST test set; returns an Evaluation.

    With ``predictions`` the Evaluation carries every test digit's label and
    class probabilities too (what the viewer's teaching view shows).
    """

    model: str
    mnist: str | None = None
    limit: int | None = None
    predictions: bool = False
    download: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse a limit below 1 (see :class:`TrainConfig`)."""
        _check_count("limit", self.limit)


@dataclass(frozen=True)
class Predict:
    """Class probabilities for images.

    ``images`` is ``(N, 28, 28)``, uint8 in 0..255 or float in 0..1, white ink
    on black like MNIST. The result is a float32 array ``(N, 10)``. Lines of
    digits, uint8 ``(N, 32, 192)`` (:func:`napari_digits.scan.fields.field_image`),
    are read by the model's field reader: ``(N, 48, 11)`` per-frame
    probabilities.
    """

    model: str
    images: np.ndarray


@dataclass(frozen=True)
class GetFirstLayer:
    """The model's first convolution layer; returns ConvWeights."""

    model: str


@dataclass(frozen=True)
class FeatureMaps:
    """Activations of the first ``depth`` convolution layers for one image.

    ``image`` is 2D float in 0..1 (any size at least the kernel's). The result
    is a list of float32 arrays ``(H', W', filters)``, one per layer, taken
    after the layer's activation, before pooling.
    """

    model: str
    image: np.ndarray
    depth: int = 1


@dataclass(frozen=True)
class Describe:
    """Describe a model file; returns ModelInfo."""

    model: str


@dataclass(frozen=True)
class Shutdown:
    """End the engine's main loop: the process exits cleanly; no result."""


Request = (
    Ping
    | ListDevices
    | Train
    | Finetune
    | Evaluate
    | Predict
    | GetFirstLayer
    | FeatureMaps
    | Describe
    | Shutdown
)

# --------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """A progress event of a running request."""

    progress: TrainingProgress


@dataclass(frozen=True)
class Log:
    """A line of text for the user."""

    message: str


@dataclass(frozen=True)
class Result:
    """The final value of a request."""

    value: object


@dataclass(frozen=True)
class Failure:
    """A request failed; ``error`` names the exception type in the engine."""

    error: str
    message: str


Event = Progress | Log | Result | Failure


# --------------------------------------------------------------------------
# the wire
# --------------------------------------------------------------------------


class UnreadableRequest(ValueError):
    """The engine received a message it cannot unpickle or understand."""


def pack(request: object) -> bytes:
    """Pickle a request for the pipe (the client sends ``(id, pack(request))``).

    The request travels pickled inside the ``(id, bytes)`` message, so that
    the engine always learns the request's id, and can answer with a Failure,
    even when the request itself cannot be unpickled there.
    """
    return pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(message: object) -> tuple[int | None, object]:
    """Open a message from the pipe: return ``(request_id, request)``.

    Raises
    ------
    UnreadableRequest
        If the message is not ``(int, bytes)`` or the bytes do not unpickle;
        its ``request_id`` attribute is the id when it could be read.
    """
    if not (
        isinstance(message, tuple)
        and len(message) == 2
        and isinstance(message[0], int)
        and isinstance(message[1], bytes)
    ):
        raise UnreadableRequest(
            f"the engine received a malformed message ({type(message).__name__}), "
            "not a request"
        )
    request_id, payload = message
    try:
        return request_id, pickle.loads(payload)
    except Exception as exc:  # unpickling can raise anything the payload asks
        error = UnreadableRequest(
            f"the engine could not read request {request_id} "
            f"({type(exc).__name__}: {exc})"
        )
        error.request_id = request_id
        raise error from None
