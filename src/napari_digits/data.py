"""MNIST from local files, the Keras cache, or a download the user asked for.

Pure core: numpy and the standard library only (no TensorFlow, no Qt).

The data set is looked for, in order, at

1. the path the caller gives: a directory holding the four original IDX files
   (gzipped or not) or a Keras ``mnist.npz`` file (or a directory holding one);
2. the directory named by the environment variable ``MNIST_DIR``;
3. the Keras cache, ``$KERAS_HOME/datasets/mnist.npz`` (``~/.keras`` by
   default);
4. only when the caller passes ``download=True`` (the user asked: the
   ``--download`` flag, the Training widget's *Download MNIST* button), a
   download of Keras's ``mnist.npz`` into that cache. Never otherwise.

Every file is validated (magic number, counts, image size, labels 0..9); a
wrong or truncated file is a :class:`MnistError` that names it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from napari_digits.io import atomic_path

#: where Keras downloads MNIST from, and the SHA-256 of that file
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

#: IDX magic numbers: unsigned bytes, 3 dimensions (images) or 1 (labels)
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

#: the four IDX files: attribute -> (file stem, magic)
IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte", IMAGES_MAGIC),
    "y_train": ("train-labels-idx1-ubyte", LABELS_MAGIC),
    "x_test": ("t10k-images-idx3-ubyte", IMAGES_MAGIC),
    "y_test": ("t10k-labels-idx1-ubyte", LABELS_MAGIC),
}

HELP = (
    "Pass the directory of the four MNIST IDX files (or a Keras mnist.npz) "
    "with --mnist, or set MNIST_DIR."
)
#: how to get MNIST when it is nowhere: the only ways a download happens
DOWNLOAD_HELP = (
    "To download it (11 MB), add --download to the command, or press "
    "'Download MNIST' in the Training widget."
)


class MnistError(ValueError):
    """MNIST is missing, unreadable or not what it should be."""


@dataclass(frozen=True)
class Mnist:
    """The MNIST data set: 28x28 uint8 images (white ink on black), uint8 labels.

    The arrays are read-only (loaded sets are cached and shared).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = ""

    def subset(self, train: int | None = None, test: int | None = None) -> Mnist:
        """Return the first ``train`` training and ``test`` test examples.

        Parameters
        ----------
        train, test : int, optional
            How many examples to keep; ``None`` keeps them all.

        Returns
        -------
        Mnist
            A view of this set.
        """
        return Mnist(
            self.x_train[:train],
            self.y_train[:train],
            self.x_test[:test],
            self.y_test[:test],
            self.source,
        )


def load_mnist(
    path: str | os.PathLike | None = None, *, download: bool = False
) -> Mnist:
    """Load MNIST from ``path``, ``MNIST_DIR`` or the Keras cache.

    Parameters
    ----------
    path : str or path-like, optional
        A directory with the four IDX files (``train-images-idx3-ubyte[.gz]``
        ...), a Keras ``mnist.npz`` file, or a directory holding one.
    download : bool
        Download Keras's ``mnist.npz`` into the Keras cache when neither
        ``path`` nor ``MNIST_DIR`` is given and the cache has none. Only pass
        True when the user asked for it.

    Returns
    -------
    Mnist
        The data set, validated.

    Raises
    ------
    MnistError
        If the files are missing (the message says where it looked and how
        to download), wrong or truncated, or the download fails.

    Examples
    --------
    >>> mnist = load_mnist("/data/mnist")  # doctest: +SKIP
    >>> mnist.x_train.shape
    (60000, 28, 28)
    """
    if path is None:
        path = os.environ.get("MNIST_DIR") or None
    if path is None:
        path = keras_cache_path()
        if not path.exists():
            if not download:
                raise MnistError(
                    f"MNIST not found: MNIST_DIR is not set and the Keras cache "
                    f"{path} does not exist. {HELP} {DOWNLOAD_HELP}"
                )
            download_mnist(path)
    resolved = _resolve(Path(path).expanduser())
    return _load_cached(str(resolved), resolved.stat().st_mtime_ns)


def keras_cache_path() -> Path:
    """Return where Keras keeps ``mnist.npz``: ``$KERAS_HOME/datasets`` or ~/.keras.

    Returns
    -------
    pathlib.Path
        The cache file's path (it may not exist).
    """
    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home) / "datasets" / "mnist.npz"


def download_mnist(dest: str | os.PathLike | None = None) -> Path:
    """Download Keras's ``mnist.npz`` (``MNIST_URL``) into the Keras cache.

    Parameters
    ----------
    dest : str or path-like, optional
        The file to write; default :func:`keras_cache_path`.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    MnistError
        If the download fails (offline) or the file's SHA-256 is wrong.
    """
    dest = keras_cache_path() if dest is None else dest
    return download(dest, MNIST_URL, MNIST_SHA256)


