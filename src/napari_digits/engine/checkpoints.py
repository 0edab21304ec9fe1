"""Model files: atomic writes, training-state sidecars, the output lock.

Every file goes through :func:`napari_digits.io.atomic_path`: a kill or a full
disk leaves the previous file or the complete new one. A training holds an
:class:`OutputLock` on its output for its whole run, so that two runs never
write the same model; holding it, it may remove the temporary files a killed
run left behind (:func:`remove_stale_temporaries`).

Imports Keras: runs only in the engine process or a command-line process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import resource
import time
from pathlib import Path

import numpy as np

from napari_digits.engine._tf import keras
from napari_digits.io import OutputError, atomic_open, atomic_path


class ModelFileError(ValueError):
    """A model file is missing, corrupt, or not a model this plugin can use."""


class OutputBusyError(OutputError):
    """Another training holds the lock on the same output."""


def state_path(model_path: str | os.PathLike) -> Path:
    """Return the sidecar that records a checkpoint's training state."""
    return Path(str(model_path) + ".json")


def lock_path(model_path: str | os.PathLike) -> Path:
    """Return the lock file of an output: ``.NAME.lock`` beside it."""
    path = Path(model_path)
    return path.with_name(f".{path.name}.lock")


def load_to_train(
    path: str | os.PathLike, output_shape: tuple[int, ...], what: str, kind: str
) -> keras.Model:
    """Load a model afresh (not the inference cache) to train it further.

    Parameters
    ----------
    path : str or path-like
        The ``.keras`` file.
    output_shape : tuple of int
        Its output's shape without the batch axis.
    what, kind : str
        Names for the messages: "cannot load the {what} {path}" and "{path}
        is not a {kind}".

    Raises
    ------
    ModelFileError
        When Keras cannot read the file, or its output has another shape.
    """
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise ModelFileError(f"cannot load the {what} {path}: {exc}") from exc
    if tuple(model.output_shape[1:]) != tuple(output_shape):
        raise ModelFileError(f"{path} is not a {kind}")
    return model


def nonfinite_weights(model: keras.Model) -> int:
    """Return how many of the model's weights are NaN or infinite."""
    return sum(int(np.size(w) - np.isfinite(w).sum()) for w in model.get_weights())


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """Save ``model`` to ``path`` atomically; never a model with NaN weights.

    Parameters
    ----------
    model : keras.Model
        The model to save.
    path : str or path-like
        The ``.keras`` file.

    Raises
    ------
    ModelFileError
        If a weight is NaN or infinite (the file is not touched).
    OutputError
        If the file cannot be written (full disk, file-size limit, read-only
        folder); the file there before is unchanged.
    """
    bad = nonfinite_weights(model)
    if bad:
        raise ModelFileError(f"{bad} weights are NaN or infinite: {path} not written")
    with _writing(path), atomic_path(path) as tmp:
        model.save(tmp)


def write_state(state: dict, model_path: str | os.PathLike) -> None:
    """Write a checkpoint's training state as strict JSON, atomically.

    Parameters
    ----------
    state : dict
        Plain values; non-finite floats are written as null.
    model_path : str or path-like
        The model the state belongs to (see :func:`state_path`).

    Raises
    ------
    OutputError
        If the file cannot be written; the file there before is unchanged.
    """
    path = state_path(model_path)
    with _writing(path), atomic_open(path) as f:
        json.dump(_finite(state), f, indent=2, allow_nan=False)


