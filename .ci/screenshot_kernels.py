"""Take the README screenshot of the Kernels widget from a real viewer.

Run headless with::

    xvfb-run -a .venv/bin/python .ci/screenshot_kernels.py

It opens napari, loads the portrait sample, docks the Kernels widget, applies
the Sobel magnitude and saves the whole window to
``.github/screenshots/kernels.png``.
"""

from __future__ import annotations

import sys

from _shots import napari, save, settle, wait_for


def main() -> int:
    """Build the scene and save the screenshot."""
    viewer = napari.Viewer(title="napari-digits: Kernels")
    viewer.window._qt_window.resize(1280, 760)
    viewer.open_sample("napari-digits", "portrait")
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Kernels")
    widget.kernel.value = "sobel"
    widget.apply()
    wait_for(lambda: "portrait [sobel]" in viewer.layers, 60, "the Sobel layer")
    viewer.layers["portrait [sobel]"].contrast_limits = (0, 400)
    settle()
    return save(viewer, "kernels.png")


if __name__ == "__main__":
    sys.exit(main())
