"""The learned-filters core: tiles, the numpy first layer, kernel matching."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_digits import learned_filters as lf
from napari_digits.engine.protocol import ConvWeights

SOBEL_X = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
SOBEL_Y = SOBEL_X.T
GAUSS = np.outer([1.0, 2, 1], [1.0, 2, 1]) / 16
LAPLACE = np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
BOX = np.full((3, 3), 1 / 9)
CATALOGUE = {
    "Sobel x": SOBEL_X,
    "Sobel y": SOBEL_Y,
    "Gaussian": GAUSS,
    "Laplacian": LAPLACE,
    "box blur": BOX,
    "other size": np.ones((5, 5)),
}


def random_kernel(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize(
    ("shape", "grid"),
    [
        ((2, 2, 1, 32), (4, 8)),
        ((3, 3, 1, 16), (3, 6)),
        ((5, 5, 1, 3), (1, 3)),
        ((3, 3, 3, 8), (3, 8)),
    ],
)
def test_tiles_hold_every_weight_as_a_square(shape, grid):
    kernel = random_kernel(shape)
    tiles = lf.tile_filters(kernel, zoom=4, gap=2)
    h, w, cin, n = shape
    assert len(tiles.boxes) == n * cin
    rows, cols = grid
    assert tiles.image.shape == (
        rows * h * 4 + (rows - 1) * 2,
        cols * w * 4 + (cols - 1) * 2,
    )
    for (r0, c0, r1, c1), f, c in zip(
        tiles.boxes, tiles.filters, tiles.channels, strict=True
    ):
        tile = tiles.image[r0:r1, c0:c1]
        assert tile.shape == (h * 4, w * 4)
        np.testing.assert_array_equal(tile[::4, ::4], kernel[:, :, c, f])
        np.testing.assert_array_equal(
            tile, np.kron(kernel[:, :, c, f], np.ones((4, 4)))
        )
    if cin > 1:  # one row per input channel
        assert sorted(set(tiles.boxes[tiles.channels == 1, 0])) == [h * 4 + 2]
    assert tiles.limit == pytest.approx(np.abs(kernel).max())
    assert tiles.mask.sum() == n * cin * h * w * 16


def test_tiles_gaps_hold_the_fill_value():
    tiles = lf.tile_filters(np.ones((2, 2, 1, 2)), zoom=3, gap=1, fill=-7)
    np.testing.assert_array_equal(tiles.image[:, 6], -7)
    assert tiles.image.shape == (6, 13)


@pytest.mark.parametrize("bad", [np.ones((3, 3)), np.ones((3, 3, 1, 0))])
def test_malformed_weights_raise(bad):
    with pytest.raises(lf.NoConvolutionError, match="Conv2D"):
        lf.tile_filters(bad)


def test_as_kernel_rotates_keras_weights_by_180_degrees():
    kernel = random_kernel((3, 3, 2, 4))
    np.testing.assert_array_equal(
        lf.as_kernel(kernel, 2, channel=1), np.rot90(kernel[:, :, 1, 2], 2)
    )
    # correlation with the weights == convolution with the kernel
    image = random_kernel((12, 10), seed=1)
    np.testing.assert_allclose(
        ndimage.correlate(image, kernel[:, :, 0, 3], mode="reflect"),
        ndimage.convolve(image, lf.as_kernel(kernel, 3), mode="reflect"),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("size", [2, 3, 5])
def test_activation_maps_equal_a_valid_correlation_plus_bias_and_relu(size):
    image = np.random.default_rng(2).random((14, 11))
    kernel = random_kernel((size, size, 1, 4), seed=size)
    bias = np.array([0.5, -0.5, 0.0, 1.0], dtype=np.float32)
    maps = lf.activation_maps(image, ConvWeights(kernel, bias, "relu"))
    assert maps.shape == (15 - size, 12 - size, 4)
    assert maps.dtype == np.float32
    for f in range(4):
        full = ndimage.correlate(
            image, kernel[:, :, 0, f].astype(np.float64), mode="constant"
        )
        # scipy anchors the window at its centre; Keras "valid" at its corner
        top = size // 2
        expected = np.maximum(
            full[top : top + 15 - size, top : top + 12 - size] + bias[f], 0
        )
        np.testing.assert_allclose(maps[..., f], expected, rtol=1e-5, atol=1e-5)


def test_activation_maps_same_padding_and_channels():
    image = np.random.default_rng(3).random((9, 8, 3))
    kernel = random_kernel((2, 2, 3, 2))
    conv = ConvWeights(kernel, np.zeros(2, np.float32), "linear")
    same = lf.activation_maps(image, conv, padding="same")
    valid = lf.activation_maps(image, conv)
    assert same.shape == (9, 8, 2)
    np.testing.assert_allclose(same[:-1, :-1], valid, rtol=1e-5)  # TF pads after
    expected = sum(
        image[0, 0, c] * kernel[0, 0, c]
        + image[0, 1, c] * kernel[0, 1, c]
        + image[1, 0, c] * kernel[1, 0, c]
        + image[1, 1, c] * kernel[1, 1, c]
        for c in range(3)
    )
    np.testing.assert_allclose(valid[0, 0], expected, rtol=1e-5)


def test_activation_maps_bad_input():
    conv = ConvWeights(random_kernel((5, 5, 1, 2)), np.zeros(2), "relu")
    with pytest.raises(lf.ImageTooSmallError, match="smaller than the filter"):
        lf.activation_maps(np.zeros((4, 9)), conv)
    with pytest.raises(ValueError, match="channels"):
        lf.activation_maps(np.zeros((9, 9, 3)), conv)
    with pytest.raises(ValueError, match="not supported"):
        lf.activation_maps(
            np.zeros((9, 9)), ConvWeights(conv.kernel, conv.bias, "mish")
        )


@pytest.mark.parametrize(
    ("weights", "name", "rotation", "negated"),
    [
        (SOBEL_X, "Sobel x", 0, False),
        (SOBEL_Y, "Sobel y", 0, False),
        (-SOBEL_Y, "Sobel y", 0, True),
        (GAUSS * 3 + 0.2, "Gaussian", 0, False),
        (-LAPLACE, "Laplacian", 0, True),
    ],
)
def test_closest_classic_names_the_kernel_and_its_variant(
    weights, name, rotation, negated
):
    match = lf.closest_classic(weights, CATALOGUE, filter=7)
    assert (match.name, match.rotation, match.negated) == (name, rotation, negated)
    assert match.r == pytest.approx(1)


def test_closest_classic_score_and_sentence():
    noisy = SOBEL_Y + np.random.default_rng(0).normal(scale=0.3, size=(3, 3))
    match = lf.closest_classic(noisy, CATALOGUE, filter=7)
    assert match.name == "Sobel y"
    assert match.r == pytest.approx(lf.correlation(noisy, SOBEL_Y))
    assert 0.8 < match.r < 1
    assert str(match) == f"filter 7 ~ Sobel y, r = {match.r:.2f}"
    rotated = lf.closest_classic(np.rot90(SOBEL_X), {"Sobel x": SOBEL_X})
    assert (rotated.rotation, rotated.r) == (1, pytest.approx(1))
    assert "rotated 90°" in str(rotated)


def test_flat_filters_and_missing_sizes_match_nothing():
    assert lf.closest_classic(np.ones((3, 3)), CATALOGUE).name is None
    assert lf.closest_classic(np.eye(4), CATALOGUE).name is None
    assert "no classic kernel" in str(lf.closest_classic(np.eye(4), CATALOGUE))


def test_match_filters_uses_the_kernels_convention_and_fills_a_table():
    kernel = np.stack([SOBEL_X, GAUSS, LAPLACE], axis=-1)[:, :, None, :]
    matches = lf.match_filters(kernel, CATALOGUE)
    # Keras correlates: Sobel x weights compute a negated Sobel x convolution
    assert [(m.name, m.negated) for m in matches] == [
        ("Sobel x", True),
        ("Gaussian", False),
        ("Laplacian", False),
    ]
    table = lf.match_table(matches)
    assert table["filter"].tolist() == [0, 1, 2]
    assert table["closest"].tolist() == ["Sobel x (negated)", "Gaussian", "Laplacian"]
    np.testing.assert_allclose(table["r"], 1.0)
    assert table["label"][1] == "filter 1 ~ Gaussian, r = 1.00"


def test_to_grey():
    assert lf.to_grey(np.array([[0, 255]], np.uint8), rgb=False).tolist() == [
        [0.0, 1.0]
    ]
    assert lf.to_grey(np.array([[-2.0, 2.0]]), rgb=False).tolist() == [[0.0, 1.0]]
    rgb = np.zeros((4, 5, 4), np.uint8)
    rgb[..., 1] = 255
    grey = lf.to_grey(rgb, rgb=True)
    assert grey.shape == (4, 5)
    np.testing.assert_allclose(grey, 0.7152, atol=1e-3)
    with pytest.raises(ValueError, match="2D"):
        lf.to_grey(np.zeros((2, 3, 4)), rgb=False)


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_apply_kernel_with_as_kernel_equals_a_same_padded_layer(size):
    from napari_digits.kernels import apply_kernel

    image = np.random.default_rng(4).random((13, 12))
    kernel = random_kernel((size, size, 1, 2), seed=size)
    conv = ConvWeights(kernel, np.array([0.25, -0.25], np.float32), "relu")
    layer = lf.activation_maps(image, conv, padding="same")
    for f in range(2):
        applied = apply_kernel(image, lf.as_kernel(kernel, f), mode="constant")
        np.testing.assert_allclose(
            np.maximum(applied + conv.bias[f], 0), layer[..., f], rtol=1e-5, atol=1e-5
        )


def test_default_catalogue_names_the_kernels_capabilitys_kernels():
    from napari_digits.kernels import SOBEL_X as KERNELS_SOBEL_X

    assert {"Sobel x", "Sobel y", "Gaussian blur", "Identity"} <= set(
        lf.classic_catalogue(3)
    )
    # a Keras filter set to the flipped Sobel x computes the Sobel x convolution
    kernel = np.flip(KERNELS_SOBEL_X)[:, :, None, None]
    (match,) = lf.match_filters(kernel)
    assert (match.name, match.rotation, match.negated) == ("Sobel x", 0, False)
    assert match.r == pytest.approx(1)
    # 2x2: the Roberts cross diagonals, whichever way round
    roberts = np.array([[0.0, 2.0], [-2.0, 0.0]])[:, :, None, None]
    (match,) = lf.match_filters(roberts)
    assert match.name in {"Roberts 1", "Roberts 2"}
    assert match.r == pytest.approx(1)


def test_current_plane_takes_the_viewers_position():
    data = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(lf.current_plane(data, (1, 2, 0, 0)), data[1, 2])
    np.testing.assert_array_equal(lf.current_plane(data, ()), data[0, 0])
    np.testing.assert_array_equal(lf.current_plane(data[0, 0]), data[0, 0])
    rgb = np.zeros((3, 4, 5, 3))
    assert lf.current_plane(rgb, (2, 0, 0), rgb=True).shape == (4, 5, 3)
    # leading step from a viewer whose other layers have more planes: clipped
    np.testing.assert_array_equal(lf.current_plane(data, (7, 9, 0, 0)), data[1, 2])
    # a 3D layer in a 4D viewer uses the last three dims
    np.testing.assert_array_equal(lf.current_plane(data[0], (1, 2, 0, 0)), data[0, 2])


def test_colour_tiles_centres_the_colormap_on_zero():
    kernel = np.array([[-2.0, 0.0], [1.0, 2.0]])[:, :, None, None] * [1, -1]
    tiles = lf.tile_filters(kernel, zoom=2, gap=1)
    rgb = lf.colour_tiles(tiles)
    assert rgb.shape == (*tiles.image.shape, 3) and rgb.dtype == np.uint8
    blue, white, red = rgb[0, 0], rgb[0, 2], rgb[2, 2]
    assert blue[2] > blue[0] and red[0] > red[2]  # negative blue, positive red
    assert white.min() > 230  # zero is the (near-white) centre of RdBu_r
    assert rgb[0, 4].tolist() == [140, 140, 140]  # the gap


def test_format_matches_is_one_line_per_filter():
    kernel = np.stack([SOBEL_X, np.ones((3, 3))], axis=-1)[:, :, None, :]
    text = lf.format_matches(lf.match_filters(kernel, CATALOGUE))
    head, first, second = text.splitlines()
    assert head.split() == ["filter", "channel", "closest", "classic", "kernel", "r"]
    assert first.split() == ["0", "0", "Sobel", "x", "(negated)", "1.00"]
    assert second.split() == ["1", "0", "(none)", "-"]


def test_label_space_leaves_room_above_every_row():
    tiles = lf.tile_filters(np.ones((2, 2, 1, 10)), zoom=3, gap=1, label_space=4)
    assert grid_rows(tiles) == [4, 15]  # 4 + 6 + 1 + 4
    assert tiles.image.shape == (2 * (4 + 6) + 1, 5 * 6 + 4)
    assert not tiles.mask[:4].any()


def grid_rows(tiles):
    return sorted(set(tiles.boxes[:, 0].tolist()))


def test_closest_classics_equals_one_by_one_matching():
    stack = np.random.default_rng(5).normal(size=(40, 3, 3))
    stack[3] = 1.0  # flat
    stack[4] = np.rot90(SOBEL_X, 3) * 2 - 1
    matches = lf.closest_classics(stack, CATALOGUE, filters=list(range(40)))
    assert matches[3].name is None
    assert (matches[4].name, matches[4].r) == ("Sobel y", pytest.approx(1))
    for weights, match in zip(stack, matches, strict=True):
        if match.name is None:
            continue
        best = max(
            lf.correlation(weights, variant)
            for classic in CATALOGUE.values()
            if classic.shape == (3, 3) and np.ptp(classic) > 0
            for _, _, variant in lf.variants(classic)
        )
        assert match.r == pytest.approx(best)
        classic = np.rot90(CATALOGUE[match.name], match.rotation)
        assert lf.correlation(weights, -classic if match.negated else classic) == (
            pytest.approx(match.r)
        )


def test_to_grey_replaces_nan_and_inf_instead_of_spreading_them():
    image = np.linspace(0, 10, 24).reshape(4, 6)
    image[0, 0], image[1, 1] = np.nan, np.inf
    grey = lf.to_grey(image, rgb=False)
    assert np.isfinite(grey).all() and grey.min() >= 0 and grey.max() <= 1
    with pytest.raises(ValueError, match="finite"):
        lf.to_grey(np.full((3, 3), np.nan), rgb=False)
