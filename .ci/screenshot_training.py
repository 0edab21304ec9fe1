"""Take the README screenshot of the Training widget after a short real run.

Run headless with (MNIST_DIR pointing at the MNIST files)::

    xvfb-run -a .venv/bin/python .ci/screenshot_training.py

It opens napari with the scanned-page sample, docks the Training widget,
trains the default network for a few epochs on a subset of MNIST in the
engine process, and saves the whole window, live curves included, to
``.github/screenshots/training.png``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from _shots import napari, save, settle, wait_for

from napari_digits.engine.protocol import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
MNIST = os.environ.get("MNIST_DIR") or str(ROOT.parent / "shared" / "data" / "mnist")


def main() -> int:
    """Train briefly from the widget and save the screenshot."""
    viewer = napari.Viewer(title="napari-digits: Training")
    viewer.window._qt_window.resize(1280, 880)
    viewer.open_sample("napari-digits", "scanned_page")
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Training")
    out = Path(tempfile.mkdtemp(prefix="napari-digits-shot-")) / "model.keras"
    widget.start(
        TrainConfig(
            out=str(out), epochs=4, train_limit=8000, test_limit=2000, mnist=MNIST
        )
    )
    wait_for(lambda: not widget.running, 600, "the training")
    settle(1.5)  # let the curves redraw
    return save(viewer, "training.png")


if __name__ == "__main__":
    sys.exit(main())
