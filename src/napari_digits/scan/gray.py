"""Step 1: any 2D image to float32 grey levels in 0..1, and resizing."""

from __future__ import annotations

import numpy as np

from napari_digits.scan.regions import ScanError


def to_gray(image: np.ndarray, *, notes: list[str] | None = None) -> np.ndarray:
    """Convert a 2D image to float32 grey levels in 0..1.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA. Integer
        images are scaled by the range their values use: uint8 by 255, a
        wider type by the smallest of 2**8-1, 2**10-1, 2**12-1, 2**14-1,
        2**16-1... that holds its largest value (a uint16 page of 8-bit values
        is scaled by 255, a 12-bit TIFF by 4095), and signed integers with
        negative values by their min..max. Float images already in 0..1 are
        kept, other floats are scaled by their min..max; NaN and inf pixels
        are replaced by the median grey of the others (the paper). Transparent
        RGBA pixels count as paper (their colour is ignored).
    notes : list of str, optional
        Receives one sentence for each of those choices that is not the plain
        one (a narrower range, non-finite pixels replaced).

    Returns
    -------
    ndarray
        float32 ``(H, W)``.

    Raises
    ------
    ScanError
        For anything that is not a single 2D plane, a dtype that is not a
        number, or a page without one finite pixel.
    """
    notes = [] if notes is None else notes
    a = np.asarray(image)
    if a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and a.dtype.itemsize > 8):
        raise ScanError(
            f"pixels of type {a.dtype} cannot be read; use uint8, uint16 or float"
        )
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        return _rgb_to_gray(a, notes)
    if a.ndim != 2:
        raise ScanError(
            f"expected a 2D page (grey, RGB or RGBA), got shape {a.shape}; "
            "choose one plane of the stack"
        )
    if a.size == 0:
        raise ScanError(f"the page is empty (shape {a.shape})")
    if a.dtype == bool:
        return a.astype(np.float32)
    return _scale(a, notes)


#: rows a block where a page is converted piecewise (temporaries stay in cache)
BLOCK_ROWS = 64

#: bit depths an integer page may use inside a wider type
_DEPTHS = (8, 10, 12, 14, 16, 24, 32, 48, 64)


def _int_range(a: np.ndarray, notes: list[str]) -> tuple[float, float]:
    """Return ``(lo, top)``: grey = (value - lo) / (top - lo)."""
    lo, hi = int(a.min()), int(a.max())
    bits = a.dtype.itemsize * 8
    if lo < 0:
        notes.append(f"{a.dtype} page with negative values: scaled by its min..max")
        return float(lo), float(max(hi, lo + 1))
    used = next(d for d in _DEPTHS if hi < 2**d or d >= bits)
    if used < bits:
        top = 2**used - 1
        notes.append(
            f"{a.dtype} page of values up to {hi}: scaled as {used}-bit (0..{top})"
        )
    return 0.0, float(2**used - 1)


def _scale(a: np.ndarray, notes: list[str]) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        return _scale_int(a.astype(np.float32), _int_range(a, notes))
    work = _finite(a.astype(np.promote_types(a.dtype, np.float32), copy=False), notes)
    lo, hi = float(work.min()), float(work.max())
    if lo >= 0.0 and hi <= 1.0:
        return work.astype(np.float32, copy=False)
    span = hi / 2 - lo / 2  # (hi - lo) / 2 without overflow
    if not span > 1e-300:  # flat, or a range below what a float can invert
        return np.zeros(work.shape, np.float32)
    step = 0.5 / span
    out = work * work.dtype.type(step) - work.dtype.type(lo * step)
    return np.clip(out, 0, 1, out=out).astype(np.float32, copy=False)


def _finite(a: np.ndarray, notes: list[str]) -> np.ndarray:
    """Replace NaN and inf by the median of the finite pixels (the paper)."""
    bad = ~np.isfinite(a)
    n = int(np.count_nonzero(bad))
    if not n:
        return a
    if n == a.size:
        raise ScanError("no pixel of the page is a finite number (all NaN or inf)")
    paper = float(np.median(a[~bad]))
    a = np.where(bad, a.dtype.type(paper), a)  # float64 paper may pass float32
    notes.append(f"{n} NaN/inf pixel(s) replaced by the page's median grey (paper)")
    return a


def _scale_int(a: np.ndarray, lo_top: tuple[float, float]) -> np.ndarray:
    lo, top = lo_top
    a = a.astype(np.float32, copy=False)
    if lo:
        a -= np.float32(lo)
    a *= np.float32(1.0 / (top - lo))
    return a


def _rgb_to_gray(a: np.ndarray, notes: list[str]) -> np.ndarray:
    weights = np.array([0.2125, 0.7154, 0.0721], np.float32)
    if a.size == 0:
        raise ScanError(f"the page is empty (shape {a.shape})")
    if a.dtype == bool:
        a = a.view(np.uint8) * np.uint8(255)
    if np.issubdtype(a.dtype, np.integer):  # weigh first: one float plane only
        lo_top = (0.0, 255.0) if a.dtype == np.uint8 else _int_range(a[..., :3], notes)
        gray = np.empty(a.shape[:2], np.float32)
        for start in range(0, a.shape[0], BLOCK_ROWS):  # temporaries in cache
            rows = a[start : start + BLOCK_ROWS]
            block = np.multiply(rows[..., 0], weights[0], dtype=np.float32)
            for c in (1, 2):
                block += np.multiply(rows[..., c], weights[c], dtype=np.float32)
            gray[start : start + BLOCK_ROWS] = _scale_int(block, lo_top)
    else:
        gray = _scale(a[..., :3], notes) @ weights
    if a.shape[-1] == 4:
        alpha = np.clip(_scale(a[..., 3], []), 0, 1)
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

    data = np.ascontiguousarray(image, np.float32)
    size = (data.shape[1], data.shape[0])
    pil = Image.frombuffer("F", size, data, "raw", "F", 0, 1)  # no copy
    how = Image.Resampling.BOX if area else Image.Resampling.BILINEAR
    out = pil.resize((shape[1], shape[0]), how)
    return np.asarray(out, np.float32)
