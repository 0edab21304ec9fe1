"""Tasks that fail on purpose, run on Dask workers (pickled by value)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from napari_digits.archive.cluster import read_on_worker


def killing_task(job, options):
    """Kill this worker process in the middle of a page.

    A file named ``poison*`` kills its worker every time; any other file
    whose name is in the ``kill-once`` list beside it kills its worker the
    first time only (a marker file remembers).
    """
    path = Path(job.path)
    marker = path.with_name(path.name + ".killed")
    once = path.with_name("kill-once").read_text().split()
    if path.name.startswith("poison") or (path.name in once and not marker.exists()):
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return read_on_worker(job, options)


def tf_threads() -> tuple[int, int]:
    """The worker's TensorFlow thread pools (intra-op, inter-op)."""
    import tensorflow as tf

    threading = tf.config.threading
    return (
        threading.get_intra_op_parallelism_threads(),
        threading.get_inter_op_parallelism_threads(),
    )


def dashboard_samplers() -> tuple[bool, str]:
    """The worker's profiler switch and tick interval (no dashboard to feed)."""
    import dask

    return (
        dask.config.get("distributed.worker.profile.enabled"),
        dask.config.get("distributed.admin.tick.interval"),
    )


def slowly(value, seconds: float = 2.0):
    """Return ``value`` after ``seconds`` (a task still running when looked at)."""
    import time

    time.sleep(seconds)
    return value
