"""The journal: rows kept as files finish, finalised atomically into the output.

While ``napari-digits read --out results.csv`` runs, every file read is
appended as one line of JSON to ``results.csv.partial`` and flushed to disk
(``fsync``) before the next is counted as done. A crash, a ``MemoryError``
or a kill loses at most the files being read at that moment; the output is
untouched until the end, when the journal is written into it in page order
(through :func:`napari_digits.results.open_table`: a temporary file then a
rename) and removed. ``--resume`` opens the journal again (and takes the
rows already in the output, for files added to an archive later) and skips
every file in it.

Format: the first line is ``{"journal": 1, "settings": {...}}`` (the
options that change what is read; a resume with other settings is refused);
every other line is ``{"file": ..., "pages": n, "rows": [[...], ...]}``, a
row being the values of :data:`napari_digits.results.CSV_HEADER` without
``file``. A last line cut by a kill is dropped on resume. Pure core.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import groupby
from pathlib import Path

from napari_digits import results
from napari_digits.io import OutputError

VERSION = 1

#: seconds between two ``fsync`` of the journal, at most (see ``_write``)
SYNC_INTERVAL = 0.05
_COLUMNS = results.CSV_HEADER[1:]


class JournalError(OutputError):
    """A journal cannot be used as asked; the message says what to do."""


def journal_path(out: str | os.PathLike) -> Path:
    """Return the journal of an output: ``<out>.partial`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def check_journal(out: str | os.PathLike, *, resume: bool) -> None:
    """Refuse to start over a journal left by an interrupted run (unless resuming).

    Raises
    ------
    JournalError
        When the journal of ``out`` exists and ``resume`` is False.
    """
    path = journal_path(out)
    if path.exists() and not resume:
        raise JournalError(
            f"{path} holds the pages of an interrupted run: add --resume to "
            "carry on, or delete it to start again"
        )


class Journal:
    """An append-only record of the files read so far, one line a file.

    Use :meth:`open`; then :meth:`append` each result, and :meth:`finalise`
    (or :meth:`discard`) at the end.

    Attributes
    ----------
    path : Path
        The journal file.
    done : dict of str to int
        The files recorded (as written in the ``file`` column), with their
        number of pages.
    imported : int
        Files taken from an existing output by ``resume``.
    """

    def __init__(self, path: Path, handle, entries: list[tuple[str, int]]) -> None:
        self.path = path
        self._handle = handle
        self._entries = entries  # (file, byte offset of its line), in journal order
        self.done: dict[str, int] = {}
        self.imported = 0
        self._dirty, self._synced = False, -SYNC_INTERVAL

    @classmethod
    def open(
        cls,
        out: str | os.PathLike,
        *,
        settings: Mapping[str, object],
        resume: bool = False,
    ) -> Journal:
        """Start the journal of ``out``, or take up an interrupted one.

        Parameters
        ----------
        out : str or path-like
            The output table (CSV, or Parquet by its suffix).
        settings : mapping
            The options that change the rows (model, ink...), JSON-able.
        resume : bool
            Carry on the journal left by an interrupted run, and count the
            files already in ``out`` as done.

        Raises
        ------
        JournalError
            When a journal is there and ``resume`` is False (it holds the
            rows of an interrupted run), or ``resume`` meets other settings.
        """
        path = journal_path(out)
        settings = json.loads(json.dumps(dict(settings)))
        check_journal(out, resume=resume)
        if path.exists():
            return cls._reopen(path, settings)
        journal = cls._create(path, settings)
        if resume and Path(out).exists():
            journal._import(Path(out))
        return journal

    @classmethod
    def _create(cls, path: Path, settings: dict) -> Journal:
        handle = open(path, "xb")  # kept open until finalise
        journal = cls(path, handle, [])
        journal._write({"journal": VERSION, "settings": settings})
        return journal

    @classmethod
    def _reopen(cls, path: Path, settings: dict) -> Journal:
        handle = open(path, "r+b")  # kept open until finalise
        header, entries, end = _scan(handle, path)
        if header.get("settings") != settings:
            handle.close()
            raise JournalError(
                f"{path} was read with other settings ({_differences(header, settings)}"
                "): resume with the same options, or delete it to start again"
            )
        handle.seek(end)
        handle.truncate()  # a line cut by a kill
        journal = cls(path, handle, [(file, offset) for file, offset, _ in entries])
        journal.done = {file: pages for file, _, pages in entries}
        return journal

    def _import(self, out: Path) -> None:
        """Record the rows already in ``out``, one entry per run of one file."""
        try:
            for file, rows in groupby(results.iter_table(out), lambda r: r.file):
                rows = list(rows)
                pages = len({r.page for r in rows})
                self.append(file, pages, rows)
                self.imported += 1
        except (OSError, ValueError, KeyError) as exc:
            self.discard()
            raise JournalError(
                f"--resume: cannot read the rows already in {out} ({exc}); "
                "move it away to start again"
            ) from None

    def append(self, file: str, pages: int, rows: Sequence[results.DigitRow]) -> None:
        """Record a file read: its name, its number of pages, its rows.

        The line survives a kill of this process when this returns, and is
        on disk within :data:`SYNC_INTERVAL` seconds.
        """
        offset = self._handle.seek(0, os.SEEK_END)
        values = [results.row_values(r)[1:] for r in rows]
        self._write({"file": file, "pages": pages, "rows": values})
        self._entries.append((file, offset))
        self.done[file] = pages

    def _write(self, record: dict) -> None:
        """Append a line; it is in the OS's hands at once (a kill keeps it).

        It is on disk (``fsync``) at once too, unless the last ``fsync`` was
        less than :data:`SYNC_INTERVAL` ago: then with the next line, or at
        the end (at most that long of pages is exposed to a power cut when
        many workers deliver pages faster than a disk syncs).
        """
        self._handle.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._handle.flush()
        self._dirty = True
        if time.monotonic() - self._synced >= SYNC_INTERVAL:
            self._sync()

    def _sync(self) -> None:
        if self._dirty and not self._handle.closed:
            os.fsync(self._handle.fileno())
            self._dirty, self._synced = False, time.monotonic()

    @property
    def pages(self) -> int:
        """Pages recorded (of every file in the journal)."""
        return sum(self.done.values())

    def records(self, order: Callable[[str], int]) -> Iterator[list[list[object]]]:
        """Yield each file's rows as values, files sorted by ``order(file)``.

        Files of equal order keep the journal's order. A row's values follow
        :data:`~napari_digits.results.CSV_HEADER`. Memory holds one file's
        rows at a time (and one offset a file).
        """
        keys = [(order(file), k) for k, (file, _) in enumerate(self._entries)]
        self._sync()
        with open(self.path, "rb") as f:
            for _, k in sorted(keys):
                f.seek(self._entries[k][1])
                record = json.loads(f.readline())
                yield [[record["file"], *values] for values in record["rows"]]

    def finalise(self, out: str | os.PathLike, order: Callable[[str], int]) -> int:
        """Write every row into ``out`` atomically, in order; remove the journal.

        Returns
        -------
        int
            The number of rows written.
        """
        with results.open_table(out) as table:
            batch: list[list[object]] = []
            for values in self.records(order):
                batch.extend(values)
                if len(batch) >= 65536:
                    table.write_values(batch)
                    batch = []
            table.write_values(batch)
        self.discard()
        return table.count

    def discard(self) -> None:
        """Close and remove the journal (what it held is dropped)."""
        self._handle.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the journal and keep it, for a later ``--resume``."""
        self._sync()
        self._handle.close()


def _scan(handle, path: Path) -> tuple[dict, list[tuple[str, int, int]], int]:
    """Read a journal: header, (file, offset, pages) entries, end of the last line."""
    header: dict = {}
    entries: list[tuple[str, int, int]] = []
    offset = end = 0
    handle.seek(0)
    for line in handle:
        try:
            record = json.loads(line) if line.endswith(b"\n") else None
        except ValueError:
            record = None
        if record is None:
            break
        if offset == 0:
            header = record
        else:
            entries.append((record["file"], offset, int(record["pages"])))
        offset = end = offset + len(line)
    if header.get("journal") != VERSION:
        handle.close()
        raise JournalError(
            f"{path} is not a journal of this version: delete it to start again"
        )
    return header, entries, end


def _differences(header: dict, settings: dict) -> str:
    old = header.get("settings") or {}
    keys = sorted(set(old) | set(settings))
    return "; ".join(
        f"{k}: {old.get(k)!r} then, {settings.get(k)!r} now"
        for k in keys
        if old.get(k) != settings.get(k)
    )
