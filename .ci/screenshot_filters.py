"""Take the README screenshot of the Learned filters widget from a real viewer.

Run headless with::

    xvfb-run -a .venv/bin/python .ci/screenshot_filters.py

It opens napari, docks the Learned filters widget, shows the shipped default
model's first-layer filters (read by the engine process) with their indices
and the closest-classic-kernel table, and saves the whole window to
``.github/screenshots/filters.png``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).resolve().parents[1] / ".github" / "screenshots" / "filters.png"


def wait_for(condition, timeout: float = 120.0) -> None:
    """Process Qt events until ``condition()`` holds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the Learned filters widget did not show the filters")
        QApplication.processEvents()
        time.sleep(0.02)


def close_notifications(viewer: napari.Viewer) -> None:
    """Close the toasts (e.g. napari's PyQt5 deprecation) that would hide the tiles."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def main() -> int:
    """Build the scene and save the screenshot."""
    viewer = napari.Viewer(title="napari-digits: Learned filters")
    viewer.window._qt_window.resize(1280, 760)
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Learned filters")
    widget.show_current_model()
    wait_for(lambda: not widget.busy)
    if "learned filters" not in viewer.layers:
        raise RuntimeError("no filters shown: is the shipped model missing?")
    viewer.reset_view()
    close_notifications(viewer)
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(OUT), canvas_only=False)
    viewer.close()
    print(f"written {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
