"""Peak memory of every path a parameter scales, at its limit (see bench_kernels).

Not a benchmark of its own: ``bench/run.py kernels`` adds these rows, in its
columns: ``image`` what was run, ``ours_s`` its time, ``peak_MiB_ours`` its
peak (tracemalloc: numpy buffers, or the engine process's VmHWM growth) and
``target`` the limit that bounds it.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from napari_digits import io, kernels
from napari_digits import learned_filters as lf


def _peak(func) -> tuple[float, float]:
    """Return (peak MiB, seconds) of one call; an exception counts as the result."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        func()
    except (ValueError, OSError):
        pass  # a refusal: its peak and time are what is measured
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return peak, seconds


def _row(path: str, limit: str, func) -> dict:
    peak, seconds = _peak(func)
    return _as_kernels_row(path, peak, seconds, limit)


def _as_kernels_row(path: str, peak: float, seconds: float, limit: str) -> dict:
    return {
        "image": path,
        "kernel": "(memory)",
        "ours_s": seconds,
        "target": limit,
        "peak_MiB_ours": peak,
    }


def _refused(func):
    def run():
        try:
            func()
        except (ValueError, OSError):
            return
        raise AssertionError("not refused")

    return run


def memory_rows(*, engine: bool = True) -> list[dict]:
    """Measure each path; return the rows."""
    small = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    conv = np.random.default_rng(1).normal(size=(2, 2, 1, 20)).astype(np.float32)
    best_zoom = _largest_zoom(conv)
    rows = [
        _row(
            "gaussian sigma 100 on 64x64 (sigma 1000: 2 GB before, now refused)",
            f"sigma <= {kernels.MAX_SIGMA:g}",
            lambda: kernels.apply_named(small, "gaussian", sigma=kernels.MAX_SIGMA),
        ),
        _row(
            "gaussian sigma inf / 1000: refused",
            "before work",
            _refused(lambda: kernels.apply_named(small, "gaussian", sigma=1e3)),
        ),
        _row(
            f"box size {kernels.MAX_BOX_SIZE} on 64x64",
            f"size <= {kernels.MAX_BOX_SIZE}",
            lambda: kernels.apply_named(small, "box", size=kernels.MAX_BOX_SIZE),
        ),
        _row(
            f"tiles of 20 2x2 filters, zoom {best_zoom} (the largest allowed)",
            f"{lf.MAX_TILE_PIXELS:,} px",
            lambda: lf.colour_tiles(lf.tile_filters(conv, zoom=best_zoom)),
        ),
        _row(
            "tiles, zoom 3000 (24 GB before): refused",
            "before work",
            _refused(lambda: lf.tile_filters(conv, zoom=3000)),
        ),
        _row(
            "numpy feature maps, 2048x2048, 20 filters",
            f"{lf.MAX_FEATURE_MAP_BYTES // 2**20} MiB of maps",
            lambda: lf.activation_maps(np.zeros((2048, 2048)), _conv(conv)),
        ),
        _row(
            "RGB stack 8x1024x1024x3 uint8, Sobel, per channel and plane",
            "input + float32 output",
            lambda: kernels.apply_named(
                np.zeros((8, 1024, 1024, 3), np.uint8), "sobel", rgb=True
            ),
        ),
    ]
    with tempfile.TemporaryDirectory() as folder:
        rows.append(_loader_row(Path(folder)))
    if engine:
        rows += _engine_rows()
    return rows


def _largest_zoom(conv: np.ndarray) -> int:
    try:
        lf.tile_filters(conv, zoom=10**6)
    except lf.TooLargeError as exc:
        return int(str(exc).rsplit(" ", 1)[-1])
    return 10**6


def _conv(kernel: np.ndarray):
    from napari_digits.engine.protocol import ConvWeights

    return ConvWeights(kernel, np.zeros(kernel.shape[-1], np.float32), "relu", "c")


def _loader_row(folder: Path) -> dict:
    from PIL import Image

    path = folder / "huge.png"
    Image.new("1", (20000, 15000)).save(path)  # 300 Mpx in 40 kB
    return _row(
        "loader: 300 Mpx PNG refused from its header",
        f"{io.MAX_PIXELS:,} px (--max-pixels)",
        _refused(lambda: io.read_image(path)),
    )


def _vmhwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _engine_rows() -> list[dict]:
    from napari_digits.current_model import shipped_model_path
    from napari_digits.engine.client import Engine, EngineError
    from napari_digits.engine.protocol import FeatureMaps, GetFirstLayer, Ping
    from napari_digits.sample_data import scanned_page_path
    from napari_digits.scan import to_gray

    engine = Engine("bench-memory")
    try:
        pid = engine.call(Ping())
        model = str(shipped_model_path())
        engine.call(GetFirstLayer(model=model))
        page = to_gray(io.read_image(scanned_page_path()))
        engine.call(FeatureMaps(model=model, image=page[:64, :64], depth=2))
        before = _vmhwm(pid)
        start = time.perf_counter()
        engine.call(FeatureMaps(model=model, image=page, depth=2))
        seconds = time.perf_counter() - start
        after = _vmhwm(pid)
        start = time.perf_counter()
        try:
            engine.call(
                FeatureMaps(model=model, image=np.zeros((4000, 4000), np.float32))
            )
        except EngineError:
            pass
        refused = time.perf_counter() - start
        huge_peak = _vmhwm(pid)
    finally:
        engine.shutdown()
    limit = f"{lf.MAX_FEATURE_MAP_BYTES // 2**20} MiB of maps"
    return [
        _as_kernels_row(
            f"engine feature maps, sample page {page.shape}, depth 2 "
            f"(VmHWM {before:.0f} -> {after:.0f} MiB)",
            after - before,
            seconds,
            limit,
        ),
        _as_kernels_row(
            f"engine feature maps, 4000x4000 (8 GB before): refused "
            f"(VmHWM {huge_peak:.0f} MiB)",
            huge_peak - after,
            refused,
            limit,
        ),
    ]
