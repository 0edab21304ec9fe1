"""Deleting the Learned filters and teaching layers and showing them again.

On Mesa llvmpipe a viewer that had a text layer (Shapes, Points with text)
removed segfaults when it draws the next one (issue 9, README Known issues):
the tile indices and the confusion counts were such layers. Each workflow
runs five times in a real viewer in a subprocess, so that a crash fails the
test instead of killing pytest. Both Qt bindings: on this machine the
teaching view's old Points text crashed under PyQt5 only, the tiles' Shapes
under both.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

WORKFLOW = """
import sys, time
import numpy as np
import napari
from qtpy.QtWidgets import QApplication

def pump(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.instance().processEvents()
        time.sleep(0.01)

def until(done, timeout=300):
    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, "timed out"
        pump(0.05)
    pump(0.5)  # drawn

viewer = napari.Viewer()
viewer.add_image(np.random.default_rng(0).random((64, 64)), name="mine")
if which == "filters":
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Learned filters")
    def show():  # the shipped model's filters, read by the engine process
        widget.show_current_model()
        until(lambda: not widget.busy)
else:
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Training")
    widget._mnist.value = mnist
    def show():
        widget.evaluate(limit=1000)
        until(lambda: not widget.running)
for run in range(5):
    show()
    names = [layer.name for layer in viewer.layers]
    assert names == ["mine", *expected], names
    for name in expected:  # the user deletes the results, one by one
        viewer.layers.remove(name)
        pump(0.3)
    print("deleted and shown again", run, flush=True)
show()
show()  # in place
assert [layer.name for layer in viewer.layers] == ["mine", *expected]
viewer.close()
print("survived")
"""

LAYERS = {
    "filters": ["learned filters", "learned filters: index"],
    "teaching": [
        "confusion matrix",
        "confusion matrix: counts",
        "misclassified",
        "misclassified: labels",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("qt_api", ["pyqt6", "pyqt5"])
@pytest.mark.parametrize("which", sorted(LAYERS))
def test_deleting_the_results_and_showing_them_again_never_crashes(
    which, qt_api, mnist_dir
):
    """Five deletions and redraws of the dock's layers (run in a subprocess)."""
    if importlib.util.find_spec(qt_api.replace("pyqt", "PyQt")) is None:
        pytest.skip(f"{qt_api} is not installed")
    setup = (
        f"which = {which!r}\nexpected = {LAYERS[which]!r}\nmnist = {str(mnist_dir)!r}\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", setup + WORKFLOW],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "QT_API": qt_api},
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    assert done.stdout.strip().endswith("survived")
