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
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np

#: pages larger than this many pixels are refused unless ``max_pixels`` is raised
#: (a 300 dpi A0 page is about 140 Mpx; 2**28 px of uint8 RGB is 768 MiB)
MAX_PIXELS = 2**28


_PIL_LOCK = threading.Lock()


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
    the temporary file is removed and ``path`` is untouched. A temporary file
    that a killed process left (``kill -9``) is removed by the next write of
    the same file.

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
    _sweep_leftovers(path)
    fd, name = tempfile.mkstemp(
        dir=path.parent,
        prefix=f"{_temp_prefix(path)}{os.getpid()}.",
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


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _sweep_leftovers(path: Path) -> None:
    """Remove the temporary files of ``path`` whose writing process is gone."""
    prefix = _temp_prefix(path)
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            rest = entry.name[len(prefix) :]
            if not entry.name.startswith(prefix) or ".tmp" not in rest:
                continue
            pid = rest.split(".", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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

#: the dtypes a page may have once read (float128, complex, text are refused)
SUPPORTED_KINDS = "biuf"
#: suffixes the loader is meant for (any file is tried: the format is sniffed)
IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp", ".webp", ".npy",
)  # fmt: skip


@dataclass(frozen=True)
class _Lazy:
    """One page known from a file's header, decoded only when asked."""

    shape: tuple[int, ...]
    dtype: np.dtype
    decode: Callable[[], np.ndarray]


def read_image(
    path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS
) -> np.ndarray:
    """Read an image file into an array, as a user would expect to see it.

    Grey images are (H, W), colour ones (H, W, 3) or (H, W, 4); a multi-page
    file is a stack (P, H, W[, C]). ``.npy`` files are read as saved.
    See :func:`iter_pages` for the conversions.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    max_pixels : int or None
        Refuse a file whose pages hold more pixels than this, all pages
        together (None: no limit).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ImageReadError
        When the file is missing, not an image, of an unsupported dtype, too
        large, or its pages differ in shape (read them with :func:`read_pages`).

    Examples
    --------
    >>> from napari_digits.sample_data import scanned_page_path
    >>> read_image(scanned_page_path()).shape
    (1754, 1240, 3)
    """
    path = Path(path)
    lazy = _open(path)
    _check_size(path, sum(_pixels(page.shape) for page in lazy), max_pixels, "")
    if len(lazy) == 1:
        return _decode(path, lazy[0])
    if len({page.shape for page in lazy}) > 1 or len({p.dtype for p in lazy}) > 1:
        raise ImageReadError(
            f"{path}: its {len(lazy)} pages differ in shape or type; "
            "read them one by one (read_pages)"
        )
    out = np.empty((len(lazy), *lazy[0].shape), dtype=lazy[0].dtype)
    for i, page in enumerate(lazy):
        out[i] = _decode(path, page)
    return out


def read_pages(
    path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS
) -> list[np.ndarray]:
    """Read every page of an image file (a multi-page TIFF gives several).

    Holds every page in memory: use :func:`iter_pages` for long files.

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
        When the file is missing, not an image, of an unsupported dtype, or a
        page is too large.
    """
    return list(iter_pages(path, max_pixels=max_pixels))


def count_pages(path: str | os.PathLike) -> int:
    """Return how many pages a file holds, from its header (nothing decoded).

    Raises
    ------
    ImageReadError
        When the file is missing or not an image.
    """
    return len(_open(Path(path)))


def iter_pages(
    path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS
) -> Iterator[np.ndarray]:
    """Yield the pages of an image file one at a time (bounded memory).

    Every page's size and dtype are checked from the file's header before
    anything is decoded. The conversions make a page look as a viewer shows
    it:

    * JPEG with an EXIF orientation: rotated/flipped upright;
    * CMYK, YCbCr, LAB, HSV: RGB; a palette (GIF, palette PNG/TIFF): RGB
      (RGBA where some colour is transparent);
    * grey + alpha: grey composited on white paper; RGBA stays RGBA;
    * 16-bit PNG: uint16; TIFF: its own dtype (12-bit data stays in uint16,
      see :func:`napari_digits.scan.to_gray` for how it is scaled); a TIFF
      whose 0 is white (MINISWHITE) is inverted; planar RGB becomes (H, W, 3);
    * multi-page TIFF, animated GIF/PNG/WebP: each page or frame a page.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its format is sniffed from its content, not its suffix.
    max_pixels : int or None
        Refuse a page with more pixels (height x width) than this (None: no
        limit); the message names the override.

    Yields
    ------
    numpy.ndarray
        (H, W) grey or (H, W, C) colour; a ``.npy`` file as saved.

    Raises
    ------
    ImageReadError
        When the file is missing, not an image, of an unsupported dtype
        (float128, complex...), empty, or a page is too large.
    """
    path = Path(path)
    lazy = _open(path)
    for page in lazy:
        _check_size(path, _pixels(page.shape), max_pixels, " a page")
    for page in lazy:
        yield _decode(path, page)


def _open(path: Path) -> list[_Lazy]:
    if not path.is_file():
        what = "is a folder, not an image" if path.is_dir() else "no such file"
        raise ImageReadError(f"{path}: {what}")
    with open(path, "rb") as f:
        magic = f.read(8)
    opener = (
        _open_npy
        if magic.startswith(b"\x93NUMPY")
        else _open_tiff
        if magic[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
        else _open_pil
    )
    try:
        lazy = opener(path)
    except ImageReadError:
        raise
    except Exception as exc:  # every reader raises its own types for a bad file
        raise ImageReadError(f"{path}: cannot read it as an image ({exc})") from None
    if not lazy:
        raise ImageReadError(f"{path}: the file holds no image")
    for page in lazy:
        _check_dtype(path, page)
    return lazy


def _decode(path: Path, page: _Lazy) -> np.ndarray:
    try:
        return page.decode()
    except MemoryError:
        raise ImageReadError(
            f"{path}: not enough memory to decode a {page.shape} page"
        ) from None
    except Exception as exc:  # a damaged file fails only when decoded
        raise ImageReadError(f"{path}: cannot decode it ({exc})") from None


def _check_dtype(path: Path, page: _Lazy) -> None:
    dtype = np.dtype(page.dtype)
    if dtype.kind not in SUPPORTED_KINDS or (dtype.kind == "f" and dtype.itemsize > 8):
        raise ImageReadError(
            f"{path}: pixels of type {dtype} are not supported; save the image as "
            "uint8, uint16, float32 or float64"
        )
    if 0 in page.shape or len(page.shape) < 2:
        raise ImageReadError(f"{path}: not an image of pixels (shape {page.shape})")


def _pixels(shape: tuple[int, ...]) -> int:
    """Return the pixels of a page (H, W[, C]) or of a saved stack (..., H, W[, C])."""
    colour = len(shape) >= 3 and shape[-1] in (3, 4)
    return int(np.prod(shape[:-1] if colour else shape, dtype=np.int64))


def _check_size(path: Path, pixels: int, max_pixels: int | None, where: str) -> None:
    if max_pixels is not None and pixels > max_pixels:
        raise ImageReadError(
            f"{path}: {pixels:,} pixels{where} is more than the limit of "
            f"{max_pixels:,}; raise the limit (--max-pixels / max_pixels=) "
            "to read it anyway, if the memory allows"
        )


# -- .npy


def _open_npy(path: Path) -> list[_Lazy]:
    header = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header
    shape, dtype = tuple(header.shape), header.dtype
    del header
    return [_Lazy(shape, dtype, partial(np.load, path, allow_pickle=False))]


# -- TIFF


def _open_tiff(path: Path) -> list[_Lazy]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pages = [p for p in tif.pages if not getattr(p, "is_reduced", False)]
        infos = [(i, _tiff_shape(p), np.dtype(p.dtype)) for i, p in enumerate(pages)]
    return [
        _Lazy(shape, dtype, partial(_tiff_page, path, i)) for i, shape, dtype in infos
    ]


def _tiff_shape(page: Any) -> tuple[int, ...]:
    shape = tuple(page.shape)
    if len(shape) == 3 and int(page.planarconfig) == 2:  # SEPARATE: (C, H, W)
        shape = (*shape[1:], shape[0])
    if int(page.photometric) == 3:  # PALETTE
        shape = (*shape[:2], 3)
    if int(page.photometric) == 5:  # SEPARATED (CMYK)
        shape = (*shape[:2], 3)
    return shape


def _tiff_page(path: Path, index: int) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pages = [p for p in tif.pages if not getattr(p, "is_reduced", False)]
        page = pages[index]
        data = page.asarray()
        photometric, planar = int(page.photometric), int(page.planarconfig)
        colormap = page.colormap if photometric == 3 else None
    if data.ndim == 3 and planar == 2:
        data = np.moveaxis(data, 0, -1)
    if photometric == 0:  # MINISWHITE: 0 is white
        data = _invert(data)
    elif photometric == 3 and colormap is not None:
        data = _apply_colormap(data, colormap)
    elif photometric == 5 and data.ndim == 3 and data.shape[-1] >= 4:
        data = _cmyk_to_rgb(data)
    return data


def _invert(data: np.ndarray) -> np.ndarray:
    if data.dtype == bool:
        return ~data
    if data.dtype.kind == "u":
        return np.iinfo(data.dtype).max - data
    return data.max() - data


def _apply_colormap(index: np.ndarray, colormap: np.ndarray) -> np.ndarray:
    rgb = np.asarray(colormap).T[index.astype(np.intp)]  # (H, W, 3)
    return (rgb // 257).astype(np.uint8) if rgb.max() > 255 else rgb.astype(np.uint8)


def _cmyk_to_rgb(data: np.ndarray) -> np.ndarray:
    top = float(np.iinfo(data.dtype).max) if data.dtype.kind in "ui" else 1.0
    cmy, k = data[..., :3].astype(np.float32) / top, data[..., 3:4] / np.float32(top)
    rgb = (1 - cmy) * (1 - k) * top
    return np.round(rgb).astype(data.dtype) if data.dtype.kind in "ui" else rgb


# -- everything Pillow reads (PNG, JPEG, GIF, BMP, WebP...)


@contextlib.contextmanager
def _no_pillow_bomb_check() -> Iterator[None]:
    """Let Pillow open any size: the size is checked here, with an override."""
    from PIL import Image

    with _PIL_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open_pil(path: Path) -> list[_Lazy]:
    from PIL import Image

    with _no_pillow_bomb_check(), Image.open(path) as im:
        width, height = im.size
        if _exif_orientation(im) in (5, 6, 7, 8):
            width, height = height, width
        frames = int(getattr(im, "n_frames", 1))
        shape, dtype = _pil_layout(im.mode, height, width)
    return [_Lazy(shape, dtype, partial(_pil_frame, path, i)) for i in range(frames)]


def _exif_orientation(im: Any) -> int:
    if im.format not in ("JPEG", "MPO", "WEBP", "TIFF"):
        return 1  # Pillow decodes a whole PNG to look for its EXIF chunk
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block: show the pixels as stored
        return 1


_PIL_GREY = {"1", "L", "LA", "La", "PA", "P"}
_PIL_16 = {"I;16", "I;16B", "I;16L", "I;16N"}


def _pil_layout(mode: str, height: int, width: int) -> tuple[tuple[int, ...], Any]:
    if mode in _PIL_16:
        return (height, width), np.dtype(np.uint16)
    if mode == "I":
        return (height, width), np.dtype(np.int32)
    if mode == "F":
        return (height, width), np.dtype(np.float32)
    if mode in ("1", "L", "LA", "La"):
        return (height, width), np.dtype(np.uint8)
    if mode in ("RGBA", "RGBa", "PA", "P"):
        return (height, width, 4 if mode in ("RGBA", "RGBa") else 3), np.dtype(np.uint8)
    return (height, width, 3), np.dtype(np.uint8)


def _pil_frame(path: Path, index: int) -> np.ndarray:
    from PIL import Image, ImageOps

    with _no_pillow_bomb_check(), Image.open(path) as im:
        im.seek(index)
        if index == 0 and im.getexif().get(0x0112, 1) != 1:  # as exif_transpose
            return _pil_to_array(ImageOps.exif_transpose(im))
        im.load()  # decoded in place: no copy of the page when it need not turn
        return _pil_to_array(im)


def _pil_to_array(im: Any) -> np.ndarray:
    mode = im.mode
    if mode in _PIL_16:
        return np.asarray(im).astype(np.uint16, copy=False)
    if mode in ("I", "F", "L"):
        return _maybe_uint16(np.asarray(im), im)
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("LA", "La"):
        return _on_white(np.asarray(im.convert("LA")))
    if mode in ("P", "PA"):
        rgba = np.asarray(im.convert("RGBA"))
        return rgba[..., :3].copy() if (rgba[..., 3] == 255).all() else _on_white(rgba)
    if mode in ("RGBA", "RGBa"):
        return np.asarray(im if mode == "RGBA" else im.convert("RGBA"))
    return np.asarray(im if mode == "RGB" else im.convert("RGB"))


def _maybe_uint16(data: np.ndarray, im: Any) -> np.ndarray:
    """Return a 16-bit PNG that Pillow opened as 32-bit integers as uint16."""
    if data.dtype == np.int32 and im.format == "PNG" and data.size:
        if data.min() >= 0 and data.max() <= 65535:
            return data.astype(np.uint16)
    return data


def _on_white(data: np.ndarray) -> np.ndarray:
    """Composite grey+alpha or RGBA (uint8) on white paper; drop the alpha."""
    alpha = data[..., -1:].astype(np.float32) / 255
    colour = data[..., :-1].astype(np.float32)
    out = np.round(colour * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out
