"""Each page's corrections, kept on disk as they are typed.

Pure Python and numpy (no Qt, no TensorFlow). The Read digits widget writes
the corrected rows of a page to ``~/napari-digits/corrections/KEY.csv`` after
every correction (atomically, :func:`napari_digits.results.write_csv`), so
that a viewer that crashes or is closed loses none of them; reading a page
with the same pixels again, in any session and from any file, brings them
back (:func:`napari_digits.results.carry_corrections`). ``KEY`` names the
page's pixels (:func:`page_key`), not its file. Undoing every correction of a
page removes its file; removing the folder is always safe.

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> key = page_key(np.zeros((4, 4), np.uint8))
>>> load(key, "page.png", folder)
[]
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_digits.results import DigitRow, read_csv, write_csv

#: where the widget keeps each page's corrections
FOLDER = Path.home() / "napari-digits" / "corrections"


def page_key(page: np.ndarray) -> str:
    """Return a name for a page's pixels: the same pixels give the same key.

    Parameters
    ----------
    page : numpy.ndarray
        The page as read (2D, or RGB/RGBA), any dtype.

    Returns
    -------
    str
        24 hexadecimal characters (BLAKE2b of the shape, dtype and pixels;
        about 60 ms for a 64 MB page).
    """
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{page.shape} {page.dtype.str}".encode())
    digest.update(np.ascontiguousarray(page).view(np.uint8).reshape(-1))
    return digest.hexdigest()


def path_of(key: str, folder: Path | None = None) -> Path:
    """Return the file that keeps the corrections of the page ``key``."""
    return (folder or FOLDER) / f"{key}.csv"


def save(rows: Sequence[DigitRow], key: str, folder: Path | None = None) -> int:
    """Keep the corrected rows of a page; remove its file when there are none.

    Parameters
    ----------
    rows : sequence of DigitRow
        The page's table.
    key : str
        :func:`page_key` of the page.
    folder : Path, optional
        Default :data:`FOLDER` (made when missing).

    Returns
    -------
    int
        The corrections kept.

    Raises
    ------
    OSError
        When the folder or the file cannot be written (the previous file, if
        any, is left whole).
    """
    path = path_of(key, folder)
    corrected = [r for r in rows if r.corrected is not None]
    if not corrected:
        path.unlink(missing_ok=True)
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(corrected, path)


def load(key: str, file: str, folder: Path | None = None) -> list[DigitRow]:
    """Return the corrections kept for the page ``key``, as rows of ``file``.

    Parameters
    ----------
    key : str
        :func:`page_key` of the page.
    file : str
        The file the page is read from now: the kept rows take its name, so
        that they carry over to it (the pixels are the same).
    folder : Path, optional
        Default :data:`FOLDER`.

    Returns
    -------
    list of DigitRow
        The kept corrected rows; empty when none were kept.

    Raises
    ------
    ValueError
        When the file is damaged (the message names it).
    """
    path = path_of(key, folder)
    try:
        rows = read_csv(path)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:  # results.read_csv names the problem
        raise ValueError(f"cannot read the corrections kept in {path}: {exc}") from None
    return [dataclasses.replace(r, file=file) for r in rows if r.corrected is not None]
