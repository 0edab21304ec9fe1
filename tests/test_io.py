"""The loader's checks: sizes from the header, dtypes, pages, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile

from napari_digits import io
from napari_digits.cli import main


def test_a_page_over_the_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.new("1", (20000, 15000)).save(path)  # 300 Mpx, a 40 kB file

    def never_decode(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never_decode)
    with pytest.raises(io.ImageReadError, match="--max-pixels"):
        io.read_image(path)
    assert io.count_pages(path) == 1


def test_pillows_bomb_check_is_replaced_by_ours(tmp_path, monkeypatch):
    path = tmp_path / "page.png"
    Image.fromarray(np.full((100, 100), 200, np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 px is a "bomb"
    assert io.read_image(path).shape == (100, 100)
    assert Image.MAX_IMAGE_PIXELS == 1000  # put back
    with pytest.raises(io.ImageReadError, match="limit of 9,999"):
        io.read_image(path, max_pixels=9999)
    assert io.read_image(path, max_pixels=None).shape == (100, 100)


def test_a_huge_npy_and_tiff_are_refused_before_loading(tmp_path):
    npy = tmp_path / "big.npy"
    np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=(3000, 4000))
    with pytest.raises(io.ImageReadError, match="12,000,000 pixels"):
        io.read_image(npy, max_pixels=10**7)
    tif = tmp_path / "big.tif"
    tifffile.imwrite(tif, np.zeros((3000, 4000), np.uint8))
    with pytest.raises(io.ImageReadError, match="a page"):
        io.read_pages(tif, max_pixels=10**7)


@pytest.mark.parametrize("dtype", [np.longdouble, np.complex64, "U3", object])
def test_unsupported_dtypes_are_one_clear_error(tmp_path, dtype):
    if np.dtype(dtype) == np.float64:
        pytest.skip("long double is double on this platform")
    path = tmp_path / "odd.npy"
    np.save(path, np.zeros((4, 4), dtype=dtype), allow_pickle=True)
    with pytest.raises(io.ImageReadError, match=r"odd\.npy"):
        io.read_image(path)


@pytest.mark.parametrize(
    ("make", "match"),
    [("missing", "no such file"), ("folder", "is a folder"), ("text", "cannot read")],
)
def test_bad_paths(tmp_path, make, match):
    path = tmp_path / "x.png"
    if make == "folder":
        path.mkdir()
    elif make == "text":
        path.write_text("not an image")
    with pytest.raises(io.ImageReadError, match=match):
        io.read_pages(path)


def test_a_truncated_file_fails_when_decoded_with_a_message(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(
        np.random.default_rng(0).integers(0, 255, (200, 200), np.uint8)
    ).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(io.ImageReadError, match=r"cut\.png"):
        io.read_image(path)


def test_iter_pages_decodes_one_page_at_a_time(tmp_path):
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tif:
        for k in range(4):
            tif.write(np.full((5, 6), k, np.uint16), photometric="minisblack")
    pages = io.iter_pages(path)
    assert next(pages).max() == 0 and next(pages).max() == 1
    assert [p.max() for p in pages] == [2, 3]


def test_pages_of_different_shapes_are_read_one_by_one(tmp_path):
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((5, 6), np.uint8), photometric="minisblack")
        tif.write(np.zeros((7, 8), np.uint8), photometric="minisblack")
    with pytest.raises(io.ImageReadError, match="read_pages"):
        io.read_image(path)
    assert [p.shape for p in io.read_pages(path)] == [(5, 6), (7, 8)]


def test_a_palette_with_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "t.png"
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.info["transparency"] = 1  # red is transparent
    image.save(path, transparency=1)
    page = io.read_image(path)
    assert page.shape == (4, 4, 3) and (page == 255).all()


def test_filter_max_pixels_override(tmp_path, capsys):
    src, out = tmp_path / "in.png", tmp_path / "out.npy"
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(src)
    args = ["filter", str(src), "--kernel", "sobel", "--out", str(out)]
    assert main([*args, "--max-pixels", "1000"]) == 1
    assert "--max-pixels" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--max-pixels", "1200"]) == 0


def test_filter_an_rgb_stack_per_channel_and_plane(tmp_path):
    from scipy import ndimage as ndi

    stack = np.random.default_rng(2).integers(0, 255, (2, 16, 20, 3), np.uint8)
    src, out = tmp_path / "stack.npy", tmp_path / "out.npy"
    np.save(src, stack)
    assert main(["filter", str(src), "--kernel", "gaussian", "--out", str(out)]) == 0
    expected = np.empty(stack.shape, np.float32)
    for t in range(2):
        for c in range(3):
            expected[t, ..., c] = ndi.gaussian_filter(
                stack[t, ..., c].astype(float), 1.0
            )
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-4)
    tif = tmp_path / "stack.tif"
    tifffile.imwrite(tif, stack, photometric="rgb")
    assert main(["filter", str(tif), "--kernel", "gaussian", "--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-4)
