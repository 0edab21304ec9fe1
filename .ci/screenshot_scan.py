"""Take the README screenshot of the Read digits widget from a real viewer.

Run headless with::

    xvfb-run -a .venv/bin/python .ci/screenshot_scan.py

It opens napari, loads the scanned-page sample, docks "Read digits", finds
and classifies the digits (in the engine process), selects one uncertain
digit and explains it (crop, probabilities, first-layer feature maps), zooms
on a few lines and saves the whole window to ``.github/screenshots/scan.png``.
"""

from __future__ import annotations

import sys

from _shots import napari, save, settle, wait_for


def main() -> int:
    """Build the scene and save the screenshot."""
    from napari_digits._widgets.scan import BOXES_LAYER

    viewer = napari.Viewer(title="napari-digits: Read digits")
    viewer.window._qt_window.resize(1400, 860)
    viewer.open_sample("napari-digits", "scanned_page")
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Read digits")
    widget.start()
    wait_for(
        lambda: (
            BOXES_LAYER in viewer.layers
            and widget.run_button.enabled
            and widget.layers_ready
        ),
        180,
        "reading the page",
    )
    viewer.layers["digits: labels"].visible = False
    review = [i for i, r in enumerate(widget.rows) if r.needs_review()]
    widget.select_row(review[0] if review else 0)  # an uncertain one
    worker = widget.explain_selected()
    wait_for(lambda: not worker.is_running, 60, "explaining the digit")
    viewer.camera.center = (420, 420)
    viewer.camera.zoom = 1.6
    settle()
    return save(viewer, "scan.png")


if __name__ == "__main__":
    sys.exit(main())