def read_state(model_path: str | os.PathLike) -> dict:
    """Read and check a checkpoint's sidecar.

    Parameters
    ----------
    model_path : str or path-like
        The checkpoint (its sidecar is ``MODEL.json``).

    Returns
    -------
    dict
        ``architecture``, ``epochs_done``, ``epochs``, ``config``, ``history``.

    Raises
    ------
    ModelFileError
        Naming the sidecar, when it is missing, not JSON or lacks a field.
    """
    path = state_path(model_path)
    advice = "start a new training (without resume) or restore the file"
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(
            f"cannot resume: the training state {path} is missing; {advice}"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(
            f"cannot resume: the training state {path} is damaged ({exc}); {advice}"
        ) from None
    problem = _state_problem(state)
    if problem:
        raise ModelFileError(
            f"cannot resume: the training state {path} is damaged ({problem}); {advice}"
        )
    return state


def _state_problem(state: object) -> str | None:
    """Say what is wrong with a parsed sidecar, or None."""
    if not isinstance(state, dict):
        return "not a JSON object"
    kinds = {"architecture": str, "epochs_done": int, "config": dict}
    for key, kind in kinds.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            return f"no valid {key!r}"
    if state["epochs_done"] < 0:
        return "negative 'epochs_done'"
    history = state.get("history", {})
    if not isinstance(history, dict) or not all(
        isinstance(v, list) for v in history.values()
    ):
        return "no valid 'history'"
    return None


def _finite(value: object) -> object:
    """Replace non-finite floats by None, recursively (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@contextlib.contextmanager
def _writing(path: str | os.PathLike):
    """Turn a failed write (full disk, file-size limit) into one clear error."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        reason = exc.strerror or str(exc)
        raise OutputError(
            f"cannot write {path}: {reason}; the file there before is unchanged"
        ) from exc


def check_room(path: str | os.PathLike, nbytes: int) -> None:
    """Refuse, before training, an output that cannot take ``nbytes`` more.

    Checks the process's file-size limit (``ulimit -f``) and the free space of
    the output's file system (the new file is written beside the old one).

    Raises
    ------
    OutputError
        Saying which limit is too small.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and soft < nbytes:
        raise OutputError(
            f"cannot write {path}: the file-size limit (ulimit -f) is {soft:,} "
            f"bytes and the model needs about {nbytes:,}"
        )
    stats = os.statvfs(Path(path).parent)
    free = stats.f_bavail * stats.f_frsize
    if free < 2 * nbytes:
        raise OutputError(
            f"cannot write {path}: {free:,} bytes free on its disk, the model "
            f"needs about {2 * nbytes:,} (old and new copies); free some space"
        )


def model_bytes(model: keras.Model) -> int:
    """Estimate a saved model's size: weights and Adam's two moments, float32."""
    return 12 * int(model.count_params()) + 256 * 1024


def remove_stale_temporaries(model_path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed run left beside ``model_path``.

    Call only while holding the output's :class:`OutputLock`: no live writer
    of this output then exists.

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(model_path)
    patterns = (f".{path.name}.*.tmp.keras", f".{path.name}.json.*.tmp.json")
    removed = []
    for pattern in patterns:
        for stale in path.parent.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                removed.append(stale)
    return removed


class OutputLock:
    """An exclusive ``flock`` on an output's lock file, for one training run.

    The kernel releases it when the process ends, however it ends; the file
    is removed on a normal release. A second run to the same output fails
    at once with :class:`OutputBusyError` naming the first run.

    Parameters
    ----------
    model_path : str or path-like
        The output the run writes.
    """

    def __init__(self, model_path: str | os.PathLike) -> None:
        self.model_path = Path(model_path)
        self.path = lock_path(model_path)
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock or raise :class:`OutputBusyError`.

        An output whose folder takes no new file raises ``OutputError``.
        """
        while True:
            with _writing(self.model_path):  # a folder that takes no new file
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip()
                os.close(fd)
                raise OutputBusyError(
                    f"another training is writing {self.model_path} "
                    f"({holder or 'a process'}): wait for it to end or choose "
                    "another output"
                ) from None
            if self._same_file(fd):
                break
            os.close(fd)  # removed by its last holder meanwhile: take a fresh one
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, started {started}\n".encode())
        self._fd = fd

    def _same_file(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the lock file and release the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None
