"""Step 2-3: divide out the paper's lighting, find the ink, threshold it."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_digits.scan.gray import BLOCK_ROWS, resize
from napari_digits.scan.regions import ScanError


def background(gray: np.ndarray, *, size: int | None = None) -> np.ndarray:
    """Estimate the paper's large-scale brightness under the ink.

    The page is reduced to block means (blocks of ``size // 8`` pixels), a
    median filter of about ``size`` pixels removes the ink, and the result is
    smoothed and interpolated back to full size. Cheap even on huge pages.

    Parameters
    ----------
    gray : ndarray
        float32 ``(H, W)``.
    size : int, optional
        Window in pixels; it must be several times a digit's stroke and is by
        default ``max(64, longest side / 12)``.

    Returns
    -------
    ndarray
        float32 ``(H, W)``.
    """
    size = size or max(64, max(gray.shape) // 12)
    step = max(1, size // 8)
    h, w = (gray.shape[0] // step) * step, (gray.shape[1] // step) * step
    if h == 0 or w == 0:
        return np.full_like(gray, float(np.median(gray)))
    small = gray[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))
    small = ndi.median_filter(small, size=max(3, size // step | 1), mode="reflect")
    small = ndi.gaussian_filter(small, sigma=2.0, mode="reflect")
    return resize(small, gray.shape)


def detect_ink(gray: np.ndarray, bg: np.ndarray) -> str:
    """Tell dark ink on light paper (``"dark"``) from the reverse (``"light"``).

    The ink is the minority that departs from the background: the sign of
    the skewness of ``gray - bg`` (sampled) says on which side it lies.
    """
    step = max(1, int(np.sqrt(gray.size / 250_000)))
    r = (gray[::step, ::step] - bg[::step, ::step]).astype(np.float64)
    return "dark" if float(np.mean((r - r.mean()) ** 3)) <= 0.0 else "light"


def ink_strength(
    gray: np.ndarray, *, ink: str = "auto", background_size: int | None = None
) -> tuple[np.ndarray, str]:
    """Return how much ink each pixel holds, with the lighting divided out.

    Parameters
    ----------
    gray : ndarray
        float32 ``(H, W)`` in 0..1 (see :func:`to_gray`).
    ink : {"auto", "dark", "light"}
        Dark ink on light paper, light ink on dark paper, or detect it.
    background_size : int, optional
        See :func:`background`.

    Returns
    -------
    strength : ndarray
        float32 ``(H, W)`` in 0..1: 0 paper, 1 ink as dark (light) as black
        (white) relative to the paper around it.
    ink : str
        ``"dark"`` or ``"light"``, the polarity used.
    """
    if ink not in ("auto", "dark", "light"):
        raise ScanError(f"ink must be 'auto', 'dark' or 'light', not {ink!r}")
    bg = background(gray, size=background_size)
    if ink == "auto":
        ink = detect_ink(gray, bg)
    strength = np.empty(gray.shape, np.float32)
    for start in range(0, gray.shape[0], BLOCK_ROWS):  # temporaries in cache
        rows = slice(start, start + BLOCK_ROWS)
        strength[rows] = _strength(gray[rows], bg[rows], ink)
    return strength, ink


def _strength(gray: np.ndarray, bg: np.ndarray, ink: str) -> np.ndarray:
    if ink == "dark":
        strength = bg - gray
        strength /= np.maximum(bg, 0.05)
    else:
        strength = gray - bg
        strength /= np.maximum(1.0 - bg, 0.05)
    return np.clip(strength, 0.0, 1.0, out=strength)


#: rows a block of :func:`gaussian_smooth`'s first pass (a few L2-sized blocks)
SMOOTH_ROWS = 16


def gaussian_smooth(
    image: np.ndarray, *, sigma: float = 1.0, truncate: float = 2.0
) -> np.ndarray:
    """Smooth a float32 page: ``scipy.ndimage.gaussian_filter``, bit for bit.

    scipy filters along axis 0 by walking columns, which on a page-sized
    array misses the cache at every pixel (six times the cost of the pass
    along rows). Here that pass runs on blocks of :data:`SMOOTH_ROWS` rows
    with numpy, in float64 and in the order of scipy's sums, so that the
    result is identical; the pass along axis 1 is scipy's own, on each block
    while it is in cache.

    Parameters
    ----------
    image : ndarray
        float32 ``(H, W)``.
    sigma, truncate : float
        As in ``scipy.ndimage.gaussian_filter`` (mode ``"reflect"``).

    Returns
    -------
    ndarray
        float32 ``(H, W)``.
    """
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 / sigma**2 * x**2)
    weights /= weights.sum()  # scipy's _gaussian_kernel1d
    return _separable(np.asarray(image, np.float32), weights)


def _separable(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Correlate along axis 0 then 1 with symmetric ``weights`` ("reflect")."""
    r, n = len(weights) // 2, image.shape[0]
    if n == 0:
        return image.copy()
    # the rows of the page padded by reflection (d c b a | a b c d), repeated
    # as scipy does where the page is shorter than the kernel
    index = np.mod(np.arange(-r, n + r), 2 * n)
    index = np.where(index >= n, 2 * n - 1 - index, index)
    out = np.empty_like(image)
    for a in range(0, n, SMOOTH_ROWS):
        z = min(n, a + SMOOTH_ROWS)
        src, m = image[index[a : z + 2 * r]].astype(np.float64), z - a
        acc = src[r : r + m] * weights[r]
        for j in range(r):  # scipy adds the outer pairs first
            acc += (src[j : j + m] + src[2 * r - j : 2 * r - j + m]) * weights[j]
        # the pass along rows while the block is in cache
        ndi.correlate1d(acc.astype(np.float32), weights, 1, out[a:z], "reflect")
    return out


def binarize(
    strength: np.ndarray,
    *,
    method: str = "otsu",
    min_contrast: float = 0.15,
    block_size: int = 51,
) -> np.ndarray:
    """Threshold the ink strength into an ink mask.

    Parameters
    ----------
    strength : ndarray
        Output of :func:`ink_strength`.
    method : {"otsu", "local"}
        One Otsu threshold for the whole page, or scikit-image's local
        (Gaussian-weighted mean) threshold in ``block_size`` windows.
    min_contrast : float
        The threshold never goes below this ink strength, so that paper grain
        and noise on a blank page are not ink.
    block_size : int
        Window of the local method (odd, in pixels).

    Returns
    -------
    ndarray
        bool ``(H, W)``.
    """
    from skimage import filters

    smooth = gaussian_smooth(strength, sigma=1.0, truncate=2.0)
    if method == "otsu":
        step = max(1, int(np.sqrt(smooth.size / 1_000_000)))
        sample = smooth[::step, ::step]
        t = filters.threshold_otsu(sample) if np.ptp(sample) > 0 else 1.0
        return smooth > max(float(t), min_contrast)
    if method == "local":
        local = filters.threshold_local(
            smooth, block_size | 1, offset=-min_contrast / 2
        )
        return smooth > np.maximum(local, min_contrast)
    raise ScanError(f"threshold method must be 'otsu' or 'local', not {method!r}")
