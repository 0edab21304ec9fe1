"""Devices: map the user's choice (auto, cpu, gpu, GPU:N) to TensorFlow's.

Imports TensorFlow: runs only in the engine process or a command-line process.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from napari_digits.engine._tf import tf


class DeviceError(ValueError):
    """The requested device does not exist on this machine."""


def resolve_device(device: str) -> str:
    """Map ``"auto"``, ``"cpu"``, ``"gpu"`` or ``"GPU:1"`` to a TensorFlow device.

    Parameters
    ----------
    device : str
        The user's choice.

    Returns
    -------
    str
        A device string for :func:`tf.device` (``"/CPU:0"``, ``"/GPU:0"``...).

    Raises
    ------
    DeviceError
        If a GPU is asked for where TensorFlow sees none, or the name is unknown.
    """
    gpus = tf.config.list_logical_devices("GPU")
    choice = device.strip().upper()
    if choice == "AUTO":
        return "/GPU:0" if gpus else "/CPU:0"
    if choice in ("CPU", "CPU:0"):
        return "/CPU:0"
    match = re.fullmatch(r"GPU(?::(\d+))?", choice)
    if match is None:
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, gpu or GPU:N")
    index = int(match.group(1) or 0)
    if index >= len(gpus):
        seen = f"{len(gpus)} GPU(s)" if gpus else "no GPU"
        raise DeviceError(
            f"device {device!r} is not available: TensorFlow sees {seen} here. "
            "Choose auto or cpu."
        )
    return f"/GPU:{index}"


@contextlib.contextmanager
def device_scope(device: str) -> Iterator[str]:
    """Run the body on ``device`` (see :func:`resolve_device`); yield its name."""
    name = resolve_device(device)
    with tf.device(name):
        yield name


def limit_threads(threads: int) -> bool:
    """Give TensorFlow ``threads`` CPU threads for one op and between ops.

    A Dask worker runs one task a thread, as many as its cores: TensorFlow's
    default pools (one thread a core) would compete with the other tasks.
    Must run before TensorFlow's first operation.

    Returns
    -------
    bool
        False where TensorFlow had already started (nothing changed).
    """
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime is initialised: too late
        return False
    return True
