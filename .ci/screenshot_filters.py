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

from _shots import napari, save, settle, wait_for


def main() -> int:
    """Build the scene and save the screenshot."""
    viewer = napari.Viewer(title="napari-digits: Learned filters")
    viewer.window._qt_window.resize(1280, 760)
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Learned filters")
    widget.show_current_model()
    wait_for(lambda: not widget.busy, 120, "showing the filters")
    if "learned filters" not in viewer.layers:
        raise RuntimeError("no filters shown: is the shipped model missing?")
    viewer.reset_view()
    settle()
    return save(viewer, "filters.png")


if __name__ == "__main__":
    sys.exit(main())
