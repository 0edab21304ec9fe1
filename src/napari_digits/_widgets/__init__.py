"""Thin napari dock widgets, one module per capability (Qt lives only here)."""

from qtpy.QtCore import QThreadPool


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
