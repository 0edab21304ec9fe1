"""The viewer's side of the engine process (never imports TensorFlow).

An :class:`Engine` starts the engine process (:func:`napari_digits.engine.
server.main`) with the ``spawn`` context on its first request and keeps it
warm. Requests run one at a time; :meth:`Engine.events` streams a request's
progress and log events and ends with its result. A process that dies or
stays silent too long is reported as :class:`EngineDied` or
:class:`EngineTimeout`, and the next request starts a fresh process.

Examples
--------
>>> from napari_digits.engine.client import get_engine
>>> from napari_digits.engine.protocol import Ping
>>> pid = get_engine().call(Ping())  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing as mp
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait

from napari_digits import scratch
from napari_digits.engine import protocol as p

#: seconds without any event from a busy engine before it counts as hung
DEFAULT_TIMEOUT = 300.0
#: seconds a clean shutdown may take before the process is terminated
SHUTDOWN_GRACE = 3.0


class EngineError(Exception):
    """A request failed in the engine; the message is meant for the user.

    Deliberately not a ``RuntimeError``: napari's generator workers take a
    ``RuntimeError`` for a deleted worker and drop it without a signal, so a
    widget would wait forever.

    ``error_type`` names the exception type raised in the engine process
    (``"FileNotFoundError"``...), or ``"EngineDied"``/``"EngineTimeout"``.
    """

    def __init__(self, message: str, error_type: str = "EngineError") -> None:
        super().__init__(message)
        self.error_type = error_type


class EngineDied(EngineError):
    """The engine process ended while a request was running."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "EngineDied")


