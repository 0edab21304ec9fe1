"""Reading files on a Dask cluster: a ``LocalCluster`` or a user's scheduler.

The client (the command line's process) never imports TensorFlow: each
worker loads the model once, in :class:`ModelPlugin`'s ``setup`` (again
after a restart), and reads whole files with
:func:`napari_digits.archive.pages.read_job`. Files are streamed: at most
``window`` are submitted at a time and each finished one is replaced by the
next, so that the client's memory does not grow with the archive.

A file whose worker dies (killed, out of memory) or that raises is tried
once more; a file that fails twice comes back as a
:class:`~napari_digits.archive.pages.FileResult` with an ``error``. Workers
must see the files (and the model, and the annotated folder) at the same
paths as the client: a shared file system.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from distributed.diagnostics.plugin import WorkerPlugin

from napari_digits import scratch
from napari_digits.archive.pages import FileResult, PageJob, ReadOptions, read_job
from napari_digits.engine.client import main_module_hidden

#: the plugin's name on every worker
PLUGIN = "napari-digits-model"

#: seconds to wait for a scheduler (and for its first worker)
CONNECT_TIMEOUT = 5.0


class ClusterError(RuntimeError):
    """The cluster cannot be reached or cannot read; the message says why."""


def _dask_config(timeout: float) -> dict[str, object]:
    return {
        # a worker dying during a task fails the task at once: the client
        # retries it once, on another worker, so two deaths skip the file;
        # a worker holds only the task it runs, so that its death does not
        # count against files queued behind it
        "distributed.scheduler.allowed-failures": 0,
        "distributed.scheduler.worker-saturation": 1.0,
        "distributed.comm.timeouts.connect": f"{timeout}s",
        # no dashboard to feed: the scheduler's and nannies' system samples
        # and event-loop ticks cost the client a third of its CPU a page, and
        # each worker's statistical profiler (a sample every 10 ms) 1-2% of
        # its CPU
        "distributed.admin.system-monitor.interval": "5s",
        "distributed.admin.tick.interval": "1s",
        "distributed.worker.profile.enabled": False,
    }


@contextlib.contextmanager
def connect(
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> Iterator[object]:
    """Yield a ``distributed.Client``: on N local worker processes, or a scheduler.

    Parameters
    ----------
    workers : int, optional
        Start a ``LocalCluster`` of this many worker processes, one thread
        each, on 127.0.0.1 (no dashboard); it is shut down at the end.
    scheduler : str, optional
        The address of a running scheduler (``tcp://host:8786``).
    timeout : float
        Seconds to wait for the scheduler and for at least one worker.

    Raises
    ------
    ClusterError
        When nothing answers at ``scheduler``, or it has no worker.
    """
    import dask
    from distributed import Client, LocalCluster

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # inherited by local workers
    _quiet_logs()
    with dask.config.set(_dask_config(timeout)), main_module_hidden():
        if scheduler is None:
            # the workers' temporary files (TensorFlow's, Dask's scratch
            # space) in a folder of the cluster's own, removed with it: a
            # worker that is killed cannot remove its own (and after a kill
            # of this process too, the next sweep removes it)
            with (
                scratch.folder("workers") as tmp,
                dask.config.set({"temporary-directory": tmp}),
                LocalCluster(
                    n_workers=workers or 1,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.CRITICAL,
                    local_directory=tmp,
                    env={"TMPDIR": tmp},  # set in each worker, not in this process
                ) as cluster,
                Client(cluster, set_as_default=False) as client,
            ):
                yield client
            return
        client = _client(scheduler, timeout)
        try:
            yield client
        finally:
            client.close()


def _client(address: str, timeout: float):
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(
            f"no Dask scheduler answers at {address} within {timeout:g} s "
            f"({type(exc).__name__}); start one with 'dask scheduler'"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise ClusterError(
            f"the scheduler at {address} has no worker ({type(exc).__name__}); "
            f"start some with 'dask worker {address}'"
        ) from None
    return client


def _quiet_logs() -> None:
    """Keep distributed's INFO and WARNING lines off the terminal."""
    for name in ("distributed", "distributed.client", "distributed.scheduler"):
        logging.getLogger(name).setLevel(logging.ERROR)


class ModelPlugin(WorkerPlugin):
    """Load the model once a worker; ``predict`` then classifies crops.

    An unusable model is kept as ``error`` (a message) rather than raised,
    so that :func:`load_model` can report it in one line.
    """

    name = PLUGIN

    def __init__(self, model: str) -> None:
        self.model = model
        self.error: str | None = None
        self.predict: Callable | None = None

    def setup(self, worker=None) -> None:
        """Import TensorFlow and load the model (a worker calls this once)."""
        import numpy as np

        from napari_digits.allocator import reuse_freed_memory
        from napari_digits.cli._engine import engine_models

        # the nanny's MALLOC_TRIM_THRESHOLD_=65536 has every page-sized array
        # zeroed anew by the kernel: keep freed blocks for the next page
        reuse_freed_memory()
        models = engine_models()  # TensorFlow imported, not started
        from napari_digits.engine.devices import limit_threads  # needs TensorFlow

        # one thread a task, as Dask sets for numpy's libraries (OMP_NUM_THREADS)
        limit_threads(1)
        try:
            models.predict(self.model, np.zeros((1, 28, 28), np.uint8))
        except (ValueError, OSError) as exc:  # ModelFileError is a ValueError
            self.error = str(exc)
            return
        self.predict = lambda crops: models.predict(self.model, crops)

    def teardown(self, worker=None) -> None:
        """Drop the model."""
        self.predict = None


def load_model(client, model: str) -> int:
    """Have every worker (and every worker that joins later) load ``model``.

    Returns
    -------
    int
        The number of workers that loaded it.

    Raises
    ------
    ClusterError
        When a worker cannot use the model (the message says why).
    """
    try:
        client.register_plugin(ModelPlugin(model), name=PLUGIN)
        errors = client.run(_plugin_error)
    except Exception as exc:  # a worker without napari-digits, TensorFlow...
        raise ClusterError(
            f"the workers cannot load the model ({type(exc).__name__}: {exc}); "
            "install napari-digits where they run"
        ) from None
    for error in errors.values():
        if error:
            raise ClusterError(error)
    return len(errors)


def _plugin_error(dask_worker) -> str | None:
    plugin = dask_worker.plugins.get(PLUGIN)
    return "the model plugin is missing" if plugin is None else plugin.error


def read_on_worker(job: PageJob, options: ReadOptions) -> FileResult:
    """Read one file on a worker, with the model its plugin loaded."""
    from distributed import get_worker

    plugin = get_worker().plugins[PLUGIN]
    if plugin.predict is None:
        raise ClusterError(plugin.error or "the model is not loaded on this worker")
    return read_job(job, plugin.predict, options)


def stream(
    client,
    jobs: Iterable[PageJob],
    options: ReadOptions,
    *,
    window: int | None = None,
    task: Callable[[PageJob, ReadOptions], FileResult] = read_on_worker,
) -> Iterator[FileResult]:
    """Read ``jobs`` on the cluster; yield results as they finish.

    Parameters
    ----------
    client : distributed.Client
        With :func:`load_model` done.
    jobs : iterable of PageJob
        Consumed lazily: at most ``window`` are in flight.
    options : ReadOptions
        How to read the pages.
    window : int, optional
        Files submitted at a time (default: twice the workers' threads, plus 2).
    task : callable
        What a worker runs for a job (tests put a failing one here).

    Yields
    ------
    FileResult
        In the order files finish; one that failed twice has an ``error``.
    """
    from distributed import as_completed

    if window is None:
        threads = sum(client.nthreads().values())
        window = 2 * max(threads, 1) + 2
    token = uuid.uuid4().hex[:12]
    todo = iter(jobs)
    tries: dict[str, tuple[PageJob, int]] = {}

    def submit(job: PageJob, attempt: int = 1):
        key = f"napari-digits-read-{token}-{job.order}-{attempt}"
        tries[key] = (job, attempt)
        return client.submit(task, job, options, key=key, pure=False)

    first = [submit(job) for job in islice(todo, window)]
    running = as_completed(first, loop=client.loop)
    for batch in running.batches():  # every future finished since the last batch
        sent = [tries.pop(future.key) for future in batch]
        outcomes = _outcomes(client, batch, [job for job, _ in sent])
        for future, (job, attempt), (result, ok) in zip(
            batch, sent, outcomes, strict=True
        ):
            future.release()
            if not ok and attempt < 2:
                running.add(submit(job, attempt + 1))
                continue
            for following in islice(todo, 1):
                running.add(submit(following))
            yield result


def _outcomes(
    client, futures: list, jobs: list[PageJob]
) -> list[tuple[FileResult, bool]]:
    """Fetch the results of finished futures in one round trip (when all can be)."""
    if all(f.status == "finished" for f in futures):
        try:
            return [(r, True) for r in client.gather(futures)]
        except Exception:  # a worker died holding a result: one by one below
            pass
    return [_outcome(f, job) for f, job in zip(futures, jobs, strict=True)]


def _outcome(future, job: PageJob) -> tuple[FileResult, bool]:
    """Return the future's result and True, or a failed result and False.

    A task fails when it raised or when its worker died running it. A result
    lost with its worker after the task had finished is not a failure: Dask
    computes it again for the future this client holds, and this waits for
    it (counting it as a failure skipped pages whose workers another page
    had killed).
    """
    try:
        return future.result(), True
    except Exception as exc:
        return _failed(job, exc), False


def _failed(job: PageJob, exc: BaseException | None) -> FileResult:
    name = type(exc).__name__
    if name == "KilledWorker":
        why = "its worker died twice (killed, or out of memory)"
    else:
        why = f"it failed twice: {name}: {exc}"
    return FileResult(job.order, job.path, error=why)
