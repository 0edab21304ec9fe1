"""Every image a user has, made as a real file from the sample page, reads as the JPEG.

Each file goes through :func:`napari_digits.io.read_pages` and
:func:`napari_digits.scan.find_digits`: it must give the digits (boxes) that
the sample JPEG gives, 239 of them. A few are classified by the real engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_digits import io
from napari_digits.sample_data import scanned_page_path
from napari_digits.scan import find_digits

N_DIGITS = 239  # the sample page's ground truth (scanned_page.csv)


def _rgb() -> np.ndarray:
    with Image.open(scanned_page_path()) as im:
        return np.asarray(im.convert("RGB"))


def _grey() -> np.ndarray:
    with Image.open(scanned_page_path()) as im:
        return np.asarray(im.convert("L"))


def gif(path: Path) -> None:
    Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE).save(path)


def grey_alpha_png(path: Path) -> None:
    grey = _grey()
    alpha = np.full_like(grey, 255)
    alpha[:40] = 0  # a transparent strip at the top: paper, not ink
    Image.fromarray(np.dstack([np.where(alpha, grey, 0), alpha]), "LA").save(path)


def cmyk_jpeg(path: Path) -> None:
    Image.fromarray(_rgb()).convert("CMYK").save(path, quality=95)


def png16_of_8bit_values(path: Path) -> None:
    Image.fromarray(_grey().astype(np.uint16)).save(path)


def float_with_inf(path: Path) -> None:
    page = _grey().astype(np.float32) / 255
    page[10, 10] = np.inf
    page[900, 5] = -np.inf
    tifffile.imwrite(path, page)


def float_with_nan(path: Path) -> None:
    page = _grey().astype(np.float64) / 255
    page[10:20, 10:20] = np.nan
    np.save(path, page)


def rgba_png(path: Path) -> None:
    rgb = _rgb()
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(path)


def tiff12(path: Path) -> None:
    tifffile.imwrite(path, _grey().astype(np.uint16) << 4)


def tiff16(path: Path) -> None:
    tifffile.imwrite(path, _grey().astype(np.uint16) * 257)


def planar_rgb_tiff(path: Path) -> None:
    tifffile.imwrite(path, np.moveaxis(_rgb(), -1, 0), photometric="rgb")


def miniswhite_tiff(path: Path) -> None:
    tifffile.imwrite(path, 255 - _grey(), photometric="miniswhite")


def exif_rotated_jpeg(path: Path) -> None:
    # stored turned a quarter to the left; orientation 6 says "turn right to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.fromarray(_rgb()).transpose(Image.Transpose.ROTATE_90)
    stored.save(path, exif=exif, quality=95)


FORMATS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "gif": (".gif", gif),
    "grey+alpha png": (".png", grey_alpha_png),
    "cmyk jpeg": (".jpg", cmyk_jpeg),
    "16-bit png of 8-bit values": (".png", png16_of_8bit_values),
    "float tiff with inf": (".tif", float_with_inf),
    "float npy with nan": (".npy", float_with_nan),
    "rgba png": (".png", rgba_png),
    "12-bit tiff": (".tif", tiff12),
    "16-bit tiff": (".tif", tiff16),
    "planar rgb tiff": (".tif", planar_rgb_tiff),
    "miniswhite tiff": (".tif", miniswhite_tiff),
    "exif-rotated jpeg": (".jpg", exif_rotated_jpeg),
}


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """The boxes the sample JPEG gives."""
    scan = find_digits(io.read_image(scanned_page_path()))
    assert len(scan.regions) == N_DIGITS
    return np.array([r.bbox for r in scan.regions])


def assert_same_digits(page: np.ndarray, reference: np.ndarray) -> None:
    boxes = np.array([r.bbox for r in find_digits(page).regions])
    assert boxes.shape == reference.shape, f"{len(boxes)} digits, not {N_DIGITS}"
    # the same boxes up to an edge that lossy re-encoding moves (order may differ
    # where two digits of a line start at the same height)
    nearest = np.abs(boxes[:, None, :] - reference[None, :, :]).max(axis=2).min(axis=1)
    assert nearest.max() <= 3


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_reads_the_sample_page_as_the_jpeg(name, tmp_path, reference):
    suffix, make = FORMATS[name]
    path = tmp_path / f"page{suffix}"
    make(path)
    [page] = io.read_pages(path)
    assert page.shape[:2] == reference_shape()
    assert_same_digits(page, reference)


def reference_shape() -> tuple[int, int]:
    return _grey().shape


def test_a_multipage_tiff_gives_each_page_as_a_page(tmp_path, reference):
    path = tmp_path / "pages.tif"
    grey = _grey()
    with tifffile.TiffWriter(path) as tif:
        tif.write(grey, photometric="minisblack")
        tif.write(255 - grey, photometric="minisblack")  # light ink on dark
        tif.write(grey[::-1].copy(), photometric="minisblack")
    assert io.count_pages(path) == 3
    pages = io.read_pages(path)
    assert [p.shape for p in pages] == [grey.shape] * 3
    assert_same_digits(pages[0], reference)
    assert_same_digits(pages[1], reference)
    upside_down = find_digits(pages[2])
    assert len(upside_down.regions) == N_DIGITS
    assert io.read_image(path).shape == (3, *grey.shape)


def test_a_pillow_multipage_tiff_of_rgb_pages(tmp_path):
    path = tmp_path / "pages.tiff"
    page = Image.fromarray(_rgb()[:300, :200])
    page.save(path, save_all=True, append_images=[page.rotate(180)])
    pages = io.read_pages(path)
    assert [p.shape for p in pages] == [(300, 200, 3)] * 2
    np.testing.assert_array_equal(pages[1], np.rot90(pages[0], 2))


def test_the_scan_says_what_it_did_with_odd_values(tmp_path):
    path = tmp_path / "page.png"
    png16_of_8bit_values(path)
    assert any("8-bit" in m for m in find_digits(io.read_image(path)).messages)
    path = tmp_path / "page.tif"
    float_with_inf(path)
    assert any("NaN/inf" in m for m in find_digits(io.read_image(path)).messages)


def test_classification_is_the_same_as_the_jpegs(tmp_path, engine):
    from napari_digits.current_model import shipped_model_path
    from napari_digits.engine.protocol import Predict

    def predictions(page: np.ndarray) -> np.ndarray:
        crops = find_digits(page).crops[:60]
        probs = engine.call(Predict(model=str(shipped_model_path()), images=crops))
        return np.argmax(probs, axis=1)

    expected = predictions(io.read_image(scanned_page_path()))
    for name in ("cmyk jpeg", "grey+alpha png"):
        suffix, make = FORMATS[name]
        make(path := tmp_path / f"{name.replace(' ', '_')}{suffix}")
        agree = (predictions(io.read_image(path)) == expected).mean()
        assert agree >= 0.95, name  # a re-encoded JPEG may flip an unsure digit
