"""The Training dock widget: train the MNIST CNN in the engine process.

The widget only wires controls to the engine (:mod:`napari_digits.engine.
client`): a napari worker thread iterates the engine's events and yields them,
in small bundles, to handlers in the GUI thread, which move the progress bar,
the curves and the status line. TensorFlow never loads in this process.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_digits._widgets import (
    OneATurn,
    create_worker,
    ensure_pool_threads,
    warm_imports,
    when_warm,
)
from napari_digits._widgets._display import wrap
from napari_digits._widgets._teaching import MistakesTable, evaluation_steps
from napari_digits.current_model import current_model
from napari_digits.engine import protocol as p
from napari_digits.engine.client import EngineError, get_engine

if TYPE_CHECKING:
    import napari

    from napari_digits._widgets._curves import TrainingCurves

#: the engine role of the training widget (other widgets use "default")
ENGINE_ROLE = "training"
#: how often (seconds) the worker hands progress to the GUI thread at most
YIELD_EVERY = 0.1
#: how often (seconds) the napari progress bar moves at most
BAR_EVERY = 0.5
#: the ETA is estimated from the throughput measured over at least this many
#: batches and seconds after the first progress event (start-up excluded)
ETA_BATCHES = 10
ETA_SECONDS = 2.0
#: command-line names in the engine's messages -> what the form calls them
FORM_NAMES = {
    "--mnist": "the 'MNIST folder' field",
    "--out": "'Save model to'",
    "--resume": "Resume",
    "--epochs": "'Epochs'",
    "--batch-size": "'Batch size'",
    "--learning-rate": "'Learning rate'",
    "--device": "'Device'",
    "--mixed-precision": "'Mixed precision'",
}


#: the architectures the engine trains, with their defaults
RECIPES = p.ARCHITECTURES


def default_output() -> Path:
    """Return where a trained model goes unless the user says otherwise."""
    return Path.home() / "napari-digits" / "model.keras"


def stream_events(engine, request) -> Generator[list, None, object]:
    """Run ``request`` in ``engine``, yielding its events in small bundles.

    Bundles go out at most every :data:`YIELD_EVERY` seconds (an epoch's end
    or a log line goes out at once), so that a fast training cannot flood the
    GUI thread. Returns the request's result value; a failed request raises
    :class:`~napari_digits.engine.client.EngineError`.
    """
    bundle: list = []
    last = time.monotonic()
    # closed with this generator: the request lock is not left to the GC
    with contextlib.closing(engine.events(request)) as events:
        for event in events:
            if isinstance(event, p.Result):
                if bundle:
                    yield bundle
                return event.value
            bundle.append(event)
            urgent = isinstance(event, p.Log) or event.progress.epoch_end
            if urgent or time.monotonic() - last >= YIELD_EVERY:
                yield bundle
                bundle, last = [], time.monotonic()
    raise EngineError("the engine ended the request without a result")


def evaluate_events(engine, request: p.Evaluate) -> Generator[list, None, tuple]:
    """Evaluate in the engine, then sort the mistakes and read their images.

    Runs in the worker thread (MNIST's test images are read here, not in
    the GUI thread). Returns ``(evaluation, mistakes, test images)``.
    """
    from napari_digits.data import load_mnist
    from napari_digits.evaluation import find_mistakes

    evaluation = yield from stream_events(engine, request)
    mistakes = find_mistakes(evaluation.labels, evaluation.probabilities)
    images = load_mnist(request.mnist).subset(test=request.limit).x_test
    return evaluation, mistakes, images


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "estimating..."
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


class Eta:
    """Estimate the time left from the throughput measured during the run.

    The first events of a run include the start-up (loading MNIST, tracing
    the model), so an estimate from the mean rate since the start is far too
    long. The rate is measured from the first progress event on, and only
    once :data:`ETA_BATCHES` batches and :data:`ETA_SECONDS` seconds have
    passed; before that the estimate is None ("estimating...").
    """

    def __init__(self) -> None:
        self._first: tuple[float, int] | None = None

    def update(self, pr: p.TrainingProgress) -> float | None:
        """Return the seconds left after ``pr``, or None while estimating."""
        step = (pr.epoch - 1) * pr.batches + pr.batch
        if self._first is None:
            self._first = (pr.elapsed, step)
            return None
        seconds, steps = pr.elapsed - self._first[0], step - self._first[1]
        if steps < ETA_BATCHES or seconds < ETA_SECONDS:
            return None
        return (pr.epochs * pr.batches - step) * seconds / steps


def for_the_form(message: str) -> str:
    """Say an engine message in the form's words instead of command-line flags.

    Examples
    --------
    >>> for_the_form("cannot write --out x.keras")
    "cannot write 'Save model to' x.keras"
    """
    from napari_digits.data import HELP

    message = message.replace(
        HELP,
        "Choose the folder of the four MNIST IDX files (or a Keras mnist.npz) "
        "in the 'MNIST folder' field.",
    )
    for flag in sorted(FORM_NAMES, key=len, reverse=True):
        message = message.replace(flag, FORM_NAMES[flag])
    return message


def describe_progress(pr: p.TrainingProgress, eta: float | None = None) -> str:
    """Return the one-line status of a training (epoch, batch, loss, ETA)."""
    text = f"epoch {pr.epoch}/{pr.epochs} · batch {pr.batch}/{pr.batches}"
    text += f" · loss {pr.loss:.3f}"
    if pr.test_accuracy is not None:
        text += f" · test {pr.test_accuracy:.2%}"
    return text + f" · ETA {_format_seconds(eta)}"


def summarize(result: p.TrainingResult) -> str:
    """Return the end-of-training notification text."""
    verb = "stopped" if result.stopped else "finished"
    accuracy = (
        "no test accuracy yet"
        if result.test_accuracy is None
        else f"test accuracy {result.test_accuracy:.2%}"
    )
    return (
        f"Training {verb}: {accuracy} after {result.epochs_done} epoch(s) in "
        f"{result.wall_time:.0f} s. Model saved to {result.model_path}"
    )


class TrainingWidget(Container):
    """Train the MNIST CNN from the viewer, with live progress and curves.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer the widget docks in.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._worker = None
        self._teaching = OneATurn()  # the evaluation's layers, one a turn
        self._pbar: progress | None = None
        self._bar_time = 0.0
        self._gpus: list[str] = []  # filled by the engine's device list
        self._queue: list = []  # worker signals waiting for their handler
        self._eta = Eta()
        self._eta_value: float | None = None
        self._resuming = False
        self._limit: int | None = None
        self._evaluate_next = False
        self._dispatching = False
        self._closed = False
        self._architecture = ComboBox(label="Architecture", choices=list(RECIPES))
        self._epochs = SpinBox(label="Epochs", min=1, max=500)
        self._batch = SpinBox(label="Batch size", min=1, max=8192)
        self._lr = FloatSpinBox(label="Learning rate", min=1e-5, max=1.0, step=1e-4)
        self._lr.native.setDecimals(5)
        self._device = ComboBox(label="Device", choices=[("Auto", "auto")])
        self._mixed = CheckBox(text="Mixed precision (GPU)", enabled=False)
        self._mnist = FileEdit(
            label="MNIST folder", mode="d", value=os.environ.get("MNIST_DIR", "")
        )
        self._out = FileEdit(
            label="Save model to", mode="w", value=default_output(), filter="*.keras"
        )
        self._start = PushButton(text="Start")
        self._stop = PushButton(text="Stop", enabled=False)
        self._resume = PushButton(text="Resume")
        self._load = PushButton(text="Load model…")
        self._evaluate = PushButton(text="Evaluate: confusion matrix and mistakes")
        self._teach = CheckBox(text="Evaluate after training", value=True)
        self._download = PushButton(text="Download MNIST")
        self._status = Label(value="Idle")
        buttons = Container(
            widgets=[self._start, self._stop, self._resume, self._load],
            layout="horizontal",
            labels=False,
        )
        ensure_pool_threads()
        warm_imports()
        super().__init__(
            widgets=[
                self._architecture,
                self._epochs,
                self._batch,
                self._lr,
                self._device,
                self._mixed,
                self._mnist,
                self._download,
                self._out,
                buttons,
                self._evaluate,
                self._teach,
                self._status,
            ]
        )
        wrap(self._status)  # long messages must not widen the dock
        # the curves' canvas once matplotlib is imported, in the background
        self._curves: TrainingCurves | None = None
        self._curves_box = QWidget()
        self._curves_box.setLayout(QVBoxLayout())
        self._curves_box.layout().setContentsMargins(0, 0, 0, 0)
        self._curves_box.setMinimumSize(240, 220)
        self.native.layout().addWidget(self._curves_box)
        self.mistakes = MistakesTable(viewer)
        self.native.layout().addWidget(self.mistakes)
        self._connect()
        self._apply_recipe(self._architecture.value)
        self._update_resume()
        self._list_devices()
        when_warm(lambda: self._closed or self.curves)

    @property
    def curves(self) -> TrainingCurves:
        """The loss and accuracy curves (made on first use)."""
        if self._curves is None:
            from napari_digits._widgets._curves import TrainingCurves

            self._curves = TrainingCurves()
            self._curves_box.layout().addWidget(self._curves)
            self._style_curves()
        return self._curves

    # -- wiring -----------------------------------------------------------

    def _connect(self) -> None:
        self._architecture.changed.connect(self._apply_recipe)
        self._device.changed.connect(self._update_mixed)
        self._out.changed.connect(self._update_resume)
        self._start.clicked.connect(self.start)
        self._stop.clicked.connect(self.stop)
        self._resume.clicked.connect(self.resume)
        self._load.clicked.connect(self._ask_model)
        self._evaluate.clicked.connect(lambda *_: self.evaluate())
        self._download.clicked.connect(self.download_mnist)
        for button in (self._start, self._stop, self._resume, self._load):
            button.native.setAutoDefault(True)  # Enter presses a focused button
        self.native.destroyed.connect(self._on_destroyed)
        self._viewer.events.theme.connect(self._style_curves)

    def _apply_recipe(self, architecture: str) -> None:
        recipe = RECIPES[architecture]
        self._epochs.value = recipe.epochs
        self._batch.value = recipe.batch_size
        self._lr.value = recipe.learning_rate

    def _style_curves(self, event=None) -> None:
        from napari.utils.theme import get_theme

        if self._curves is None:
            return  # styled when made
        theme = get_theme(self._viewer.theme)
        self.curves.set_colors(
            theme.background.as_hex(), theme.text.as_hex(), theme.current.as_hex()
        )

    # -- devices ----------------------------------------------------------

    def _list_devices(self) -> None:
        # get_engine in the worker too: its first call starts multiprocessing's
        # resource tracker (a process), which must not block the GUI thread
        create_worker(
            lambda: get_engine(ENGINE_ROLE).call(p.ListDevices()),
            _connect={"returned": self._set_devices, "errored": self._on_device_error},
        )

    def _set_devices(self, devices: list[p.DeviceInfo]) -> None:
        if self._closed:
            return
        self._device.choices = [("Auto", "auto")] + [
            (_device_label(d), "cpu" if d.kind == "CPU" else d.name) for d in devices
        ]
        self._gpus = [d.name for d in devices if d.kind == "GPU"]
        self._update_mixed()

    def _on_device_error(self, exc: Exception) -> None:
        if not self._closed:
            self._status.value = f"Could not list devices: {exc}"

    def _update_mixed(self, *_) -> None:
        device = self._device.value
        gpus = self._gpus
        on_gpu = device in gpus or (device in ("auto", "gpu") and bool(gpus))
        self._mixed.enabled = on_gpu and self._worker is None
        if not on_gpu:
            self._mixed.value = False

    # -- configuration ----------------------------------------------------

    def config(self, *, resume: bool = False) -> p.TrainConfig:
        """Return the TrainConfig the form describes.

        Values left at the architecture's defaults are sent as None, so that
        the engine uses its recipe's own schedule. A resumed run sends only
        its epochs: the engine takes the recipe from the checkpoint.

        Raises
        ------
        napari_digits.engine.protocol.ConfigError
            If a value is out of range (the output not a .keras file...).
        """
        recipe = RECIPES[self._architecture.value]
        mnist = str(self._mnist.value)
        form = {
            "architecture": self._architecture.value,
            "batch_size": _unless(self._batch.value, recipe.batch_size),
            "learning_rate": _unless(self._lr.value, recipe.learning_rate),
            "mixed_precision": bool(self._mixed.value),
        }
        return p.TrainConfig(
            out=str(Path(self._out.value).expanduser()),
            epochs=self._epochs.value
            if resume
            else _unless(self._epochs.value, recipe.epochs),
            device=self._device.value,
            mnist=mnist if mnist not in ("", ".") else None,
            resume=resume,
            **({} if resume else form),
        )

    # -- running ----------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a training or evaluation runs (or its layers are being added)."""
        return self._worker is not None or not self._teaching.done

    def start(self, config: p.TrainConfig | None = None) -> None:
        """Start a training (the form's configuration unless one is given)."""
        if self._worker is not None:
            return
        try:
            if isinstance(config, p.TrainConfig):
                self._show_config(config)  # the form says what runs
            else:
                config = self.config()
            Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        except (ValueError, OSError) as exc:  # ConfigError, an unwritable folder
            self._status.value = f"Error: {exc}"
            show_error(str(exc))
            return
        self._resuming = config.resume
        self._limit = config.test_limit  # evaluate on the same test images
        if config.resume:
            self._keep_curves(config.out)
        else:
            self.curves.clear()
        self.curves.source = str(config.out)
        self._eta = Eta()
        self._run(p.Train(config), "Starting the engine…")

    def _keep_curves(self, out: str) -> None:
        """Keep the curves of the run being resumed (from its sidecar if needed).

        The curves on view stay when they belong to this checkpoint; else they
        are drawn again from the per-epoch history in ``<out>.json``. Points
        past the checkpoint's last epoch (a stopped epoch) are dropped: the
        resumed run trains that epoch again.
        """
        try:
            state = json.loads(Path(str(out) + ".json").read_text())
            done, history = int(state["epochs_done"]), state.get("history", {})
        except (OSError, ValueError, KeyError, TypeError):
            done, history = 0, {}
        if self.curves.source != str(out):
            self.curves.clear()
            self.curves.load_history(history)
        self.curves.trim(after=done)

    def _show_config(self, config: p.TrainConfig) -> None:
        if config.architecture is not None:
            self._architecture.value = config.architecture  # fills its recipe
        for widget, value in (
            (self._epochs, config.epochs),
            (self._batch, config.batch_size),
            (self._lr, config.learning_rate),
            (self._mnist, config.mnist),
            (self._out, config.out),  # Resume continues this one
        ):
            if value is not None:
                widget.value = value

    def resume(self) -> None:
        """Continue the training saved at the output path from its checkpoint."""
        try:
            config = self.config(resume=True)
        except ValueError as exc:
            show_error(str(exc))
            return
        self.start(config)

    def download_mnist(self) -> None:
        """Download MNIST into the Keras cache (the user asked), then use it."""
        from napari_digits.data import download_mnist

        self._download.enabled = False
        self._status.value = "Downloading MNIST (11 MB)…"
        create_worker(
            download_mnist,
            _connect={
                "returned": self._on_downloaded,
                "errored": self._on_download_error,
            },
        )

    def _on_downloaded(self, path: Path) -> None:
        self._download.enabled = True
        if not self._closed:
            self._mnist.value = Path(path).parent
            self._status.value = f"MNIST downloaded to {path}"
            show_info(f"MNIST downloaded to {path}")

    def _on_download_error(self, exc: Exception) -> None:
        self._download.enabled = True
        if not self._closed:
            self._status.value = f"Error: {exc}"
            show_error(str(exc))

    def stop(self) -> None:
        """Ask the training to stop after its current batch (weights kept)."""
        if self._worker is not None:
            get_engine(ENGINE_ROLE).stop()
            self._status.value = "Stopping after this batch…"
            self._stop.enabled = False

    def load_model(self, path: str | Path) -> None:
        """Make ``path`` the current model once the engine has checked it."""
        path = str(Path(path).expanduser())
        self._run(p.Describe(path), f"Checking {Path(path).name}…")

    def evaluate(self, limit: int | None = None) -> None:
        """Evaluate the current model; show its confusion matrix and mistakes."""
        if self._worker is not None:
            return
        mnist = str(self._mnist.value)
        request = p.Evaluate(
            str(current_model.path),
            mnist=mnist if mnist not in ("", ".") else None,
            limit=limit,
            predictions=True,
        )
        self._run(request, "Evaluating on the MNIST test set…", evaluate_events)

    def _ask_model(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(
            self.native, "Load a model", str(default_output().parent), "*.keras"
        )
        if path:
            self.load_model(path)

    def _run(self, request, status: str, stream=stream_events) -> None:
        engine = get_engine(ENGINE_ROLE)
        # errored has a handler: create_worker then never re-raises in Qt
        self._worker = create_worker(
            stream,
            engine,
            request,
            _start_thread=False,
            _connect={
                "yielded": self._in_order(self._on_events),
                "returned": self._in_order(self._on_result),
                "errored": self._in_order(self._on_error),
                "finished": self._in_order(self._on_finished),
            },
        )
        self._set_running(True)
        self._status.value = status
        self._worker.start()

    def _in_order(self, handler):
        """Wrap a worker-signal handler so that handlers never nest.

        napari's progress bar processes Qt events while it updates, which can
        deliver the worker's next signal (even ``finished``) in the middle of
        a handler; such a signal waits in a queue until the handler returns.
        """

        def call(*args) -> None:
            self._queue.append((handler, args))
            if self._dispatching:
                return
            self._dispatching = True
            try:
                while self._queue:
                    queued, queued_args = self._queue.pop(0)
                    queued(*queued_args)
            finally:
                self._dispatching = False

        return call

    def _set_running(self, running: bool) -> None:
        for widget in (
            self._architecture,
            self._epochs,
            self._batch,
            self._lr,
            self._device,
            self._mnist,
            self._out,
            self._start,
            self._resume,
            self._load,
            self._evaluate,
        ):
            widget.enabled = not running
        self._stop.enabled = running
        self._update_mixed()
        self._update_resume()

    def _update_resume(self, *_) -> None:
        """Offer Resume only when idle and a checkpoint sits at the output path."""
        out = Path(self._out.value).expanduser()
        self._resume.enabled = self._worker is None and out.is_file()

    # -- GUI-thread handlers ----------------------------------------------

    def _on_events(self, events: list) -> None:
        """Take a bundle of events in order; touch the bar and label once."""
        if self._closed:
            return
        status, last = None, None
        for event in events:
            if isinstance(event, p.Log):
                status = event.message
            else:
                last = event.progress
                self._on_progress(last)
                self._eta_value = self._eta.update(last)
                if self._stop.enabled:
                    status = describe_progress(last, self._eta_value)
        # napari's bar processes Qt events on every change: update it last,
        # and at most every BAR_EVERY seconds
        if last is not None and (
            last.epoch_end or time.monotonic() - self._bar_time >= BAR_EVERY
        ):
            self._advance_bar(last)
            self._bar_time = time.monotonic()
        if status is not None:
            self._status.value = status

    def _on_progress(self, pr: p.TrainingProgress) -> None:
        if self._pbar is None:  # the first event of a run
            self._pbar = progress(total=pr.epochs * pr.batches, desc="Training")
            if self._resuming:
                self.curves.set_epochs(pr.epochs)
            else:
                self.curves.start(pr.epochs)
        at = pr.epoch - 1 + pr.batch / max(pr.batches, 1)  # fractional epoch
        self.curves.add_loss(at, pr.loss)
        if pr.epoch_end:
            if pr.test_accuracy is not None:
                self.curves.add_accuracy(at, pr.test_accuracy)
            current_model.epoch_ended.emit(pr)

    def _advance_bar(self, pr: p.TrainingProgress) -> None:
        done = (pr.epoch - 1) * pr.batches + pr.batch
        if done > self._pbar.n:
            self._pbar.update(done - self._pbar.n)
        self._pbar.set_description(f"Training, ETA {_format_seconds(self._eta_value)}")

    def _on_result(self, value: object) -> None:
        if self._closed:
            return
        if isinstance(value, p.TrainingResult):
            self.curves.redraw()
            current_model.set(value.model_path)
            self._status.value = summarize(value)
            show_info(summarize(value))
            self._evaluate_next = self._teach.value
        elif isinstance(value, tuple):  # evaluate_events
            self._show_evaluation(*value)
        elif isinstance(value, p.ModelInfo):
            current_model.set(value.path)
            self._status.value = f"Current model: {value.path}"
            show_info(
                f"Current model: {Path(value.path).name} "
                f"({value.params:,} parameters, layers: {', '.join(value.layers)})"
            )

    def _on_error(self, exc: Exception) -> None:
        if self._closed:
            return
        known = isinstance(exc, EngineError)
        message = for_the_form(str(exc)) if known else f"Training failed: {exc!r}"
        self._status.value = f"Error: {message}"
        show_error(message)

    def _on_finished(self) -> None:
        self._worker = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        if not self._closed:
            self._set_running(False)
            if self._evaluate_next:
                self._evaluate_next = False
                self.evaluate(self._limit)

    def _show_evaluation(self, evaluation: p.Evaluation, mistakes, images) -> None:
        steps = evaluation_steps(self._viewer, evaluation.confusion, mistakes, images)
        self._teaching.run(steps)  # a layer a turn of the event loop
        self.mistakes.fill(mistakes)
        self._status.value = (
            f"{Path(str(current_model.path)).name}: test accuracy "
            f"{evaluation.accuracy:.2%} on {evaluation.count} digits; "
            f"{len(mistakes)} misclassified (layer 'misclassified', most "
            "confident first)"
        )

    def _on_destroyed(self, *_) -> None:
        """Stop the training engine when the dock (and its viewer) goes away."""
        self._closed = True
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        get_engine(ENGINE_ROLE).shutdown()


def _device_label(device: p.DeviceInfo) -> str:
    """Return a device's name for the menu: ``"GPU:0 (NVIDIA H100)"``."""
    if not device.description:
        return device.name
    return f"{device.name} ({device.description})"


def _unless(value, default):
    """Return None where ``value`` is the recipe's default, else ``value``."""
    return None if value == default else value
