"""Thin napari dock widgets, one module per capability (Qt lives only here)."""

import importlib
import inspect
import threading
from collections import deque
from collections.abc import Callable, Iterable

from napari.qt import threading as napari_threading
from qtpy.QtCore import QThreadPool, QTimer
from superqt.utils import GeneratorWorker


def ensure_pool_threads(minimum: int = 8) -> None:
    """Give Qt's global thread pool at least ``minimum`` threads.

    napari's workers run on ``QThreadPool.globalInstance()``, sized to the
    CPU count (2 on a small CI machine). When every pool thread holds a
    worker that waits for the GIL, Qt's threaded image scaling on the GUI
    thread (napari's activity spinner, started with a progress bar) waits
    for a free pool thread while holding the GIL: a deadlock. Workers that
    mostly wait on the engine cost nothing as threads.
    """
    pool = QThreadPool.globalInstance()
    if pool.maxThreadCount() < minimum:
        pool.setMaxThreadCount(minimum)


class ClosingGeneratorWorker(GeneratorWorker):
    """A generator worker that always closes its generator when it ends.

    superqt's worker stops iterating without closing the generator when it
    is aborted, or when a signal fails because a Qt object was deleted (the
    viewer closed). A suspended :meth:`~napari_digits.engine.client.Engine.
    events` generator holds its engine's request lock, so every later
    request of that engine would wait forever. Closing the generator runs
    its ``finally`` blocks: the lock is released, a running training is
    asked to stop.
    """

    def work(self):  # see GeneratorWorker.work
        try:
            return super().work()
        finally:
            self._gen.close()


def create_worker(func: Callable, *args, **kwargs):
    """Return napari's ``create_worker(func, ...)``, closing generators at the end.

    Parameters
    ----------
    func : callable
        The function to run in a pool thread (a generator function or not).
    *args, **kwargs
        Passed on to :func:`napari.qt.threading.create_worker`.

    Returns
    -------
    napari.qt.threading.WorkerBase
        The worker, started unless ``_start_thread=False``.
    """
    if inspect.isgeneratorfunction(func):
        kwargs.setdefault("_worker_class", ClosingGeneratorWorker)
    return napari_threading.create_worker(func, *args, **kwargs)


#: modules imported on first use in the GUI thread: pandas by napari, the
#: first time a layer with a feature table (Labels, Vectors...) is made, and
#: matplotlib by the Training dock's curves
LAZY_IMPORTS = ("pandas", "matplotlib.figure", "matplotlib.backends.backend_qtagg")


def warm_imports() -> None:
    """Import :data:`LAZY_IMPORTS` in a background thread, once a process.

    Importing pandas takes 0.6 s; napari does it in the GUI thread when the
    first Labels or Vectors layer is added (the first filters shown, the
    first page read), which froze the viewer that long; matplotlib takes
    0.4 s. A dock calls this when it opens, well before its first layer.
    """
    global _warming
    if _warming is None:
        _warming = threading.Thread(
            target=_import_all, name="napari-digits imports", daemon=True
        )
        _warming.start()


_warming: threading.Thread | None = None


def when_warm(callback: Callable[[], object], every_ms: int = 50) -> None:
    """Call ``callback`` in the GUI thread once the background imports are done."""
    if _warming is not None and _warming.is_alive():
        QTimer.singleShot(every_ms, lambda: when_warm(callback, every_ms))
    else:
        callback()


def _import_all() -> None:
    for name in LAZY_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:  # a head start only: the first real use reports it
            return


class OneATurn:
    """Run steps one per turn of the Qt event loop.

    napari takes 60-250 ms of the GUI thread to add a layer here (Mesa
    llvmpipe); a handler that adds four froze the viewer for their sum. One
    step a turn lets the viewer draw and take input between them.
    """

    def __init__(self) -> None:
        self._steps: deque[Callable[[], object]] = deque()

    @property
    def done(self) -> bool:
        """True when no step is left."""
        return not self._steps

    def run(self, steps: Iterable[Callable[[], object]]) -> None:
        """Drop the steps left, run the first of ``steps`` now, the others later."""
        self._steps.clear()
        self._steps.extend(steps)
        self._next()

    def _next(self) -> None:
        if self._steps:
            self._steps.popleft()()
            QTimer.singleShot(0, self._next)
