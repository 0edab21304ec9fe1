"""napari reader: the viewer opens image files through :mod:`napari_digits.io`.

So that a page looks in the viewer as the command line reads it: EXIF
orientation, CMYK, palettes, grey+alpha, 16-bit PNG, every page of a
multi-page TIFF (a stack), and the same size limit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_digits import io

#: files this reader offers to open (npy is napari's own)
SUFFIXES = tuple(s for s in io.IMAGE_SUFFIXES if s != ".npy")

LayerData = tuple[Any, dict[str, Any], str]


def napari_get_reader(
    path: str | os.PathLike | Sequence[str | os.PathLike],
) -> Callable[[Any], list[LayerData]] | None:
    """Return :func:`read_layers` when every path is an image file it reads.

    Parameters
    ----------
    path : path or list of paths
        What the user asked napari to open.

    Returns
    -------
    callable or None
        The reader, or None for anything else (folders, other suffixes).
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if paths and all(Path(p).suffix.lower() in SUFFIXES for p in paths):
        return read_layers
    return None


def read_layers(
    path: str | os.PathLike | Sequence[str | os.PathLike],
) -> list[LayerData]:
    """Read each file as one image layer (a multi-page file as a stack).

    Pages of different sizes become one layer each.

    Raises
    ------
    napari_digits.io.ImageReadError
        When a file cannot be read; napari shows the message.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    return [layer for p in paths for layer in _layers(Path(p))]


def _layers(path: Path) -> list[LayerData]:
    try:
        data = io.read_image(path)
    except io.ImageReadError:
        if io.count_pages(path) < 2:
            raise
        pages = io.read_pages(path)
        return [
            _layer(page, f"{path.stem} page {i}", stacked=False)
            for i, page in enumerate(pages, start=1)
        ]
    return [_layer(data, path.stem, stacked=io.count_pages(path) > 1)]


def _layer(data: Any, name: str, *, stacked: bool) -> LayerData:
    page_ndim = data.ndim - 1 if stacked else data.ndim
    rgb = page_ndim == 3 and data.shape[-1] in (3, 4)
    return data, {"name": name, "rgb": rgb}, "image"
