"""Import the TensorFlow engine for a command, and report its errors in one line.

TensorFlow's start-up noise is silenced where the engine imports it
(:mod:`napari_digits.engine._tf`); a command line also drops TensorFlow's
C++ warnings (``TF_CPP_MIN_LOG_LEVEL=3``): errors come as exceptions. The
command's temporary files go to a folder of its own
(:func:`napari_digits.scratch.use_own`).
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from napari_digits import scratch
from napari_digits.current_model import model_file_problem
from napari_digits.engine.quiet import quiet_fd2 as _quiet_fd2

__all__ = ["_quiet_fd2", "engine_models", "error"]


def engine_models(*model_paths: str | os.PathLike) -> ModuleType:
    """Return :mod:`napari_digits.engine.models`, imported quietly.

    Parameters
    ----------
    *model_paths : str or path-like
        Models the command will load: each is looked at first
        (:func:`napari_digits.current_model.model_file_problem`), so that a
        wrong file is an error at once, before TensorFlow's seconds to load.

    Returns
    -------
    module
        The engine's models module (TensorFlow is now imported).

    Raises
    ------
    ValueError
        For a model file that is missing or no Keras model.
    """
    for path in model_paths:
        problem = model_file_problem(path)
        if problem:
            raise ValueError(problem)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    scratch.use_own("command")  # TensorFlow's files: removed even after a kill
    from napari_digits.engine import models

    return models


def error(command: str, exc: BaseException | str) -> int:
    """Print ``napari-digits COMMAND: error: MESSAGE`` on stderr; return 1.

    Parameters
    ----------
    command : str
        The subcommand (``"train"``).
    exc : exception or str
        What went wrong; an exception that is not a user error (a bug) is
        named by its type, so that it can be reported, still in one line.

    Returns
    -------
    int
        1, the exit status of a user error.
    """
    if isinstance(exc, ValueError | OSError) or isinstance(exc, str):
        message = str(exc)
    else:
        message = f"unexpected {type(exc).__name__}: {exc} (please report this)"
    print(f"napari-digits {command}: error: {message}", file=sys.stderr)
    return 1
