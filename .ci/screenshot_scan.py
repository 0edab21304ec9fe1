"""Take the README screenshot of the Read digits widget from a real viewer.

Run headless with::

    xvfb-run -a .venv/bin/python .ci/screenshot_scan.py

It opens napari, loads the scanned-page sample, docks "Read digits", finds
and classifies the digits (in the engine process), selects one digit to show
its crop and probabilities, zooms on a few lines and saves the whole window
to ``.github/screenshots/scan.png``.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

# keep napari's start-up warnings (PyQt5 deprecation, theme) off the picture
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import napari  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / ".github" / "screenshots" / "scan.png"


def wait_for(condition, timeout: float = 180.0) -> None:
    """Process Qt events until ``condition()`` holds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("Read digits did not add its layers in time")
        QApplication.processEvents()
        time.sleep(0.02)


def settle(seconds: float = 1.0) -> None:
    """Let Qt draw for a while."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def dismiss_toasts(viewer: napari.Viewer) -> None:
    """Hide notification pop-ups from the shot."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.hide()
    QApplication.processEvents()


def main() -> int:
    """Build the scene and save the screenshot."""
    from napari_digits._widgets.scan import BOXES_LAYER

    viewer = napari.Viewer(title="napari-digits: Read digits")
    viewer.window._qt_window.resize(1400, 860)
    viewer.open_sample("napari-digits", "scanned_page")
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Read digits")
    widget.start()
    wait_for(lambda: BOXES_LAYER in viewer.layers and widget.run_button.enabled)
    viewer.layers["digits: labels"].visible = False
    review = [i for i, r in enumerate(widget.rows) if r.needs_review()]
    widget.select_row(review[0] if review else 0)  # an uncertain one
    viewer.camera.center = (420, 420)
    viewer.camera.zoom = 1.6
    settle()
    dismiss_toasts(viewer)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(OUT), canvas_only=False)
    viewer.close()
    print(f"written {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
