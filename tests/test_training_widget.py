"""The Training dock in a real viewer, driving real trainings in the engine."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Labels
from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_digits import annotations
from napari_digits._widgets._teaching import CELL_TEXELS
from napari_digits._widgets.training import (
    ENGINE_ROLE,
    RECIPES,
    Eta,
    TrainingWidget,
    describe_progress,
    for_the_form,
    stream_events,
    summarize,
)
from napari_digits.current_model import current_model
from napari_digits.engine import protocol as p
from napari_digits.engine.client import get_engine

LONG = 120_000  # ms: an upper bound for a tiny training on two busy cores


@pytest.fixture
def widget(make_napari_viewer) -> TrainingWidget:
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Training")
    yield widget
    current_model.reset()


@pytest.fixture
def notes():
    """The napari notifications shown during the test."""
    start = len(notification_manager.records)
    return lambda: notification_manager.records[start:]


def tiny(tmp_path: Path, mnist_dir: Path, **kwargs) -> p.TrainConfig:
    options = {"epochs": 2, "train_limit": 2000, "test_limit": 500} | kwargs
    return p.TrainConfig(
        out=str(tmp_path / "model.keras"), mnist=str(mnist_dir), **options
    )


def test_architecture_fills_its_defaults_and_unchanged_values_mean_recipe(widget):
    widget._architecture.value = "tutorial"
    assert widget._epochs.value == RECIPES["tutorial"].epochs == 10
    assert widget._lr.value == pytest.approx(0.01)
    config = widget.config()
    assert config.architecture == "tutorial"
    assert config.epochs is None and config.learning_rate is None
    widget._epochs.value = 4
    assert widget.config().epochs == 4


def test_mixed_precision_is_offered_only_for_a_gpu(widget, qtbot):
    qtbot.waitUntil(lambda: "cpu" in widget._device.choices, timeout=LONG)
    widget._set_devices(
        [p.DeviceInfo("CPU", "CPU", "2 cores"), p.DeviceInfo("GPU:0", "GPU", "H100")]
    )
    assert widget._device.choices == ("auto", "cpu", "GPU:0")
    widget._device.value = "GPU:0"
    assert widget._mixed.enabled
    widget._mixed.value = True
    assert widget.config().device == "GPU:0" and widget.config().mixed_precision
    widget._device.value = "cpu"
    assert not widget._mixed.enabled and not widget._mixed.value


@pytest.mark.slow  # a training stopped by a closing viewer (9 s): the default
# suite took 9:32 and 10:21 in clean clones, over or near its 10 minutes
def test_closing_the_viewer_mid_training_ends_the_engine(
    make_napari_viewer, qtbot, tmp_path, mnist_dir
):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Training")
    widget.start(tiny(tmp_path, mnist_dir, epochs=50))
    qtbot.waitUntil(lambda: len(widget.curves.loss_data) > 0, timeout=LONG)
    engine = get_engine(ENGINE_ROLE)
    process = engine._process
    viewer.close()
    qtbot.waitUntil(lambda: not process.is_alive(), timeout=10_000)
    qtbot.waitUntil(lambda: not engine.busy, timeout=10_000)  # the worker ended


def test_training_end_to_end_reaches_curves_and_sets_the_model(
    widget, qtbot, tmp_path, mnist_dir, notes
):
    ended = []
    current_model.epoch_ended.connect(ended.append)
    try:
        widget.start(tiny(tmp_path, mnist_dir))
        assert widget.running and not widget._start.enabled
        qtbot.waitUntil(lambda: len(widget.curves.loss_data) > 0, timeout=LONG)
        qtbot.waitUntil(lambda: not widget.running, timeout=LONG)
    finally:
        current_model.epoch_ended.disconnect(ended.append)
    loss = widget.curves.loss_data
    assert len(loss) >= 2 and (loss[:, 1] > 0).all()
    assert (widget.curves.accuracy_data[:, 0] == [1, 2]).all()
    assert [pr.epoch for pr in ended] == [1, 2]
    assert ended[-1].first_layer is not None
    assert current_model.path == tmp_path / "model.keras"
    [note] = [n for n in notes() if "Training finished" in n.message]
    assert "after 2 epoch(s)" in note.message and "test accuracy" in note.message
    assert widget._start.enabled and widget._resume.enabled
    # then evaluated on the same 500 test digits: the teaching view
    confusion = widget._viewer.layers["confusion matrix"].data
    assert confusion.shape == (10, 10) and confusion.sum() == 500


@pytest.mark.slow  # 10 s; the engine's own stop test stays in the default suite
def test_stop_keeps_a_checkpoint_that_loads(widget, qtbot, tmp_path, mnist_dir, notes):
    widget.start(tiny(tmp_path, mnist_dir, epochs=50))
    qtbot.waitUntil(lambda: len(widget.curves.accuracy_data) >= 1, timeout=LONG)
    widget.stop()
    qtbot.waitUntil(lambda: not widget.running, timeout=LONG)
    assert any("Training stopped" in n.message for n in notes())
    checkpoint = tmp_path / "model.keras"
    assert checkpoint.is_file()
    info = get_engine(ENGINE_ROLE).call(p.Describe(str(checkpoint)))
    assert info.n_classes == 10
    widget.load_model(checkpoint)  # the Load model… path, through the engine
    qtbot.waitUntil(lambda: not widget.running, timeout=LONG)
    assert current_model.path == checkpoint


def test_a_bad_model_file_is_an_error_notification(widget, qtbot, tmp_path, notes):
    bad = tmp_path / "not-a-model.keras"
    bad.write_bytes(b"this is not a keras file")
    before = current_model.path
    widget.load_model(bad)
    qtbot.waitUntil(lambda: not widget.running, timeout=LONG)
    errors = [n for n in notes() if n.severity == NotificationSeverity.ERROR]
    assert errors and "not-a-model.keras" in errors[-1].message
    assert current_model.path == before


@pytest.mark.slow  # two engine starts (16 s): keeps the default suite under 10 min
def test_engine_killed_mid_run_is_reported_and_a_new_start_works(
    widget, qtbot, tmp_path, mnist_dir, notes
):
    widget.start(tiny(tmp_path, mnist_dir, epochs=50))
    qtbot.waitUntil(lambda: len(widget.curves.loss_data) > 0, timeout=LONG)
    engine = get_engine(ENGINE_ROLE)
    dead = engine.pid
    os.kill(dead, signal.SIGKILL)
    qtbot.waitUntil(lambda: not widget.running, timeout=LONG)
    errors = [n for n in notes() if n.severity == NotificationSeverity.ERROR]
    assert errors and "died" in errors[-1].message
    assert "SIGKILL" in errors[-1].message
    assert widget._start.enabled and not widget._stop.enabled
    widget.start(tiny(tmp_path, mnist_dir, epochs=1))
    qtbot.waitUntil(lambda: not widget.running, timeout=LONG)
    assert engine.pid != dead
    assert any("Training finished" in n.message for n in notes())


def test_stream_events_bundles_progress_and_returns_the_result(engine):
    gen = stream_events(engine, p.Ping())
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == engine.pid


def test_summary_names_accuracy_time_and_epochs():
    result = p.TrainingResult("m.keras", 3, 0.9912, 61.4, stopped=False)
    text = summarize(result)
    assert "99.12%" in text and "3 epoch(s)" in text and "61 s" in text


def _progress(step: int, elapsed: float, batches: int = 100) -> p.TrainingProgress:
    epoch, batch = divmod(step, batches)
    return p.TrainingProgress(
        epoch=epoch + 1, epochs=2, batch=batch, batches=batches, loss=1.0,
        elapsed=elapsed, eta=9999.0,
    )  # fmt: skip


def test_eta_comes_from_the_measured_throughput_not_the_start_up():
    eta = Eta()
    # 30 s of start-up (MNIST, tracing) before the first batch, then 10 batches/s
    assert eta.update(_progress(1, 30.0)) is None
    assert eta.update(_progress(5, 30.4)) is None  # too few batches yet
    assert eta.update(_progress(31, 33.0)) == pytest.approx((200 - 31) / 10)
    assert "ETA estimating..." in describe_progress(_progress(1, 30.0), None)
    assert describe_progress(_progress(31, 33.0), 16.9).endswith("ETA 0:17")


def test_engine_messages_name_the_form_fields_not_command_line_flags():
    from napari_digits.data import HELP

    text = for_the_form(f"MNIST not found: /x does not exist. {HELP}")
    assert "--mnist" not in text and "MNIST_DIR" not in text
    assert "'MNIST folder' field" in text


def test_a_missing_mnist_folder_is_reported_in_the_forms_words(
    widget, qtbot, tmp_path, notes
):
    widget.start(tiny(tmp_path, tmp_path / "no-mnist-here"))
    qtbot.waitUntil(lambda: not widget.running, timeout=LONG)
    errors = [n for n in notes() if n.severity == NotificationSeverity.ERROR]
    assert errors and "'MNIST folder'" in errors[-1].message
    assert "--mnist" not in errors[-1].message
    assert "--mnist" not in widget._status.value


def test_a_long_status_wraps_and_the_dock_stays_narrow(widget, qtbot):
    before = widget.native.width()
    widget._status.value = "word " * 100  # 500 characters
    qtbot.wait(100)
    assert widget._status.native.wordWrap()
    assert widget.native.width() <= max(before, 450), (before, widget.native.width())


def test_resume_reads_the_earlier_curves_from_the_checkpoint(widget, tmp_path):
    out = tmp_path / "model.keras"
    history = {"loss": [0.5, 0.2, 0.1], "test_accuracy": [0.95, 0.97, 0.98]}
    state = {"epochs_done": 2, "history": history}
    (tmp_path / "model.keras.json").write_text(json.dumps(state))
    widget._keep_curves(str(out))
    # the stopped third epoch is trained again: its point goes
    assert widget.curves.accuracy_data.tolist() == [[1, 0.95], [2, 0.97]]
    assert widget.curves.loss_data[:, 1].tolist() == [0.5, 0.2]


@pytest.mark.slow  # two trainings (13 s): keeps the default suite under 10 min
def test_resume_keeps_the_curves_on_view(widget, qtbot, tmp_path, mnist_dir):
    widget.start(tiny(tmp_path, mnist_dir, epochs=1))
    qtbot.waitUntil(lambda: not widget.running, timeout=LONG)
    first = widget.curves.loss_data.copy()
    assert widget.curves.accuracy_data[:, 0].tolist() == [1]
    widget.start(tiny(tmp_path, mnist_dir, epochs=2, resume=True))
    qtbot.waitUntil(lambda: not widget.running, timeout=LONG)
    loss = widget.curves.loss_data
    np.testing.assert_array_equal(loss[: len(first)], first)
    assert len(loss) > len(first)
    assert widget.curves.accuracy_data[:, 0].tolist() == [1, 2]


def test_evaluate_shows_the_confusion_matrix_and_the_mistakes(widget, qtbot, mnist_dir):
    from napari_digits.data import load_mnist

    viewer = widget._viewer
    mine = viewer.add_image(np.zeros((280, 200)), name="mine")
    widget._mnist.value = mnist_dir
    widget.evaluate(limit=2000)
    qtbot.waitUntil(lambda: not widget.running, timeout=LONG)
    confusion = viewer.layers["confusion matrix"].data
    assert confusion.sum() == 2000
    wrong = int(confusion.sum() - np.trace(confusion))
    gallery = viewer.layers["misclassified"]
    labels = viewer.layers["misclassified: labels"]
    assert isinstance(labels, Labels)  # glyphs, not a text layer (issue 9)
    assert gallery.data.shape == (wrong, 28, 28) and len(labels.data) == wrong
    features = gallery.metadata["mistakes"]
    assert labels.data.any(axis=(1, 2)).all()  # every mistake is written on
    assert (np.diff(features["confidence"]) <= 0).all()  # most confident first
    assert (features["true"] != features["predicted"]).all()
    x_test = load_mnist(mnist_dir).x_test
    np.testing.assert_array_equal(gallery.data[0], x_test[features["index"][0]])
    counts = viewer.layers["confusion matrix: counts"]
    assert isinstance(counts, Labels)
    # each count is written in its cell: the cell's ink is its count's glyphs
    glyphs = annotations.glyphs()
    cells = counts.data.reshape(10, CELL_TEXELS, 10, CELL_TEXELS) != 0
    for (true, predicted), count in np.ndenumerate(confusion.astype(int)):
        ink = sum(glyphs[d].sum() for d in str(count))
        assert cells[true, :, predicted].sum() == ink
    np.testing.assert_allclose(
        counts.scale * CELL_TEXELS, viewer.layers["confusion matrix"].scale
    )
    # beside the user's image, which keeps the selection
    assert viewer.layers["confusion matrix"].translate[1] > mine.extent.world[1][1]
    assert set(viewer.layers.selection) == {mine}
    assert widget.mistakes.rowCount() == wrong
    widget.mistakes.sortItems(3)  # confidence, ascending
    widget.mistakes.cellClicked.emit(0, 0)
    plane = int(features["confidence"].argmin())
    assert viewer.dims.current_step[0] == plane
