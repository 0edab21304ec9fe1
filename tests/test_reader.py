"""The viewer opens image files through the same loader as the command line."""

from __future__ import annotations

import numpy as np
import tifffile
from PIL import Image

from napari_digits import _reader, io


def test_the_manifest_declares_the_reader():
    from npe2 import PluginManager

    pm = PluginManager()
    pm.discover()
    manifest = pm.get_manifest("napari-digits")
    [reader] = manifest.contributions.readers
    assert "*.gif" in reader.filename_patterns and "*.tif" in reader.filename_patterns


def test_only_image_files_are_claimed(tmp_path):
    assert _reader.napari_get_reader(str(tmp_path / "a.JPG")) is not None
    assert _reader.napari_get_reader([str(tmp_path / "a.png")]) is not None
    assert _reader.napari_get_reader(str(tmp_path / "a.csv")) is None
    assert _reader.napari_get_reader(str(tmp_path / "a.npy")) is None
    assert _reader.napari_get_reader(str(tmp_path)) is None


def test_a_cmyk_jpeg_and_a_multipage_tiff_open_as_the_loader_reads_them(
    make_napari_viewer, tmp_path
):
    rgb = np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(cmyk, quality=95)
    pages = tmp_path / "pages.tif"
    with tifffile.TiffWriter(pages) as tif:
        for k in range(3):
            tif.write(rgb[..., k], photometric="minisblack")
    odd = tmp_path / "odd.tif"
    with tifffile.TiffWriter(odd) as tif:
        tif.write(rgb[..., 0], photometric="minisblack")
        tif.write(rgb[:20, :30], photometric="rgb")

    viewer = make_napari_viewer()
    [colour] = viewer.open(cmyk, plugin="napari-digits")
    assert colour.rgb and colour.data.shape == (40, 60, 3)
    np.testing.assert_array_equal(colour.data, io.read_image(cmyk))
    [stack] = viewer.open(pages, plugin="napari-digits")
    assert not stack.rgb and stack.data.shape == (3, 40, 60)
    first, second = viewer.open(odd, plugin="napari-digits")
    assert first.data.shape == (40, 60) and second.rgb
    assert second.name == "odd page 2"
