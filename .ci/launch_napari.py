"""Open napari with the plugin's four widgets docked and the portrait sample.

Run by ``bash .ci/dev napari`` (extra arguments come here). PyQt6 is the Qt
binding whenever it is installed, even next to PyQt5, whose support napari
deprecates (with a warning in every session). ``--smoke SECONDS`` closes the
viewer after that long and prints what a user would have seen (the docks, the
layers, every notification), for the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import os

WIDGETS = ("Kernels", "Learned filters", "Training", "Read digits")


def choose_qt_binding() -> None:
    """Prefer PyQt6 where the user has not chosen a binding with ``QT_API``."""
    if "QT_API" not in os.environ and importlib.util.find_spec("PyQt6"):
        os.environ["QT_API"] = "pyqt6"


def open_viewer():
    """Return a viewer with the sample loaded and the four widgets docked."""
    import napari

    viewer = napari.Viewer(title="napari-digits")
    viewer.open_sample("napari-digits", "portrait")
    for name in WIDGETS:
        viewer.window.add_plugin_dock_widget("napari-digits", name, tabify=True)
    return viewer


def smoke(viewer, seconds: float) -> None:
    """Run the event loop for ``seconds``, print what was shown, close."""
    import napari
    from napari.utils.notifications import notification_manager
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    def report_and_close() -> None:
        print("docks:", ", ".join(sorted(viewer.window.dock_widgets)))
        print("layers:", ", ".join(layer.name for layer in viewer.layers))
        print("qt:", os.environ.get("QT_API"), QApplication.instance().platformName())
        for record in notification_manager.records:
            print(f"notification: {record.severity}: {record.message}")
        viewer.close()

    QTimer.singleShot(int(seconds * 1000), report_and_close)
    napari.run()


def main() -> None:
    """Launch napari (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", type=float, metavar="SECONDS", help="for tests")
    args = parser.parse_args()
    choose_qt_binding()
    viewer = open_viewer()
    if args.smoke is not None:
        smoke(viewer, args.smoke)
        return
    import napari

    napari.run()


if __name__ == "__main__":
    main()
