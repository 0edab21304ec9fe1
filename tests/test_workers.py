"""A worker that stops early still closes its generator, so an engine request
lock held across a ``yield`` is released (one full-suite run hung here: after
the viewer closed mid-training, every later training request waited)."""

from __future__ import annotations

import threading

import pytest

from napari_digits._widgets import ClosingGeneratorWorker, create_worker
from napari_digits.engine.client import get_engine
from napari_digits.engine.protocol import Ping


def _holding(lock: threading.Lock, ended: list):
    """Yield forever while holding ``lock``, as Engine.events does."""
    with lock:
        try:
            while True:
                yield 1
        finally:
            ended.append(True)


def test_generator_functions_get_the_closing_worker(qtbot):
    worker = create_worker(_holding, threading.Lock(), [], _start_thread=False)
    assert isinstance(worker, ClosingGeneratorWorker)
    plain = create_worker(sum, [1, 2], _start_thread=False)
    assert not isinstance(plain, ClosingGeneratorWorker)


@pytest.mark.filterwarnings("ignore:RuntimeError in aborted thread:RuntimeWarning")
@pytest.mark.parametrize("how", ["quit", "deleted signal"])
def test_a_worker_that_stops_early_releases_the_lock(qtbot, how):
    lock, ended = threading.Lock(), []
    worker = create_worker(_holding, lock, ended, _start_thread=False)
    if how == "quit":
        worker.yielded.connect(lambda _: worker.quit())
    else:
        # what a signal of a deleted Qt object raises in the worker thread
        class Deleted:
            def emit(self, *_):
                raise RuntimeError("wrapped C/C++ object has been deleted")

        worker.yielded.connect(lambda _: setattr(worker, "yielded", Deleted()))
    worker.start()
    # the worker object is still referenced here: its generator is not
    # garbage, so only an explicit close releases the lock
    qtbot.waitUntil(lambda: ended == [True], timeout=5000)
    qtbot.waitUntil(lambda: not lock.locked(), timeout=2000)


def test_an_engine_request_stopped_early_leaves_the_engine_free(qtbot):
    engine = get_engine("workers-test")
    try:

        def two_pings():
            yield from engine.events(Ping())
            yield from engine.events(Ping())

        worker = create_worker(two_pings, _start_thread=False)
        worker.yielded.connect(lambda _: worker.quit())
        with qtbot.waitSignal(worker.finished, timeout=60_000):
            worker.start()
        assert not engine.busy
        assert engine.call(Ping(), timeout=60) == engine.pid  # not waiting forever
    finally:
        engine.shutdown()
