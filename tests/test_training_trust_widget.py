"""The Training dock refuses bad values and models; downloads only when asked."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest
from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_digits import data
from napari_digits.current_model import current_model, shipped_model_path

LONG = 120_000  # ms


@pytest.fixture
def widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Training")
    yield widget
    current_model.reset()


@pytest.fixture
def errors():
    """The error notifications shown during the test."""
    start = len(notification_manager.records)
    return lambda: [
        n.message
        for n in notification_manager.records[start:]
        if n.severity == NotificationSeverity.ERROR
    ]


@pytest.mark.parametrize("value", [0, -1, -1e-3, math.inf, 1e9])
def test_the_controls_refuse_values_the_engine_refuses(widget, value):
    for control in (widget._epochs, widget._batch, widget._lr):
        before = control.value
        with pytest.raises(ValueError, match="outside of the allowed range"):
            control.value = value
        assert control.value == before
    widget.config()  # still a valid configuration


def test_the_learning_rate_control_never_holds_nan(widget):
    widget._lr.value = math.nan  # Qt keeps the spin box's value in range
    assert math.isfinite(widget._lr.value) and 0 < widget._lr.value <= 1
    assert math.isfinite(widget.config().learning_rate or 0.005)


def test_an_output_that_is_no_keras_file_is_an_error_not_a_run(
    widget, tmp_path, errors
):
    widget._out.value = tmp_path / "model.h5"
    widget.start()
    assert not widget.running
    assert errors() and ".keras" in errors()[-1]
    assert list(tmp_path.iterdir()) == []


def test_download_mnist_only_when_the_button_is_pressed(
    widget, qtbot, tmp_path, monkeypatch
):
    served = tmp_path / "served.npz"
    rng = np.random.default_rng(0)
    np.savez(
        served,
        x_train=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        y_train=np.arange(4, dtype=np.uint8),
        x_test=rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        y_test=np.arange(2, dtype=np.uint8),
    )
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data, "MNIST_URL", served.as_uri())
    monkeypatch.setattr(
        data, "MNIST_SHA256", hashlib.sha256(served.read_bytes()).hexdigest()
    )
    cache = tmp_path / "keras" / "datasets"
    assert not cache.exists()  # the dock opened without downloading
    widget._download.clicked.emit()
    qtbot.waitUntil(lambda: widget._download.enabled, timeout=LONG)
    assert [p.name for p in cache.iterdir()] == ["mnist.npz"]
    assert widget._mnist.value == cache
    assert data.load_mnist(widget._mnist.value).x_train.shape == (4, 28, 28)


def test_a_failed_download_is_an_error_notification(
    widget, qtbot, tmp_path, monkeypatch, errors
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data, "MNIST_URL", "http://127.0.0.1:9/mnist.npz")
    widget._download.clicked.emit()
    qtbot.waitUntil(lambda: bool(errors()), timeout=LONG)
    assert "could not be downloaded" in errors()[-1]
    assert widget._download.enabled


NAN_MODEL = """
import sys, numpy as np
from napari_digits.engine.models import keras
model = keras.models.load_model(sys.argv[1], compile=False)
weights = model.get_weights()
weights[0] = np.full_like(weights[0], np.nan)
model.set_weights(weights)
model.save(sys.argv[2])
"""


@pytest.mark.parametrize("kind", ["nan weights", "text"])
def test_load_model_refuses_a_bad_model_and_keeps_the_current_one(
    widget, qtbot, tmp_path, errors, kind
):
    bad = tmp_path / "bad.keras"
    if kind == "text":
        bad.write_text("not a model")
    else:
        args = [sys.executable, "-c", NAN_MODEL, str(shipped_model_path()), str(bad)]
        subprocess.run(args, check=True, timeout=300, capture_output=True)
    before = current_model.path
    widget.load_model(bad)
    qtbot.waitUntil(lambda: not widget.running, timeout=LONG)
    expected = "NaN or infinite weights" if kind != "text" else "not a Keras model"
    assert errors() and expected in errors()[-1]
    assert current_model.path == before
