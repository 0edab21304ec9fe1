"""Where the docks' results go and how they look: shared by the dock widgets.

Percentile contrast limits (a few extreme values must not make a result look
dull), placing a result beside its source at a visible scale, bringing it
into view, and keeping the user's layer selection when a dock adds layers.
No algorithm lives here; these are display decisions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

#: the percentiles that set a float result's contrast limits
PERCENTILES = (1.0, 99.0)
#: at most this many values are read to estimate the percentiles
MAX_SAMPLES = 1 << 20
#: space between a source and a result beside it, as a fraction of its height
GAP_FRACTION = 0.05


def percentile_limits(
    data: Any, percentiles: tuple[float, float] = PERCENTILES
) -> tuple[float, float]:
    """Return contrast limits at ``percentiles`` of ``data``'s finite values.

    Arrays of more than :data:`MAX_SAMPLES` values are estimated on an evenly
    strided sample (a view, no copy of the whole array). The limits always
    differ (a constant image gets ``(v, v + 1)``).

    Examples
    --------
    >>> percentile_limits(np.arange(101.0))
    (1.0, 99.0)
    """
    values = np.asarray(data)
    step = max(1, int(np.ceil(values.size / MAX_SAMPLES)))
    sample = values.reshape(-1)[::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return (0.0, 1.0)
    low, high = (float(v) for v in np.percentile(sample, percentiles))
    if not high > low:
        low, high = float(sample.min()), float(sample.max())
    return (low, high) if high > low else (low, low + 1.0)


def scene_extent(layers: Any) -> np.ndarray | None:
    """Return the world extent ``[[top, left], [bottom, right]]`` of ``layers``.

    Only the last two (displayed) world axes count; None when there is no
    layer.
    """
    corners = [np.asarray(layer.extent.world)[:, -2:] for layer in layers]
    if not corners:
        return None
    stacked = np.stack(corners)
    return np.array([stacked[:, 0].min(axis=0), stacked[:, 1].max(axis=0)])


def beside(
    extent: np.ndarray | None,
    shape: tuple[int, int],
    *,
    pixel: float | None = None,
    gap: float = GAP_FRACTION,
) -> dict[str, Any]:
    """Return the scale and translate that put a result right of ``extent``.

    Parameters
    ----------
    extent : numpy.ndarray or None
        ``[[top, left], [bottom, right]]`` of what the result goes beside
        (see :func:`scene_extent`); None: the result goes at the origin.
    shape : tuple of int
        The result's ``(height, width)`` in its own pixels.
    pixel : float, optional
        The result's pixel size in world units; default: the size that makes
        the result as tall as ``extent`` (never below 1), so that a 28x28
        result next to a page is as visible as the page.
    gap : float
        Space between the two, as a fraction of the extent's height.

    Returns
    -------
    dict
        ``scale`` and ``translate`` of the result's last two axes; the
        result's top is aligned with the extent's top.
    """
    if extent is None:
        return {"scale": (pixel or 1.0,) * 2, "translate": (0.0, 0.0)}
    (top, _), (bottom, right) = extent
    height = float(bottom - top)
    if pixel is None:
        pixel = max(height / max(shape[0], 1), 1.0)
    return {
        "scale": (float(pixel), float(pixel)),
        "translate": (float(top), float(right + gap * height)),
    }


def show_all(viewer: Any) -> None:
    """Fit every layer into the canvas (the camera moves, nothing else)."""
    viewer.reset_view()


@contextlib.contextmanager
def selection_kept(viewer: Any) -> Iterator[None]:
    """Restore the user's selected and active layers after adding layers.

    napari selects every layer it adds; a dock that adds or updates its
    results must not take the selection from the user.
    """
    selection = viewer.layers.selection
    chosen, active = set(selection), selection.active
    try:
        yield
    finally:
        chosen = {layer for layer in chosen if layer in viewer.layers}
        selection.clear()
        selection.update(chosen)
        if active in viewer.layers:
            selection.active = active


def keeping_selection(viewer: Any, step: Callable[[], object]) -> Callable[[], None]:
    """Return ``step`` run under :func:`selection_kept` (a deferred step)."""

    def run() -> None:
        with selection_kept(viewer):
            step()

    return run


def wrap(label: Any) -> None:
    """Make a magicgui or Qt label wrap long lines instead of widening its dock.

    A word-wrapped QLabel still asks for a wide size; ignoring its width hint
    lets the dock keep the width its controls need, the text taking more
    lines instead.
    """
    from qtpy.QtWidgets import QSizePolicy

    native = getattr(label, "native", label)
    native.setWordWrap(True)
    policy = native.sizePolicy()
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    native.setSizePolicy(policy)
