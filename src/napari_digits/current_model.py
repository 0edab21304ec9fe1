"""The viewer's current model: the shipped default until one is trained or loaded.

Pure Python (psygnal only): widgets connect to :attr:`CurrentModel.changed` to
follow a model change made elsewhere (a training that ended, a model loaded).
"""

from __future__ import annotations

import os
import zipfile
from importlib import resources
from pathlib import Path

from psygnal import Signal


def shipped_model_path() -> Path:
    """Return the path of the trained ``default`` model that ships in the package.

    Returns
    -------
    pathlib.Path
        ``napari_digits/resources/default.keras``.
    """
    return Path(str(resources.files("napari_digits") / "resources" / "default.keras"))


def own_reader_path(model_path: str | os.PathLike) -> Path:
    """Return where a classifier's own field reader lives: ``<model>.fields.keras``."""
    return Path(model_path).with_suffix(".fields.keras")


def reader_path(model_path: str | os.PathLike) -> Path:
    """Return the field reader that goes with a classifier.

    Its own (:func:`own_reader_path`) where there is one, else the one that
    ships in the package (``resources/fields.keras``).
    """
    own = own_reader_path(model_path)
    if own.is_file():
        return own
    return shipped_model_path().with_name("fields.keras")


def model_file_problem(model_path: str | os.PathLike) -> str | None:
    """Say why a file cannot be a Keras model, by a look at the file alone.

    What needs no TensorFlow: the file exists, ends in ``.keras`` and is a zip
    archive. The commands ask before TensorFlow loads (seconds), so that a
    wrong file is one error line at once; the engine asks again and reads it.

    Parameters
    ----------
    model_path : str or path-like
        The file.

    Returns
    -------
    str or None
        The problem, one sentence for the user; None when the file may be a
        model (only loading it tells).
    """
    path = Path(model_path).expanduser()
    if not path.exists():
        return f"model file {path} does not exist."
    if not path.is_file() or path.suffix != ".keras" or not zipfile.is_zipfile(path):
        return (
            f"{path} is not a Keras model (a .keras file saved by Keras or by "
            "napari-digits train): choose another file or train a new model."
        )
    return None


class CurrentModel:
    """Holds the path of the model the filters and scan capabilities use."""

    changed = Signal(Path)
    #: emitted by the training widget (GUI thread) with the TrainingProgress
    #: that ends each epoch, so that other views can follow a running training
    epoch_ended = Signal(object)

    def __init__(self, path: Path | None = None) -> None:
        self._path = Path(path) if path is not None else None

    @property
    def path(self) -> Path:
        """The current model's file (the shipped default when none was set)."""
        return self._path if self._path is not None else shipped_model_path()

    def set(self, path: str | Path) -> None:
        """Make ``path`` the current model and emit :attr:`changed`."""
        self._path = Path(path)
        self.changed.emit(self._path)

    def reset(self) -> None:
        """Go back to the shipped default model."""
        self._path = None
        self.changed.emit(self.path)


#: the process-wide current model, shared by every widget
current_model = CurrentModel()
