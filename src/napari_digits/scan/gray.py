"""Step 1: any 2D image to float32 grey levels in 0..1, and resizing."""

from __future__ import annotations

import numpy as np

from napari_digits.scan.regions import ScanError


def to_gray(image: np.ndarray) -> np.ndarray:
    """Convert a 2D image to float32 grey levels in 0..1.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA. Integer
        images are scaled by their dtype's range; float images already in
        0..1 are kept, other floats are scaled by their min..max. Transparent
        RGBA pixels count as paper (their colour is ignored).

    Returns
    -------
    ndarray
        float32 ``(H, W)``.

    Raises
    ------
    ScanError
        For anything that is not a single 2D plane.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        return _rgb_to_gray(a)
    if a.ndim != 2:
        raise ScanError(
            f"expected a 2D page (grey, RGB or RGBA), got shape {a.shape}; "
            "choose one plane of the stack"
        )
    if a.dtype == bool:
        return a.astype(np.float32)
    return _scale(a)


def _scale(a: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        return _scale_int(a.astype(np.float32), np.iinfo(a.dtype))
    a = a.astype(np.float32, copy=False)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if lo >= 0.0 and hi <= 1.0:
        return np.nan_to_num(a, nan=0.0)
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.nan_to_num(a, nan=0.0)


def _scale_int(a: np.ndarray, info: np.iinfo) -> np.ndarray:
    a = a.astype(np.float32, copy=False)
    if info.min:
        a -= np.float32(info.min)
    a *= np.float32(1.0 / (float(info.max) - info.min))
    return a


def _rgb_to_gray(a: np.ndarray) -> np.ndarray:
    weights = np.array([0.2125, 0.7154, 0.0721], np.float32)
    if np.issubdtype(a.dtype, np.integer):  # weigh first: one float plane only
        gray = np.multiply(a[..., 0], weights[0], dtype=np.float32)
        for c in (1, 2):
            gray += np.multiply(a[..., c], weights[c], dtype=np.float32)
        gray = _scale_int(gray, np.iinfo(a.dtype))
    else:
        gray = _scale(a[..., :3]) @ weights
    if a.shape[-1] == 4:
        alpha = _scale(a[..., 3])
        paper = float(np.median(gray[alpha > 0.5])) if (alpha > 0.5).any() else 1.0
        gray = gray * alpha + paper * (1.0 - alpha)
    return gray.astype(np.float32, copy=False)


def resize(
    image: np.ndarray, shape: tuple[int, ...], *, area: bool = False
) -> np.ndarray:
    """Resize a float image: bilinear, or an area average (``area=True``).

    Both are anti-aliased when shrinking (Pillow widens its filter with the
    reduction); the area average is the sharper when shrinking digits.
    """
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image, np.float32))
    how = Image.Resampling.BOX if area else Image.Resampling.BILINEAR
    out = pil.resize((shape[1], shape[0]), how)
    return np.asarray(out, np.float32)
