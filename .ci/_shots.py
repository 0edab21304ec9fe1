"""What every README screenshot script shares: waiting on Qt, and saving the shot.

Importing this module also keeps napari's start-up warnings (PyQt5
deprecation, theme) off the pictures, so import it before napari.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import napari  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

SHOTS = Path(__file__).resolve().parents[1] / ".github" / "screenshots"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Process Qt events until ``condition()`` holds; ``what`` names it on timeout."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        QApplication.processEvents()
        time.sleep(0.02)


def settle(seconds: float = 1.0) -> None:
    """Let Qt draw for a while."""
    end = time.monotonic() + seconds
    wait_for(lambda: time.monotonic() > end, seconds + 1, "settling")


def save(viewer: napari.Viewer, name: str) -> int:
    """Hide the notification toasts, save the whole window, close the viewer.

    Returns 0, the script's exit status.
    """
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.hide()
    settle(0.2)
    out = SHOTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(out), canvas_only=False)
    viewer.close()
    print(f"written {out}")
    return 0
