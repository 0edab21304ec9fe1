"""Kernels benchmark: napari_digits.kernels against scipy.ndimage called directly.

Rows: Sobel magnitude, Gaussian sigma 2 and a custom 5x5 kernel, on a 4096x4096
float32 image and a 4096x4096 uint8 RGB image. Both sides produce float32
results of the same values; the scipy side of the RGB rows converts the image to
float32 first and filters each colour channel (what a user writes by hand).
Times are medians of REPEATS runs, the two sides interleaved; peak memory
(tracemalloc: numpy buffers) is measured in a separate, untimed run of every
row. BENCH_KERNELS_SIZE and BENCH_KERNELS_REPEATS change the size and repeats.

Then the memory rows: the peak of every path whose memory a parameter scales,
at its limit (Gaussian sigma, box size, the tiles' zoom, the numpy feature
maps, the loader on a page over its pixel limit, an RGB stack), and the
engine's feature maps of the sample page: the engine process's peak resident
memory (VmHWM) before and after the request, and how fast a 4000x4000 image
is refused. BENCH_KERNELS_ENGINE=0 leaves the engine out.
"""

from __future__ import annotations

import os
import statistics
import time
import tracemalloc

import numpy as np
from scipy import ndimage as ndi

from napari_digits import kernels

SIZE = int(os.environ.get("BENCH_KERNELS_SIZE", 4096))
REPEATS = int(os.environ.get("BENCH_KERNELS_REPEATS", 5))
CUSTOM = np.random.default_rng(1).standard_normal((5, 5))


def _sobel_mag(image):
    return np.hypot(ndi.sobel(image, axis=1), ndi.sobel(image, axis=0))


SCIPY_GREY = {
    "sobel": _sobel_mag,
    "gaussian": lambda f: ndi.gaussian_filter(f, 2.0),
    "custom": lambda f: ndi.convolve(f, CUSTOM),
}
SCIPY_RGB = {
    "sobel": lambda f: np.stack([_sobel_mag(f[..., c]) for c in range(3)], axis=-1),
    "gaussian": lambda f: ndi.gaussian_filter(f, (2.0, 2.0, 0.0)),
    "custom": lambda f: ndi.convolve(f, CUSTOM[:, :, None]),
}
PARAMS = {"sobel": {}, "gaussian": {"sigma": 2.0}, "custom": {"weights": CUSTOM}}


def _median_times(*funcs) -> list[float]:
    """Median wall time of each function, runs interleaved (fair under load)."""
    times: list[list[float]] = [[] for _ in funcs]
    for _ in range(REPEATS):
        for func, record in zip(funcs, times, strict=True):
            start = time.perf_counter()
            func()
            record.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _peak_mib(func) -> float:
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _row(label, image, name, rgb) -> dict:
    def ours():
        return kernels.apply_named(image, name, rgb=rgb, **PARAMS[name])

    def scipy_direct():
        f = image.astype(np.float32)
        return (SCIPY_RGB if rgb else SCIPY_GREY)[name](f)

    np.testing.assert_allclose(ours(), scipy_direct(), rtol=1e-4, atol=1e-3)
    t_ours, t_scipy = _median_times(ours, scipy_direct)
    row = {
        "image": label,
        "kernel": name,
        "ours_s": t_ours,
        "scipy_s": t_scipy,
        "ratio": t_ours / t_scipy,
        "target": "<= 2",
        "ok": t_ours / t_scipy <= 2,
    }
    row["peak_MiB_ours"] = _peak_mib(ours)
    row["peak_MiB_scipy"] = _peak_mib(scipy_direct)
    return row


def run() -> list[dict]:
    """Time every row; return the table rows."""
    rng = np.random.default_rng(0)
    grey = rng.random((SIZE, SIZE), dtype=np.float32)
    rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    rows = [_row(f"{SIZE}x{SIZE} float32", grey, k, False) for k in SCIPY_GREY]
    rows += [_row(f"{SIZE}x{SIZE}x3 uint8", rgb, k, True) for k in SCIPY_RGB]
    del grey, rgb
    from memory_paths import memory_rows

    return rows + memory_rows(engine=os.environ.get("BENCH_KERNELS_ENGINE") != "0")
