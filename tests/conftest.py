"""Shared set-up: the Qt binding; no test may import TensorFlow in-process."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _choose_qt_binding() -> None:
    """Test with PyQt6 where installed (napari deprecates PyQt5), else QT_API's.

    ``QT_API`` (read by qtpy, napari and every subprocess) and ``PYTEST_QT_API``
    (pytest-qt) name the same binding, so that one process never loads two.
    """
    if "QT_API" not in os.environ and importlib.util.find_spec("PyQt6"):
        os.environ["QT_API"] = "pyqt6"
    if os.environ.get("QT_API") in ("pyqt5", "pyqt6", "pyside6"):
        os.environ.setdefault("PYTEST_QT_API", os.environ["QT_API"])


_choose_qt_binding()


@pytest.fixture(autouse=True)
def _no_tensorflow_in_this_process():
    """Fail any test after which TensorFlow sits in the viewer's process.

    TensorFlow and napari's OpenGL canvas crash each other in one process
    (see DESIGN.md); every TensorFlow computation belongs to the engine process.
    """
    yield
    assert "tensorflow" not in sys.modules, "tensorflow was imported in-process"


@pytest.fixture(autouse=True)
def _corrections_kept_out_of_home(tmp_path_factory, monkeypatch):
    """Keep the Read digits widget's corrections out of the user's home."""
    from napari_digits import correction_log

    folder = tmp_path_factory.mktemp("kept-corrections")
    monkeypatch.setattr(correction_log, "FOLDER", folder)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Return the directory of the full MNIST set, or skip where it is absent."""
    path = os.environ.get("MNIST_DIR") or str(REPO.parent / "shared" / "data" / "mnist")
    if not Path(path, "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("full MNIST not found: set MNIST_DIR")
    return Path(path)


@pytest.fixture(scope="session")
def engine():
    """Return the process-wide default engine; shut it down at session end."""
    from napari_digits.engine.client import get_engine

    engine = get_engine()
    yield engine
    engine.shutdown()
