"""One loader for every image a user has, and atomic writes for every file.

Every file this project writes goes through :func:`atomic_path` (or
:func:`atomic_open`): the data is written to a temporary file in the same
folder, flushed to disk, then renamed over the target, so that a kill or a
full disk leaves either the old file or the complete new one, never a
half-written file, and no temporary file behind.

:func:`check_output` refuses, before any work starts, an output that is an
input, a folder, or in a folder that does not exist or cannot be written.

:func:`read_image` / :func:`read_pages` read every image a user has into
numpy arrays; anything they cannot read properly is an
:class:`ImageReadError` whose message says what is wrong, never a guess.
No Qt, no TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

#: pages larger than this many pixels are refused unless ``max_pixels`` is raised
#: (a 300 dpi A0 page is about 140 Mpx; 2**28 px of uint8 RGB is 768 MiB)
MAX_PIXELS = 2**28


class ImageReadError(OSError):
    """An image file cannot be read properly; the message says why."""


class OutputError(OSError):
    """An output path cannot be written as asked; the message says why."""


# ---------------------------------------------------------------- writing


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, suffix: str | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The caller writes the whole file to the yielded path. When the block ends
    without an exception the file is flushed to disk and renamed over
    ``path`` (atomic on POSIX); on an exception, or if nothing was written,
    the temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The final file.
    suffix : str, optional
        The temporary file's suffix (default: ``path``'s), for writers that
        choose a format from it.

    Yields
    ------
    Path
        The temporary file, in the same folder as ``path``.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
    >>> with atomic_path(out) as tmp:
    ...     np.save(tmp, np.zeros(3))
    >>> np.load(out).shape
    (3,)
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(
        dir=path.parent,
        prefix=f".{path.name}.",
        suffix=".tmp" + (path.suffix if suffix is None else suffix),
    )
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, _umask_mode())
        yield tmp
        if not tmp.exists():
            raise OutputError(f"{path}: nothing was written")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", **kwargs: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; rename it on success.

    Parameters
    ----------
    path : str or os.PathLike
        The final file.
    mode : str
        ``"w"`` (text, the default) or ``"wb"``.
    **kwargs
        Passed to :func:`open` (``newline=""`` for CSV, ``encoding``...).

    Yields
    ------
    file object
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only ('w' or 'wb'), not {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
        f.flush()


def check_output(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    what: str = "output",
) -> Path:
    """Refuse an output path before any work starts.

    Parameters
    ----------
    path : str or os.PathLike
        The file to be written.
    inputs : iterable of path-like
        Files (or folders) read by the same command: the output may be none
        of them, nor inside a folder given as input if it has an image
        suffix that the input folder would be searched for.
    what : str
        How the message names the path (``"--out"``).

    Returns
    -------
    Path
        ``path`` as a Path.

    Raises
    ------
    OutputError
        When ``path`` is a folder, an input, or its folder is missing or not
        writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name")
    for given in map(Path, inputs):
        if _same(path, given):
            raise OutputError(f"{what} {path} is an input; it would be written over")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"{what} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: folder {folder} is not writable")
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (
            a.exists() and b.exists() and os.path.samefile(a, b)
        )
    except OSError:
        return False


# ---------------------------------------------------------------- reading


def read_image(
    path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS
) -> np.ndarray:
    """Read an image file into an array, as a user would expect to see it.

    Grey images are (H, W), colour ones (H, W, 3) or (H, W, 4); a multi-page
    file is a stack (P, H, W[, C]). ``.npy`` files are read as saved.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    max_pixels : int or None
        Refuse a page with more pixels than this (None: no limit).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ImageReadError
        When the file is missing, not an image, or too large.
    """
    pages = read_pages(path, max_pixels=max_pixels)
    return pages[0] if len(pages) == 1 else np.stack(pages)


def read_pages(
    path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS
) -> list[np.ndarray]:
    """Read every page of an image file (a multi-page TIFF gives several).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    max_pixels : int or None
        Refuse a page with more pixels than this (None: no limit).

    Returns
    -------
    list of numpy.ndarray
        One array a page: (H, W) grey or (H, W, C) colour.

    Raises
    ------
    ImageReadError
        When the file is missing, not an image, or too large.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".npy":
            pages = [np.load(path, allow_pickle=False)]
        else:
            import imageio.v3 as iio

            pages = [np.asarray(iio.imread(path))]
    except Exception as exc:  # every reader raises its own types for a bad file
        raise ImageReadError(f"{path}: cannot read it as an image ({exc})") from None
    for page in pages:
        _check_size(path, page, max_pixels)
    return pages


def _check_size(path: Path, page: np.ndarray, max_pixels: int | None) -> None:
    pixels = int(np.prod(page.shape[:2])) if page.ndim >= 2 else page.size
    if max_pixels is not None and pixels > max_pixels:
        raise ImageReadError(
            f"{path}: {pixels:,} pixels a page is more than the limit of "
            f"{max_pixels:,}; raise the limit (--max-pixels) to read it anyway"
        )
