"""Every parameter that scales memory is refused beyond its limit, before work."""

from __future__ import annotations

import numpy as np
import pytest

from napari_digits import kernels
from napari_digits import learned_filters as lf
from napari_digits.cli import main
from napari_digits.kernels import KernelError


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("gaussian", {"sigma": float("inf")}, "at most 100"),
        ("gaussian", {"sigma": float("nan")}, "positive"),
        ("gaussian", {"sigma": 1000}, "at most 100"),
        ("gaussian", {"sigma": -1}, "positive"),
        ("unsharp", {"radius": 1e9}, "radius"),
        ("unsharp", {"amount": float("inf")}, "amount"),
        ("box", {"size": 20000}, "1 to 801"),
        ("box", {"size": 2.5}, "whole number"),
        ("box", {"size": float("inf")}, "whole number"),
    ],
)
def test_kernel_parameters_that_scale_memory_are_bounded(name, params, match):
    with pytest.raises(KernelError, match=match):
        kernels.kernel_weights(name, **params)


def test_the_largest_gaussian_matches_scipy_on_a_small_image():
    from scipy import ndimage as ndi

    image = np.random.default_rng(0).random((64, 64))
    result = kernels.apply_named(image, "gaussian", sigma=kernels.MAX_SIGMA)
    np.testing.assert_allclose(
        result, ndi.gaussian_filter(image, kernels.MAX_SIGMA), rtol=1e-5, atol=1e-6
    )


def test_filter_cli_refuses_sigma_inf_and_huge_box_before_reading(tmp_path, capsys):
    src, out = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(src, np.ones((8, 8)))
    for extra in (["--sigma", "inf"], ["--sigma", "1000"]):
        assert (
            main(
                ["filter", str(src), "--kernel", "gaussian", *extra, "--out", str(out)]
            )
            == 1
        )
    assert (
        main(
            [
                "filter",
                str(src),
                "--kernel",
                "box",
                "--size",
                "20000",
                "--out",
                str(out),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and "Traceback" not in err
    assert not out.exists()


def test_tiles_refuse_a_huge_zoom_and_name_the_largest():
    kernel = np.ones((2, 2, 1, 32), np.float32)
    with pytest.raises(lf.TooLargeError, match="zoom of at most") as info:
        lf.tile_filters(kernel, zoom=3000)
    best = int(str(info.value).rsplit(" ", 1)[-1])
    assert lf.tile_filters(kernel, zoom=best).image.size <= lf.MAX_TILE_PIXELS
    with pytest.raises(lf.TooLargeError):
        lf.tile_filters(kernel, zoom=best + 1)
    with pytest.raises(ValueError, match="zoom"):
        lf.tile_filters(kernel, zoom=0)


def test_feature_maps_of_a_huge_image_are_refused_with_the_size_that_fits():
    with pytest.raises(lf.TooLargeError, match="crop or downscale") as info:
        lf.check_feature_maps((4000, 4000), [(4000, 4000, 32)])
    assert "1,953 MiB" in str(info.value) and "2048x2048" in str(info.value)
    lf.check_feature_maps((1754, 1240), [(1754, 1240, 20), (877, 620, 40)])


def test_activation_maps_in_strips_equal_one_einsum():
    from napari_digits.engine.protocol import ConvWeights

    rng = np.random.default_rng(1)
    conv = ConvWeights(
        rng.normal(size=(3, 3, 1, 8)).astype(np.float32),
        rng.normal(size=8).astype(np.float32),
        "relu",
        "conv",
    )
    image = rng.random((700, 900))
    maps = lf.activation_maps(image, conv, padding="same")
    x = np.pad(image, 1)[..., None]
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(0, 1))
    expected = np.maximum(
        np.einsum("ijcuv,uvcf->ijf", windows, conv.kernel) + conv.bias, 0
    )
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-5)


def test_the_engine_refuses_feature_maps_past_the_limit(engine):
    from napari_digits.current_model import shipped_model_path
    from napari_digits.engine.client import EngineError
    from napari_digits.engine.protocol import FeatureMaps, Ping

    image = np.zeros((2500, 2500), np.float32)
    with pytest.raises(EngineError, match="crop or downscale"):
        engine.call(FeatureMaps(model=str(shipped_model_path()), image=image, depth=2))
    assert engine.call(Ping())  # still answering
