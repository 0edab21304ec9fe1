"""``napari-digits filters`` in a subprocess (it loads TensorFlow in-process)."""

from __future__ import annotations

import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from make_model import build_models, first_layer
from napari_digits import learned_filters as lf


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return build_models(tmp_path_factory.getbasetemp() / "learned_filter_models")


def filters(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "napari_digits", "filters", *map(str, args)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def test_filters_writes_the_tiles_and_names_the_kernels(models, tmp_path):
    out = tmp_path / "filters.png"
    done = filters(models / "sobel_gauss.keras", "--out", out, "--zoom", 5)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "2 filters of 3x3, 1 input channel(s), activation linear" in lines[1]
    assert lines[3].split() == ["0", "0", "Sobel", "x", "1.00"]
    assert lines[4].split() == ["1", "0", "Gaussian", "blur", "1.00"]
    png = iio.imread(out)
    tiles = lf.tile_filters(first_layer(models, "sobel_gauss").kernel, zoom=5)
    np.testing.assert_array_equal(png[..., :3], lf.colour_tiles(tiles))
    assert png.shape[:2] == (15, 31)  # 1 row of 2 tiles of 3x3 weights, 1 px gap


def test_filters_without_a_convolution_layer_is_an_error(models, tmp_path):
    done = filters(models / "dense.keras", "--out", tmp_path / "x.png")
    assert done.returncode == 1
    assert "no 2D convolution layer" in done.stderr
    assert not (tmp_path / "x.png").exists()