def download(
    dest: str | os.PathLike, url: str = MNIST_URL, sha256: str | None = MNIST_SHA256
) -> Path:
    """Download Keras's ``mnist.npz`` to ``dest`` (atomically) and check its hash.

    Parameters
    ----------
    dest : str or path-like
        The file to write.
    url : str
        Where to download from.
    sha256 : str, optional
        The expected SHA-256 of the file; ``None`` skips the check.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    MnistError
        If the download fails (offline) or the file's SHA-256 is wrong.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=30) as r:
                while chunk := r.read(1 << 20):
                    out.write(chunk)
            if sha256 is not None and _sha256(tmp) != sha256:
                raise MnistError(f"the file downloaded from {url} is corrupt. {HELP}")
    except (urllib.error.URLError, OSError) as exc:
        raise MnistError(
            f"MNIST could not be downloaded from {url} to {dest} ({exc}). {HELP}"
        ) from exc
    return dest


def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes (gzipped or not) and validate it.

    Parameters
    ----------
    path : str or path-like
        The file; a name ending in ``.gz`` is decompressed.
    magic : int
        The expected magic number (2051 for images, 2049 for labels).

    Returns
    -------
    numpy.ndarray
        uint8 array of the shape the header gives.

    Raises
    ------
    MnistError
        If the magic number is wrong or the file is shorter or longer than its
        header says.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # a cut or damaged gzip
        raise MnistError(
            f"cannot read {path}: {exc or type(exc).__name__}. It is damaged: "
            "download it again."
        ) from exc
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        raise MnistError(
            f"{path} is not an MNIST IDX file: magic number {found}, "
            f"expected {magic}. {HELP}"
        )
    shape = tuple(np.frombuffer(raw, ">u4", count=ndim, offset=4).astype(int))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "too long"
        raise MnistError(
            f"{path} is {what}: its header announces {shape} ({expected} bytes), "
            f"the file has {len(raw)} bytes. Download it again."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _resolve(path: Path) -> Path:
    """Return the npz file or IDX directory that ``path`` designates."""
    if path.is_file():
        return path
    if path.is_dir():
        if _idx_file(path, "train-images-idx3-ubyte") is not None:
            return path
        if (path / "mnist.npz").is_file():
            return path / "mnist.npz"
        raise MnistError(f"no MNIST IDX files nor mnist.npz in {path}. {HELP}")
    raise MnistError(f"MNIST not found: {path} does not exist. {HELP}")


def _idx_file(directory: Path, stem: str) -> Path | None:
    """Find ``stem`` in ``directory``: plain, gzipped, or with a dot as separator."""
    for name in (stem, stem.replace("-idx", ".idx")):
        for suffix in ("", ".gz"):
            if (directory / (name + suffix)).is_file():
                return directory / (name + suffix)
    return None


@lru_cache(maxsize=2)
def _load_cached(path: str, mtime_ns: int) -> Mnist:
    """Load and validate the set at ``path`` (cached by path and mtime)."""
    arrays = _read_npz(Path(path)) if Path(path).is_file() else _read_dir(Path(path))
    for array in arrays.values():
        array.flags.writeable = False
    return Mnist(**arrays, source=path)


def _read_dir(directory: Path) -> dict[str, np.ndarray]:
    """Read the four IDX files of ``directory``."""
    arrays = {}
    for key, (stem, magic) in IDX_FILES.items():
        file = _idx_file(directory, stem)
        if file is None:
            raise MnistError(f"{stem}[.gz] is missing from {directory}. {HELP}")
        arrays[key] = read_idx(file, magic)
        _check(key, arrays[key], file)
    _check_pairs(arrays, directory)
    return arrays


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read a Keras ``mnist.npz``."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: np.asarray(f[key]) for key in IDX_FILES}
    except KeyError as exc:
        raise MnistError(f"{path} is not a Keras mnist.npz: no {exc}. {HELP}") from exc
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise MnistError(
            f"{path} is not a readable mnist.npz ({exc}). Delete it and try again."
        ) from exc
    for key, array in arrays.items():
        if array.dtype != np.uint8:
            raise MnistError(f"{path}: {key} has dtype {array.dtype}, not uint8.")
        _check(key, array, path)
    _check_pairs(arrays, path)
    return arrays


def _check(key: str, array: np.ndarray, path: Path) -> None:
    """Check the shape of images (N, 28, 28) and the range of labels."""
    if key.startswith("x") and array.shape[1:] != (28, 28):
        raise MnistError(f"{path}: images are {array.shape[1:]}, not 28x28. {HELP}")
    if key.startswith("y") and (array.ndim != 1 or (array.size and array.max() > 9)):
        raise MnistError(f"{path}: labels are not digits 0..9. {HELP}")


def _check_pairs(arrays: dict[str, np.ndarray], where: Path) -> None:
    """Check that images and labels come in equal numbers."""
    for part in ("train", "test"):
        n_images, n_labels = len(arrays[f"x_{part}"]), len(arrays[f"y_{part}"])
        if n_images != n_labels:
            raise MnistError(
                f"{where}: {n_images} {part} images but {n_labels} labels. {HELP}"
            )


def _sha256(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
