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
import time
import warnings
from pathlib import Path

# keep napari's start-up warnings (PyQt5 deprecation, theme) off the picture
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import napari  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from napari_digits.engine.protocol import TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".github" / "screenshots" / "training.png"
MNIST = os.environ.get("MNIST_DIR") or str(ROOT.parent / "shared" / "data" / "mnist")


def wait_for(condition, timeout: float = 600.0) -> None:
    """Process Qt events until ``condition()`` holds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the training did not finish in time")
        QApplication.processEvents()
        time.sleep(0.02)


def dismiss_toasts(viewer: napari.Viewer) -> None:
    """Hide notification pop-ups from the shot (the summary is in the dock)."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.hide()
    QApplication.processEvents()


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
    wait_for(lambda: not widget.running)
    end = time.monotonic() + 1.5  # let the curves redraw
    wait_for(lambda: time.monotonic() > end)
    dismiss_toasts(viewer)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(OUT), canvas_only=False)
    viewer.close()
    print(f"written {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
