"""Model files: atomic writes of models and their training-state sidecars.

Imports Keras: runs only in the engine process or a command-line process.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import keras


class ModelFileError(ValueError):
    """A model file is missing, corrupt, or not a model this plugin can use."""


def save_atomic(model: keras.Model, path: str | os.PathLike) -> None:
    """Save ``model`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}-", suffix=".keras"
    )
    os.close(fd)
    _chmod_umask(tmp)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(data: dict, path: str | os.PathLike) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    _chmod_umask(tmp)
    os.replace(tmp, path)


def _chmod_umask(path: str) -> None:
    """Give a temporary file the permissions a normally created file has."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def state_path(model_path: str | os.PathLike) -> Path:
    """Return the sidecar that records a checkpoint's training state."""
    return Path(str(model_path) + ".json")
