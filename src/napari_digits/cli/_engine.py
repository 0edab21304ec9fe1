"""Import the TensorFlow engine for a command without TensorFlow's start-up noise.

TensorFlow's C++ libraries print a few lines to file descriptor 2 while they
load (before any log level applies); a command line should print only its own
messages and errors.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration of the block."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def engine_models() -> ModuleType:
    """Return :mod:`napari_digits.engine.models`, imported quietly.

    Returns
    -------
    module
        The engine's models module (TensorFlow is now imported).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # errors come as exceptions
    with _quiet_fd2():
        from napari_digits.engine import models
    return models
