"""The training loop: data pipeline, schedule, progress, stop, checkpoints.

Imports TensorFlow: runs only in the engine process or a command-line process
without Qt. The public entry point is :func:`train` (re-exported by
:mod:`napari_digits.engine.models`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from napari_digits.data import Mnist, MnistError, load_mnist
from napari_digits.engine._tf import keras, tf
from napari_digits.engine.architectures import Recipe, recipe
from napari_digits.engine.checkpoints import (
    ModelFileError,
    OutputLock,
    check_room,
    model_bytes,
    nonfinite_weights,
    read_state,
    remove_stale_temporaries,
    save_model,
    write_state,
)
from napari_digits.engine.devices import device_scope
from napari_digits.engine.protocol import (
    ConvWeights,
    TrainConfig,
    TrainingProgress,
    TrainingResult,
)
from napari_digits.engine.resume import new_run, resumed_run
from napari_digits.io import check_output

#: seconds between two progress events (the epoch end always sends one)
PROGRESS_INTERVAL = 0.25
#: runs shorter than this many batches settle batch-norm statistics each epoch
SETTLE_BELOW = 300


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the run stopped without saving it."""


def learning_rate(progress: float, peak: float, r: Recipe) -> float:
    """Return the learning rate at ``progress`` (0..1) of the recipe's schedule.

    Parameters
    ----------
    progress : float
        The fraction of the run done: steps done over all steps, or, with a
        time budget, the larger of that and the fraction of the budget spent
        (so that a run always anneals by the end of its budget).
    peak : float
        The peak (or constant) learning rate.
    r : Recipe
        The recipe, whose ``schedule`` and ``warmup`` apply.

    Returns
    -------
    float
        The learning rate.
    """
    if r.schedule == "constant":
        return peak
    if progress < r.warmup:
        return peak * (0.1 + 0.9 * progress / r.warmup)
    decay = min(1.0, (progress - r.warmup) / max(1e-9, 1 - r.warmup))
    return peak * 0.5 * (1 + math.cos(math.pi * decay))


def shift_images(images: tf.Tensor, labels: tf.Tensor, shift: float):
    """Translate each image by a random sub-pixel offset of up to ``shift`` px."""
    n = tf.shape(images)[0]
    d = tf.random.uniform((n, 2), -shift, shift)
    one, zero = tf.ones((n, 1)), tf.zeros((n, 1))
    transforms = tf.concat([one, zero, d[:, :1], zero, one, d[:, 1:], zero, zero], 1)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return images, labels


def to_float(images: np.ndarray) -> np.ndarray:
    """Return uint8 images as float32 ``(N, 28, 28, 1)`` in 0..1."""
    return (images.astype(np.float32) / 255.0)[..., None]


