"""Take the README screenshot of the Kernels widget from a real viewer.

Run headless with::

    xvfb-run -a .venv/bin/python .ci/screenshot_kernels.py

It opens napari, loads the portrait sample, docks the Kernels widget, applies
the Sobel magnitude and saves the whole window to
``.github/screenshots/kernels.png``.
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

OUT = Path(__file__).resolve().parents[1] / ".github" / "screenshots" / "kernels.png"


def wait_for(condition, timeout: float = 60.0) -> None:
    """Process Qt events until ``condition()`` holds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the Kernels widget did not add its result in time")
        QApplication.processEvents()
        time.sleep(0.02)


def dismiss_toasts(viewer: napari.Viewer) -> None:
    """Hide notification pop-ups (napari's PyQt5 deprecation note) from the shot."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.hide()
    QApplication.processEvents()


def main() -> int:
    """Build the scene and save the screenshot."""
    viewer = napari.Viewer(title="napari-digits: Kernels")
    viewer.window._qt_window.resize(1280, 760)
    viewer.open_sample("napari-digits", "portrait")
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Kernels")
    widget.kernel.value = "sobel"
    widget.apply()
    wait_for(lambda: "portrait [sobel]" in viewer.layers)
    viewer.layers["portrait [sobel]"].contrast_limits = (0, 400)
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    dismiss_toasts(viewer)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(OUT), canvas_only=False)
    viewer.close()
    print(f"written {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
