"""Temporary folders of napari-digits' processes, removed even after a kill.

Pure standard library (no Qt, no TensorFlow). TensorFlow writes files to the
temporary folder (AutoGraph's generated modules) and removes them with
:mod:`atexit`, which never runs for a process that is killed or ends with
``os._exit`` (the engine does). So each process of ours that runs TensorFlow
gets a folder of its own, ``napari-digits-ROLE-XXXXXXXX`` in the system's
temporary folder, removed when it ends. The folder is alive while a process
holds a shared lock (``flock``) on its ``.alive`` file: the kernel drops the
lock with the last process holding it, however it ends, so :func:`sweep`
(run whenever a folder is made) removes exactly the folders every holder of
which was killed (a viewer and its engine killed at once, a command killed
with SIGKILL). A folder without ``.alive`` is never removed by a sweep.
Where ``fcntl`` is missing (Windows), folders are made and removed, and not
swept.

Examples
--------
>>> folder = make("doc")
>>> os.path.basename(folder).startswith("napari-digits-doc-")
True
>>> remove(folder)
>>> os.path.exists(folder)
False
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # Windows: no sweep
    fcntl = None  # type: ignore[assignment]

#: every folder made here is named ``PREFIX + role + "-" + 8 characters``
PREFIX = "napari-digits-"
#: the file whose lock keeps a folder alive
ALIVE = ".alive"
_NAME = re.compile(re.escape(PREFIX) + r"[a-z0-9-]+-[a-z0-9_]{8}")
_held: dict[str, int] = {}  # folder -> descriptor holding its lock


def make(role: str) -> str:
    """Make a temporary folder held by this process (stale ones swept first).

    Parameters
    ----------
    role : str
        Lower-case letters, digits and dashes: names the folder
        (``"training"``, ``"workers"``, ``"command"``).

    Returns
    -------
    str
        The folder; :func:`hold` it in the processes that use it, and
        :func:`remove` it when they are done.
    """
    sweep()
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{role}-")
    if fcntl is not None:  # the lock file appears already locked: no sweep
        new = os.path.join(folder, ALIVE + ".new")  # can take it in between
        fd = os.open(new, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        os.replace(new, os.path.join(folder, ALIVE))
        _held[folder] = fd
    return folder


def hold(folder: str) -> None:
    """Keep ``folder`` (made by :func:`make` in another process) alive.

    The lock lasts as long as this process, or until :func:`release`.

    Raises
    ------
    OSError
        When the folder is gone (swept: every process that held it ended).
    """
    if fcntl is None or folder in _held:
        return
    fd = os.open(os.path.join(folder, ALIVE), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held[folder] = fd


def release(folder: str) -> None:
    """Stop holding ``folder`` (no-op when this process does not hold it)."""
    fd = _held.pop(folder, None)
    if fd is not None:
        os.close(fd)


def remove(folder: str | None) -> None:
    """Release and remove ``folder`` with everything in it (None: no-op)."""
    if folder is None:
        return
    release(folder)
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def folder(role: str) -> Iterator[str]:
    """Make a folder held by this process (:func:`make`); remove it on exit."""
    path = make(role)
    try:
        yield path
    finally:
        remove(path)


def use_own(role: str = "command") -> str:
    """Make this process's temporary files go to a folder of its own.

    Sets :data:`tempfile.tempdir` and ``TMPDIR`` (inherited by child
    processes) to a new folder, removed at exit or by a later sweep after a
    kill. Call it before TensorFlow is imported. A process whose temporary
    folder is already one of ours (an engine, a local Dask worker) keeps it,
    and so does one where no folder can be made (the work is not refused
    for its clean-up).

    Returns
    -------
    str
        The temporary folder now in use.
    """
    current = tempfile.gettempdir()
    if _NAME.fullmatch(os.path.basename(current)):
        return current
    try:
        folder = make(role)
    except OSError:
        return current
    os.environ["TMPDIR"] = tempfile.tempdir = folder
    atexit.register(remove, folder)
    return folder


def sweep(root: str | None = None) -> list[str]:
    """Remove the folders of ours that no living process holds.

    Parameters
    ----------
    root : str, optional
        Where to look; default the system's temporary folder.

    Returns
    -------
    list of str
        The folders removed. Only this user's folders named as :func:`make`
        names them and holding ``.alive`` are considered.
    """
    if fcntl is None:
        return []
    try:
        entries = list(os.scandir(root or tempfile.gettempdir()))
    except OSError:
        return []
    removed = []
    for entry in entries:
        if entry.path in _held or not _NAME.fullmatch(entry.name):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        if _unheld(entry.path):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def _unheld(folder: str) -> bool:
    """Whether ``folder``'s lock file exists and no process holds its lock."""
    try:
        fd = os.open(os.path.join(folder, ALIVE), os.O_RDONLY)
    except OSError:
        return False  # no lock file: not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held
    finally:
        os.close(fd)
    return True