def make_dataset(
    data: Mnist,
    r: Recipe,
    batch_size: int,
    seed: int,
    epochs: int,
    augment: bool = False,
    continental: bool = False,
) -> tf.data.Dataset:
    """Shuffled, batched training batches with one-hot labels.

    Runs of at least ``r.shift_from`` epochs get random shifts (a parallel
    map over whole batches, prefetched so the cores never wait for data).
    ``augment`` adds printed digits of the system fonts (one for every ten
    MNIST images) and makes half of each batch look like real scans
    (:func:`napari_digits.augment.augment_batch`, seeded by ``seed``);
    ``continental`` gives it the labels, so that some 1s, 7s and 0s are
    redrawn in continental styles (:func:`napari_digits.augment.continental`).
    """
    x_train, y_train = data.x_train, data.y_train
    if augment:
        x_train, y_train = _with_fonts(x_train, y_train, seed)
    x, y = to_float(x_train), np.eye(10, dtype=np.float32)[y_train]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
    ds = ds.batch(batch_size, drop_remainder=True)
    if augment:
        ds = ds.enumerate().map(
            lambda i, xy: _augmented(i, xy, seed, continental), num_parallel_calls=2
        )
    if r.shift > 0 and epochs >= r.shift_from:
        ds = ds.map(
            lambda a, b: shift_images(a, b, r.shift),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def _with_fonts(x: np.ndarray, y: np.ndarray, seed: int) -> tuple:
    from napari_digits import augment

    rng = np.random.default_rng([seed, 10])
    fx, fy = augment.font_digits(augment.font_files(), len(x) // 10, rng)
    return np.concatenate([x, fx]), np.concatenate([y, fy])


def _augmented(i: tf.Tensor, xy: tuple, seed: int, continental: bool) -> tuple:
    """Augment one batch in numpy (a tf.data map).

    Seeded by the run's seed, the batch's index and its images: the shuffle
    differs each epoch, and so do the distortions.
    """
    import zlib

    from napari_digits import augment

    def run(index, images, onehot):
        rng = np.random.default_rng([seed, int(index), zlib.crc32(images.tobytes())])
        labels = np.argmax(onehot, axis=1) if continental else None
        return augment.augment_batch(images[..., 0], rng, labels=labels)[..., None]

    x, y = xy
    out = tf.numpy_function(run, [i, x, y], tf.float32, stateful=True)
    return tf.ensure_shape(out, x.shape), y


def test_accuracy(model: keras.Model, data: Mnist, batch: int = 2000) -> float:
    """Return the model's accuracy on ``data``'s test set."""
    if len(data.y_test) == 0:
        return float("nan")
    spec = tf.TensorSpec((None, 28, 28, 1), tf.float32)
    infer = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    x = to_float(data.x_test)
    correct = 0
    for i in range(0, len(x), batch):
        p = infer(tf.constant(x[i : i + batch])).numpy()
        correct += int(np.sum(np.argmax(p, axis=1) == data.y_test[i : i + batch]))
    return correct / len(x)


def reestimate_batch_norm(
    model: keras.Model,
    data: Mnist,
    seed: int,
    *,
    scans: bool = False,
    passes: int = 300,
) -> None:
    """Re-estimate batch-norm statistics after an augmented run.

    The moving statistics of a run with ``augment`` describe the last few
    dozen half-distorted batches; ``passes`` forward passes of 256 training
    digits (drawn with ``seed``) in training mode set them from many more
    (the weights are not touched). Clean digits gave +0.04 points of MNIST test
    accuracy and, with the reader of the time, better real-set readings on
    ``bench/run.py real``. With ``scans``, half of each batch is made to look
    like real scans as the run trained (continental styles included): with
    the field reader, the shipped model's five seeds read ORAND-CAR-A
    ``train`` 87.44% -> 87.53% on average, no seed worse, MNIST unchanged.
    """
    from napari_digits import augment

    rng = np.random.default_rng(seed)
    for _ in range(passes):
        pick = rng.integers(0, len(data.x_train), 256)
        x = data.x_train[pick]
        if scans:
            x = augment.augment_batch(x, rng, labels=data.y_train[pick])
        model(to_float(x), training=True)


def settle_batch_norm(model: keras.Model, data: Mnist, passes: int = 32) -> None:
    """Bring batch-norm moving statistics up to date after a short run.

    Moving averages start at mean 0, variance 1 and need a few dozen batches
    to forget that; a run of a few batches (tests, quick looks) would otherwise
    be evaluated with wrong statistics. Forward passes in training mode update
    them without touching the weights.
    """
    norms = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    if not norms or len(data.x_train) == 0:
        return
    x = to_float(data.x_train[:4096])
    for i in range(passes):
        start = (i * 128) % max(1, len(x) - 127)
        model(x[start : start + 128], training=True)


def conv_weights(model: keras.Model) -> ConvWeights | None:
    """Return the first convolution layer's weights, or None."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = (np.array(w, np.float32) for w in layer.get_weights()[:2])
            act = str(layer.get_config().get("activation", "linear"))
            return ConvWeights(kernel, bias, act, layer.name)
    return None


class _Monitor(keras.callbacks.Callback):
    """Sets the learning rate, reports progress, stops, checkpoints each epoch."""

    def __init__(self, run: _Run) -> None:
        super().__init__()
        self.run = run
        self.last = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        run = self.run
        rate = learning_rate(run.progress(batch), run.peak, run.recipe)
        self.model.optimizer.learning_rate.assign(rate)

    def on_train_batch_end(self, batch, logs=None):
        run = self.run
        run.batch = batch + 1
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):  # the weights are lost: keep the last save
            run.diverged = (
                f"the loss became {loss} at epoch {run.epoch + 1}, batch {batch + 1}"
            )
            self.model.stop_training = True
            return
        if run.should_stop() or run.over_budget():
            run.stopped = True
            self.model.stop_training = True
        now = time.perf_counter()
        if now - self.last >= PROGRESS_INTERVAL or batch == 0:
            self.last = now
            run.report(logs or {})

    def on_epoch_begin(self, epoch, logs=None):
        self.run.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        bad = nonfinite_weights(self.model) if self.run.diverged is None else 0
        if bad:  # a finite loss can hide weights that overflowed
            self.run.diverged = (
                f"{bad:,} weights became NaN or infinite in epoch {epoch + 1}"
            )
            self.model.stop_training = True
        if self.run.diverged is None:
            self.run.end_epoch(self.model, logs or {})


class _Run:
    """The state of one training run (what the callback reads and updates)."""

    def __init__(self, config, r, data, batches, start_epoch, history, hooks):
        self.config, self.recipe, self.data = config, r, data
        self.on_progress, self.should_stop, self.log = hooks
        self.epochs, self.peak = config.epochs, config.learning_rate
        self.batches, self.epoch, self.batch = batches, start_epoch, 0
        self.total_steps = self.epochs * batches
        self.start_epoch, self.epochs_done = start_epoch, start_epoch
        self.history = history
        self.stopped = False
        self.diverged: str | None = None  # what went wrong, once it has
        self.saved = False  # whether this run wrote a checkpoint
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.eval_time = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def progress(self, batch: int) -> float:
        """Fraction of the run done before ``batch`` (steps or time budget)."""
        done = (self.epoch * self.batches + batch) / max(1, self.total_steps)
        budget = self.config.time_budget
        if budget:
            done = max(done, (self.elapsed() - self.eval_time) / budget)
        return done

    def over_budget(self) -> bool:
        budget = self.config.time_budget
        return budget is not None and self.elapsed() - self.eval_time >= budget

    def eta(self) -> float | None:
        done = (self.epoch - self.start_epoch) * self.batches + self.batch
        left = (self.epochs - self.epoch) * self.batches - self.batch
        return self.elapsed() / done * left if done else None

    def report(self, logs: dict, **extra) -> None:
        acc = logs.get("accuracy")
        self.on_progress(
            TrainingProgress(
                epoch=self.epoch + 1,
                epochs=self.epochs,
                batch=self.batch,
                batches=self.batches,
                loss=float(logs.get("loss", float("nan"))),
                accuracy=None if acc is None else float(acc),
                elapsed=self.elapsed(),
                eta=extra.pop("eta", self.eta()),
                **extra,
            )
        )

    def end_epoch(self, model: keras.Model, logs: dict) -> None:
        tick = time.perf_counter()
        if self.epoch * self.batches + self.batch < SETTLE_BELOW:
            settle_batch_norm(model, self.data)
        accuracy = test_accuracy(model, self.data)
        self.eval_time += time.perf_counter() - tick
        complete = self.batch >= self.batches
        self.epochs_done = self.epoch + 1 if complete else self.epoch
        for key, value in (
            ("loss", logs.get("loss")),
            ("accuracy", logs.get("accuracy")),
            ("test_accuracy", accuracy),
            ("time", self.elapsed()),
            ("train_time", self.elapsed() - self.eval_time),
            ("cpu_time", time.process_time() - self.cpu_start),
        ):
            self.history.setdefault(key, []).append(float(value or 0.0))
        self.save(model)
        self.log(
            f"epoch {self.epoch + 1}/{self.epochs}"
            f"{'' if complete else ' (stopped)'}: test accuracy {accuracy:.4f}, "
            f"{self.elapsed():.1f} s"
        )
        self.report(
            logs,
            epoch_end=True,
            test_accuracy=accuracy,
            checkpoint=self.config.out,
            first_layer=conv_weights(model),
            eta=self.eta() if not self.stopped else 0.0,
        )

    def save(self, model: keras.Model) -> None:
        save_model(model, self.config.out)
        state = {
            "architecture": self.config.architecture,
            "epochs_done": self.epochs_done,
            "epochs": self.epochs,
            "config": asdict(self.config),
            "history": self.history,
        }
        write_state(state, self.config.out)
        self.saved = True


def _prepare(config: TrainConfig, r: Recipe, device: str, log) -> keras.Model:
    """Build the compiled model, start from ``init``'s, or reload a resumed run's."""
    if config.resume:
        return _checked_model(config.out, "resume from", compile=True)
    if config.init:
        model = _checked_model(config.init, "start from", compile=False)
        if [w.shape for w in model.weights] != [w.shape for w in r.build().weights]:
            raise ModelFileError(
                f"cannot start from {config.init}: it is not a "
                f"{config.architecture} network (--model)"
            )
        log(f"starting from the weights of {config.init}")
    else:
        mixed = config.mixed_precision and device.startswith("/GPU")
        if config.mixed_precision and not mixed:
            log("mixed precision needs a GPU: training in float32")
        previous = keras.mixed_precision.global_policy()
        policy = "mixed_float16" if mixed else "float32"
        keras.mixed_precision.set_global_policy(policy)
        try:
            model = r.build()
        finally:
            keras.mixed_precision.set_global_policy(previous)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=r.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def _checked_model(path: str, doing: str, *, compile: bool) -> keras.Model:
    """Load a model to resume or start from; ModelFileError naming it if bad."""
    try:
        model = keras.models.load_model(Path(path), compile=compile)
    except Exception as exc:  # Keras raises many types for a bad file
        raise ModelFileError(
            f"cannot {doing} {path}: it is not a readable Keras model "
            f"({type(exc).__name__})"
        ) from None
    if nonfinite_weights(model):
        raise ModelFileError(f"cannot {doing} {path}: it has NaN or infinite weights")
    return model


def _training_data(config: TrainConfig) -> Mnist:
    """Load MNIST as the config says; refuse an empty training or test set."""
    data = load_mnist(config.mnist, download=config.download)
    data = data.subset(config.train_limit, config.test_limit)
    for part, images in (("training", data.x_train), ("test", data.x_test)):
        if len(images) == 0:
            raise MnistError(f"MNIST at {data.source} has no {part} images")
    return data


def _resolve(config: TrainConfig) -> tuple[TrainConfig, dict]:
    """Return the complete config of this run and its checkpoint's state."""
    if not config.resume:
        return new_run(config), {}
    if not Path(config.out).is_file():
        raise ModelFileError(
            f"no checkpoint to resume at {config.out}: start a new training instead."
        )
    state = read_state(config.out)
    return resumed_run(config, state), state


def train(
    config: TrainConfig,
    *,
    on_progress: Callable[[TrainingProgress], None],
    should_stop: Callable[[], bool],
    log: Callable[[str], None],
) -> TrainingResult:
    """Train a model on MNIST as ``config`` says; checkpoint after every epoch.

    Parameters
    ----------
    config : TrainConfig
        Architecture, epochs, batch size, learning rate, device, output path...
    on_progress : callable
        Called every few batches (at most every 0.25 s) and at each epoch's end.
    should_stop : callable
        Polled after every batch; when it returns True the run ends after that
        batch, saving the weights.
    log : callable
        Receives lines of text for the user.

    Returns
    -------
    TrainingResult
        Where the model is, how many full epochs were done, its test accuracy;
        ``stopped`` is True when ``should_stop`` or the time budget ended the
        run early. The history's times start again at 0 on a resumed run.

    Raises
    ------
    ConfigError
        If a value is out of range, or contradicts the checkpoint to resume.
    OutputError
        If the output is a folder, its folder is missing or read-only, the
        disk or the file-size limit has no room for the model, a checkpoint
        cannot be written, or another training writes the same output.
    DeviceError
        If the device does not exist.
    ModelFileError
        If ``resume`` is set and the checkpoint or its sidecar is missing or
        damaged.
    TrainingDiverged
        If the loss became NaN or infinite: the run stopped, its last good
        checkpoint (if any) is kept.
    napari_digits.data.MnistError
        If MNIST cannot be loaded, or a set is empty.
    """
    config.validate()  # again: an unpickled request skipped __init__
    check_output(
        config.out, inputs=[config.init] if config.init else [], what="the output"
    )
    with OutputLock(config.out):
        remove_stale_temporaries(config.out)
        run = _train(config, on_progress, should_stop, log)
    if run.diverged is not None:
        kept = (
            f"{config.out} holds the checkpoint of epoch {run.epochs_done}"
            if run.saved or config.resume
            else f"{config.out} was not written (a file there before is unchanged)"
        )
        raise TrainingDiverged(
            f"{run.diverged}: training stopped; {kept}. Try a lower learning rate."
        )
    accuracies = run.history.get("test_accuracy") or [None]
    return TrainingResult(
        model_path=str(config.out),
        epochs_done=run.epochs_done,
        test_accuracy=accuracies[-1],
        wall_time=run.elapsed(),
        stopped=run.stopped,
        history=run.history,
        architecture=run.config.architecture,
    )


def _train(config, on_progress, should_stop, log) -> _Run:
    """Run the training of ``train`` once its output is locked."""
    config, state = _resolve(config)
    keras.utils.set_random_seed(config.seed)
    r = recipe(config.architecture)
    with device_scope(config.device) as device:
        model = _prepare(config, r, device, log)
        check_room(config.out, model_bytes(model))  # before the long part
        data = _training_data(config)
        batch_size = min(config.batch_size, len(data.x_train))
        if batch_size < config.batch_size:
            log(f"batch size {batch_size}: the training set has no more images")
        start = int(state.get("epochs_done", 0))
        if config.resume:
            log(f"resuming {config.out} after epoch {start}")
        log(f"training {config.architecture} on {device} ({len(data.x_train)} images)")
        dataset = make_dataset(
            data,
            r,
            batch_size,
            config.seed,
            config.epochs,
            config.augment,
            config.continental,
        )
        batches = len(dataset)
        hooks = (on_progress, should_stop, log)
        run = _Run(
            config, r, data, batches, start, dict(state.get("history", {})), hooks
        )
        model.fit(
            dataset,
            epochs=run.epochs,
            initial_epoch=start,
            verbose=0,
            shuffle=False,  # the dataset shuffles itself
            callbacks=[_Monitor(run)],
        )
        if config.augment and run.diverged is None and not run.stopped:
            scans = bool(config.scan_statistics)
            reestimate_batch_norm(model, data, config.seed, scans=scans)
            accuracy = test_accuracy(model, data)
            kind = "scan-like" if scans else "clean"
            log(
                f"batch norm re-estimated on {kind} MNIST: test accuracy {accuracy:.4f}"
            )
            run.history.setdefault("test_accuracy", [0.0])[-1] = accuracy
            run.save(model)
    return run