class EngineTimeout(EngineError):
    """The engine sent nothing for longer than the timeout; it was terminated."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "EngineTimeout")


class Engine:
    """A handle on one engine process, started lazily and kept warm.

    Parameters
    ----------
    role : str
        A name for logs and messages (``"default"``, ``"training"``).
    timeout : float
        Default silence timeout in seconds for :meth:`events` and :meth:`call`.
    """

    def __init__(self, role: str = "default", *, timeout: float = DEFAULT_TIMEOUT):
        self.role = role
        self.timeout = timeout
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()  # one request at a time
        self._start_lock = threading.Lock()
        self._stop = self._ctx.Event()
        self._process: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._tmp: str | None = None  # the process's own temporary folder
        self._ids = itertools.count(1)
        self._abandoned: int | None = None

    # -- state ------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The engine process id, or None before the first request."""
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        """Whether the engine process is running."""
        return self._process is not None and self._process.is_alive()

    @property
    def busy(self) -> bool:
        """Whether a request is running now."""
        return self._lock.locked()

    def __repr__(self) -> str:
        return f"Engine(role={self.role!r}, pid={self.pid}, alive={self.alive})"

    # -- requests ---------------------------------------------------------

    def events(self, request: object, *, timeout: float | None = None) -> Iterator:
        """Run ``request`` and yield its events, the Result last.

        Parameters
        ----------
        request : Request
            A request dataclass of :mod:`napari_digits.engine.protocol`.
        timeout : float, optional
            Seconds of silence (no event at all) after which the engine counts
            as hung and is terminated; default :attr:`timeout`.

        Yields
        ------
        Progress or Log or Result
            Events as the engine sends them; the last one is the Result.

        Raises
        ------
        EngineError
            If the request failed in the engine (the engine stays warm).
        EngineDied
            If the engine process ended; the next request starts a new one.
        EngineTimeout
            If nothing came for ``timeout`` seconds; the engine was terminated.
        """
        timeout = self.timeout if timeout is None else timeout
        with self._lock:
            conn = self._ensure_started()
            self._finish_abandoned(conn, timeout)
            request_id = next(self._ids)
            try:
                conn.send((request_id, p.pack(request)))
            except (BrokenPipeError, OSError) as exc:
                self._forget()
                raise EngineDied(self._death_message(request)) from exc
            done = False
            try:
                while not done:
                    event = self._receive(conn, request_id, request, timeout)
                    done = isinstance(event, p.Result | p.Failure)
                    if isinstance(event, p.Failure):
                        raise EngineError(event.message, event.error)
                    yield event
            finally:
                if not done and self._conn is conn:
                    # the caller gave up early: stop a training, skip the rest
                    self._stop.set()
                    self._abandoned = request_id
                elif isinstance(request, p.Train):
                    self._stop.clear()  # a stop was for this training only

    def _finish_abandoned(self, conn: Connection, timeout: float) -> None:
        """Wait out the rest of a request whose caller stopped listening."""
        request_id, self._abandoned = self._abandoned, None
        if request_id is None:
            return
        while True:
            event = self._receive(conn, request_id, "an abandoned request", timeout)
            if isinstance(event, p.Result | p.Failure):
                self._stop.clear()
                return

    def call(self, request: object, *, timeout: float | None = None) -> object:
        """Run ``request`` and return its result value (events are dropped).

        See :meth:`events` for the parameters and the exceptions.
        """
        *_, result = self.events(request, timeout=timeout)
        return result.value

    def stop(self) -> None:
        """Ask the running training to stop cleanly after its current batch.

        A training that waits for an earlier request to finish stops after its
        first batch; a stop stays pending until a training has consumed it.
        """
        self._stop.set()

    # -- process life -----------------------------------------------------

    def kill(self) -> None:
        """Kill the engine process at once (SIGKILL); the next request restarts."""
        self._end(None, grace=0.0)

    def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """End the engine: ask it to exit, terminate it after ``grace`` seconds.

        Safe to call at any time, also while a request runs in another thread:
        the process is then terminated at once, and that thread sees it die,
        raises :class:`EngineDied` and cleans up (the pipe is only ever closed
        by the thread that holds the request lock).
        """
        self._stop.set()
        self._end(self._ask_to_exit, grace=grace)

    def _ask_to_exit(self, process, grace: float) -> None:
        """Send Shutdown and wait up to ``grace`` seconds (the lock is held)."""
        try:
            self._conn.send((0, p.pack(p.Shutdown())))
        except (BrokenPipeError, OSError):
            return
        process.join(grace)

    def _end(self, ask, grace: float) -> None:
        """End the process: ``ask`` it first where idle (None: SIGKILL at once)."""
        process, tmp = self._process, self._tmp
        if process is None:
            return
        idle = self._lock.acquire(timeout=0)
        try:
            if idle and ask is not None and process.is_alive():
                ask(process, grace)
            forces = [process.terminate, process.kill][ask is None :]
            for force in forces:
                if process.is_alive():
                    force()
                    process.join(SHUTDOWN_GRACE)
            if tmp is not None and not process.is_alive():
                # also when a request runs: its thread may never see the death
                scratch.remove(tmp)
            if idle:
                self._forget()
        finally:
            if idle:
                self._lock.release()

    def _ensure_started(self) -> Connection:
        """Start the process when there is none (or it died); return the pipe."""
        with self._start_lock:
            if self._process is not None and not self._process.is_alive():
                self._forget()
            if self._process is None:
                from napari_digits.engine import server

                self._stop.clear()  # a stop meant for a dead engine's training
                ours, theirs = self._ctx.Pipe(duplex=True)
                try:
                    tmp = scratch.make(self.role)  # held by both ends
                except OSError:  # no folder: the system's, as TensorFlow's own
                    tmp = None
                process = self._ctx.Process(
                    target=server.main,
                    args=(theirs, self._stop, tmp),
                    name=f"napari-digits-engine-{self.role}",
                    daemon=True,
                )
                try:
                    with main_module_hidden():
                        process.start()
                except BaseException:
                    scratch.remove(tmp)
                    raise
                theirs.close()
                self._process, self._conn, self._tmp = process, ours, tmp
            return self._conn

    def _forget(self) -> None:
        """Drop the handles on a finished process, and its temporary folder.

        The engine ends with ``os._exit`` (or is killed), so TensorFlow never
        removes the files it wrote there (AutoGraph's generated modules): the
        whole folder goes once the process has ended.
        """
        if self._conn is not None:
            self._conn.close()
        if self._process is not None and not self._process.is_alive():
            self._process.join(0)
            scratch.remove(self._tmp)
        self._process, self._conn, self._tmp = None, None, None
        self._abandoned = None

    def _receive(self, conn, request_id: int, request, timeout: float) -> object:
        """Wait for the next event of ``request_id``, watching for death."""
        process = self._process
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            ready = wait([conn, process.sentinel], timeout=max(left, 0))
            if conn in ready:
                try:
                    event_id, event = conn.recv()
                except (EOFError, OSError) as exc:
                    self._on_death(process)
                    raise EngineDied(self._death_message(request, process)) from exc
                deadline = time.monotonic() + timeout
                if event_id == request_id:
                    return event
                continue  # an event of an abandoned earlier request
            if ready:  # the sentinel alone: the process ended
                self._on_death(process)
                raise EngineDied(self._death_message(request, process))
            if time.monotonic() >= deadline:
                self._terminate(process)
                raise EngineTimeout(
                    f"The {self.role} engine sent nothing for {timeout:g} s while "
                    f"running {_request_name(request)}, so it was stopped. "
                    "Try again: the next request starts a fresh engine."
                )

    def _terminate(self, process) -> None:
        """Terminate a hung process (SIGKILL if SIGTERM is not enough)."""
        process.kill()  # a hung or stopped process may ignore SIGTERM
        process.join(SHUTDOWN_GRACE)
        self._forget()

    def _on_death(self, process) -> None:
        process.join(1.0)
        self._forget()

    def _death_message(self, request, process=None) -> str:
        code = process.exitcode if process is not None else None
        how = ""
        if code is not None and code < 0:
            try:
                how = f" (killed by {signal.Signals(-code).name})"
            except ValueError:
                how = f" (signal {-code})"
        elif code:
            how = f" (exit code {code})"
        return (
            f"The {self.role} engine process died{how} while running "
            f"{_request_name(request)}. Try again: the next request starts a "
            "fresh engine."
        )


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """Keep ``spawn`` from re-running the caller's main script in a child.

    ``spawn`` re-imports ``__main__`` in the child by its file: a script
    without an ``if __name__ == "__main__"`` guard would run again there (a
    second viewer), ``python -m napari_digits`` would run its command again,
    and a script read from stdin cannot be found at all. Neither the engine
    nor a Dask worker needs anything from ``__main__``, so they start with a
    bare one.

    Yields
    ------
    None
        While the block runs, ``sys.modules["__main__"]`` is an empty module.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _request_name(request: object) -> str:
    """Return a request's name for messages (``"Train"``)."""
    return request if isinstance(request, str) else type(request).__name__


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(role: str = "default") -> Engine:
    """Return this process's engine for ``role`` (one per role, created once).

    Parameters
    ----------
    role : str
        ``"default"`` for short requests (prediction, filters); the training
        widget uses ``"training"`` so that a running training does not block
        the other widgets.

    Returns
    -------
    Engine
        The engine; its process starts on the first request.
    """
    with _engines_lock:
        if role not in _engines:
            _engines[role] = Engine(role)
        return _engines[role]


def shutdown_all() -> None:
    """Shut down every engine this process started (registered with atexit)."""
    with _engines_lock:
        engines = list(_engines.values())
    for engine in engines:
        engine.shutdown()


atexit.register(shutdown_all)
