"""Sample data contributed to napari's File > Open Sample menu."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

LayerData = list[tuple[Any, dict[str, Any], str]]


def portrait() -> LayerData:
    """Return the portrait photograph used for the "Sobel on a portrait" demo.

    Returns
    -------
    list of LayerDataTuple
        One RGB image layer: scikit-image's ``astronaut`` (Eileen Collins,
        public domain), which ships inside scikit-image.
    """
    from skimage import data

    return [(data.astronaut(), {"name": "portrait", "rgb": True}, "image")]


def scanned_page_path() -> Path:
    """Return the path of the sample scanned page (its ground truth: ``.csv``).

    The page lives in the repository's top-level ``sample_data/`` folder; the
    package reaches it through ``napari_digits/_sample_files``, a link in a
    checkout and a copy in an installed wheel.
    """
    return Path(str(resources.files("napari_digits") / "_sample_files")) / (
        "scanned_page.jpg"
    )


def scanned_page() -> LayerData:
    """Return the sample scan: a page of handwritten digits as a scanner gives it.

    Made by ``python -m napari_digits.synthetic --out
    sample_data/scanned_page.jpg --seed 0`` from MNIST *test* digits only (the
    shipped model never saw them); the ground truth is ``scanned_page.csv``.

    Returns
    -------
    list of LayerDataTuple
        One RGB image layer named "scanned page"; its metadata holds the file
        path (``path``) and the ground-truth CSV's path (``truth``).
    """
    from PIL import Image

    path = scanned_page_path()
    image = np.asarray(Image.open(path).convert("RGB"))
    meta = {"path": str(path), "truth": str(path.with_suffix(".csv"))}
    return [(image, {"name": "scanned page", "rgb": True, "metadata": meta}, "image")]
