"""Sample data contributed to napari's File > Open Sample menu."""

from __future__ import annotations

from typing import Any

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
