"""The engine process: a loop that answers protocol requests with TensorFlow.

:func:`main` runs in a child process started with ``spawn`` by
:class:`napari_digits.engine.client.Engine`. It reads ``(request_id,
request)`` pairs from a pipe and writes ``(request_id, event)`` pairs back:
any number of :class:`~napari_digits.engine.protocol.Progress` and
:class:`~napari_digits.engine.protocol.Log` events, then one
:class:`~napari_digits.engine.protocol.Result` or
:class:`~napari_digits.engine.protocol.Failure`. An exception in a request
becomes a Failure and never ends the loop; a
:class:`~napari_digits.engine.protocol.Shutdown` request or a closed pipe
does.

TensorFlow is imported lazily, by :mod:`napari_digits.engine.models`, on the
first request that needs it, so that a ``Ping`` answers at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from napari_digits import scratch
from napari_digits.engine import protocol as p

#: environment the engine sets before TensorFlow loads (quiet C++ logging)
ENGINE_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}
#: how much the engine lowers its CPU priority, so that the viewer (and the
#: X server) win the cores whenever they need them while a training runs
ENGINE_NICENESS = 10
#: the temporary folder :func:`main` was given, for :func:`_leave`
_own_tmp: list[str] = []


def main(conn: Connection, stop: Any, tmp: str | None = None) -> None:
    """Serve requests from ``conn`` until Shutdown or until the pipe closes.

    Parameters
    ----------
    conn : multiprocessing.connection.Connection
        The engine's end of a duplex pipe to the viewer process.
    stop : multiprocessing.synchronize.Event
        Set by the client to ask a running training to stop at the next batch.
    tmp : str, optional
        A folder of this process's own for temporary files (``TMPDIR``),
        removed by :func:`_leave` or, after a kill, by the client, or by a
        later sweep when both were killed (:mod:`napari_digits.scratch`):
        ``os._exit`` skips the clean-up TensorFlow registers with :mod:`atexit`.
    """
    for key, value in ENGINE_ENV.items():
        os.environ.setdefault(key, value)
    if tmp is not None:
        os.environ["TMPDIR"] = tempfile.tempdir = tmp
        _own_tmp.append(tmp)
        with contextlib.suppress(OSError):  # gone: the viewer is gone too
            scratch.hold(tmp)  # kept from a sweep while either end lives
    if hasattr(os, "nice"):
        os.nice(ENGINE_NICENESS)
    # SIGTERM (``timeout``, a logout, ``kill``) often reaches the viewer's
    # whole process group: leave as when the viewer goes, folder removed
    signal.signal(signal.SIGTERM, lambda *_: _leave())
    while True:
        try:
            request_id, request = p.unpack(conn.recv())
        except (EOFError, OSError):
            _leave()  # the viewer went away
        except Exception as exc:  # a message that does not unpickle: say so
            _refuse(conn, getattr(exc, "request_id", None), exc)
            continue
        if isinstance(request, p.Shutdown):
            conn.close()
            _leave()  # skip TensorFlow's slow interpreter teardown
        send = _sender(conn, request_id)
        try:
            send(p.Result(handle(request, send=send, should_stop=stop.is_set)))
        except (BrokenPipeError, EOFError):
            _leave()  # the viewer went away mid-request
        except BaseException as exc:  # every error goes back to the viewer
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            try:
                send(p.Failure(type(exc).__name__, str(exc) or repr(exc)))
            except (BrokenPipeError, OSError):
                _leave()


def _leave() -> None:
    """Remove this process's temporary folder and exit at once.

    ``os._exit`` skips TensorFlow's slow interpreter teardown; a viewer that
    was killed can no longer remove the folder, so the engine does it here.
    """
    if _own_tmp:
        shutil.rmtree(_own_tmp[0], ignore_errors=True)
    os._exit(0)


def _refuse(conn: Connection, request_id: int | None, exc: Exception) -> None:
    """Answer a message that is no readable request with a Failure; carry on.

    Raw garbage has no id the client waits for: the answer (id None) is then
    only skipped by the client, and the engine stays up for the next request.
    """
    message = (
        str(exc)
        if isinstance(exc, p.UnreadableRequest)
        else (
            "the engine received a message it cannot read "
            f"({type(exc).__name__}: {exc})"
        )
    )
    try:
        conn.send((request_id, p.Failure("UnreadableRequest", message)))
    except (BrokenPipeError, OSError):
        _leave()


def _sender(conn: Connection, request_id: int) -> Callable[[object], None]:
    """Return a function that sends one event tagged with ``request_id``."""

    def send(event: object) -> None:
        conn.send((request_id, event))

    return send


def handle(
    request: object,
    *,
    send: Callable[[object], None],
    should_stop: Callable[[], bool],
) -> object:
    """Run one request in this process and return its result value.

    Parameters
    ----------
    request : Request
        One of the request dataclasses of :mod:`~napari_digits.engine.protocol`.
    send : callable
        Sends a Progress or Log event back to the viewer.
    should_stop : callable
        True once the viewer asked a training to stop.

    Returns
    -------
    object
        The value the Result event carries.

    Raises
    ------
    TypeError
        If ``request`` is not a request this engine knows.
    """
    if isinstance(request, p.Ping):
        return os.getpid()
    run = _MODEL_REQUESTS.get(type(request))
    if run is None:
        raise TypeError(
            f"the engine does not know the request {type(request).__name__!r}"
        )
    if hasattr(request, "validate"):
        request.validate()  # unpickling skipped the checks of __init__
    from napari_digits.engine import models

    return run(models, request, send, should_stop)


def _train(models, request: p.Train, send, should_stop) -> p.TrainingResult:
    """Run a training, streaming its progress and log lines."""
    return models.train(
        request.config,
        on_progress=lambda progress: send(p.Progress(progress)),
        should_stop=should_stop,
        log=lambda message: send(p.Log(str(message))),
    )


#: requests answered by a function of :mod:`napari_digits.engine.models`
_MODEL_REQUESTS = {
    p.ListDevices: lambda m, *_: m.list_devices(),
    p.Train: _train,
    p.Finetune: lambda m, r, send, *_: m.finetune(
        r.config, log=lambda message: send(p.Log(str(message)))
    ),
    p.Evaluate: lambda m, r, *_: m.evaluate(
        r.model,
        mnist=r.mnist,
        limit=r.limit,
        predictions=r.predictions,
        download=r.download,
    ),
    p.Predict: lambda m, r, *_: m.predict(r.model, r.images),
    p.GetFirstLayer: lambda m, r, *_: m.first_layer(r.model),
    p.FeatureMaps: lambda m, r, *_: m.feature_maps(r.model, r.image, depth=r.depth),
    p.Describe: lambda m, r, *_: m.describe(r.model),
}
