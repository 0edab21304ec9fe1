"""The kernels core: references from scikit-image/scipy, hand-worked arrays."""

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import filters

from napari_digits import kernels
from napari_digits.kernels import KernelError, apply_kernel, apply_named

RNG = np.random.default_rng(0)
FLOAT = RNG.random((23, 31))

ISSUE_KEYS = (
    "sobel_x sobel_y sobel prewitt_x prewitt_y prewitt scharr_x scharr_y scharr "
    "roberts laplacian4 laplacian8 gaussian box sharpen emboss unsharp identity custom"
).split()


def test_catalogue_has_every_kernel_of_the_issue():
    assert set(ISSUE_KEYS) <= set(kernels.CATALOGUE)
    for key, spec in kernels.CATALOGUE.items():
        assert spec.key == key and spec.name
        assert len(kernels.kernel_weights(key)) == (2 if spec.magnitude else 1)
    assert kernels.CATALOGUE["gaussian"].defaults() == {"sigma": 1.0}
    assert set(kernels.CATALOGUE["unsharp"].defaults()) == {"radius", "amount"}


# -- references ---------------------------------------------------------------

# our kernel = scale * scikit-image's function (scikit-image divides its weights)
SKIMAGE_REFERENCES = [
    ("sobel_x", lambda im: filters.sobel(im, axis=1), 4),
    ("sobel_y", lambda im: filters.sobel(im, axis=0), 4),
    ("sobel", filters.sobel, 4 * np.sqrt(2)),
    ("prewitt_x", lambda im: filters.prewitt(im, axis=1), 3),
    ("prewitt_y", lambda im: filters.prewitt(im, axis=0), 3),
    ("prewitt", filters.prewitt, 3 * np.sqrt(2)),
    ("scharr_x", lambda im: filters.scharr(im, axis=1), 16),
    ("scharr_y", lambda im: filters.scharr(im, axis=0), 16),
    ("scharr", filters.scharr, 16 * np.sqrt(2)),
    ("roberts", filters.roberts, np.sqrt(2)),
    ("laplacian4", filters.laplace, -1),
]


@pytest.mark.parametrize(("name", "reference", "scale"), SKIMAGE_REFERENCES)
def test_matches_scikit_image_up_to_its_normalisation(name, reference, scale):
    ours = apply_named(FLOAT, name)
    assert ours.dtype == np.float32
    # scikit-image's roberts/laplace leave the border to their own conventions
    inner = np.s_[2:-2, 2:-2]
    np.testing.assert_allclose(ours[inner], scale * reference(FLOAT)[inner], atol=1e-5)


@pytest.mark.parametrize("mode", kernels.MODES)
@pytest.mark.parametrize(
    ("name", "params", "reference"),
    [
        ("sobel_x", {}, lambda im, **kw: ndi.sobel(im, axis=1, **kw)),
        ("prewitt_y", {}, lambda im, **kw: ndi.prewitt(im, axis=0, **kw)),
        ("gaussian", {"sigma": 2.0}, lambda im, **kw: ndi.gaussian_filter(im, 2, **kw)),
        ("box", {"size": 5}, lambda im, **kw: ndi.uniform_filter(im, 5, **kw)),
        ("laplacian4", {}, lambda im, **kw: ndi.laplace(im, **kw)),
        ("identity", {}, lambda im, **kw: im),
    ],
)
def test_matches_scipy_ndimage_in_every_border_mode(name, params, reference, mode):
    # cval 0: ndimage's separable filters pad every 1D pass with cval, which is a
    # 2D convolution's border only for cval 0 (test_fast_paths... covers cval != 0)
    ours = apply_named(FLOAT, name, mode=mode, **params)
    kw = {"mode": mode} if name != "identity" else {}
    np.testing.assert_allclose(ours, reference(FLOAT, **kw), atol=1e-5)


@pytest.mark.parametrize("mode", kernels.MODES)
@pytest.mark.parametrize("name", ["sharpen", "unsharp", "emboss", "gaussian", "box"])
def test_fast_paths_equal_a_plain_2d_convolution(name, mode):
    [w] = kernels.kernel_weights(name)
    expected = ndi.convolve(FLOAT, w, mode=mode, cval=2.0)
    got = apply_named(FLOAT, name, mode=mode, cval=2.0)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_unsharp_mask_is_image_plus_amount_times_detail():
    blur = ndi.gaussian_filter(FLOAT, 1.5)
    got = apply_named(FLOAT, "unsharp", radius=1.5, amount=0.7)
    np.testing.assert_allclose(got, FLOAT + 0.7 * (FLOAT - blur), atol=1e-5)


# -- hand-worked ---------------------------------------------------------------


def test_sobel_x_is_positive_where_brightness_rises_to_the_right():
    step = np.repeat([[0, 0, 1, 1]], 3, axis=0).astype(np.uint8)
    np.testing.assert_array_equal(apply_named(step, "sobel_x")[1], [0, 4, 4, 0])
    np.testing.assert_array_equal(apply_named(step, "sobel_y"), 0)
    np.testing.assert_array_equal(apply_named(step.T, "sobel_y")[:, 1], [0, 4, 4, 0])


def test_convolution_flips_the_kernel():
    impulse = np.zeros((5, 5))
    impulse[2, 2] = 1
    w = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(apply_kernel(impulse, w)[1:4, 1:4], w)


def test_laplacian_of_a_single_bright_pixel_with_zero_border():
    image = np.zeros((3, 3), dtype=bool)
    image[1, 1] = True
    got = apply_named(image, "laplacian8", mode="constant")
    np.testing.assert_array_equal(got, [[1, 1, 1], [1, -8, 1], [1, 1, 1]])


def test_box_mean_and_constant_border():
    image = np.full((3, 3), 9, dtype=np.int16)
    got = apply_named(image, "box", size=3, mode="constant", cval=0)
    np.testing.assert_allclose(got, [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_roberts_on_a_diagonal_step():
    image = np.zeros((3, 3), dtype=np.uint16)
    image[2, 2] = 2
    # a 2x2 convolution at (1, 1) sees the block image[1:3, 1:3]: one diagonal
    # differs by 2, the other by 0
    np.testing.assert_allclose(apply_named(image, "roberts")[1, 1], 2.0)


# -- dtypes and shapes ----------------------------------------------------------

DTYPES = [np.uint8, np.uint16, np.int32, np.int64, np.float16, np.float32, float, bool]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_gives_float32_equal_to_the_float64_result(dtype):
    image = (RNG.random((9, 11)) * 200).astype(dtype)
    got = apply_named(image, "sobel")
    assert got.dtype == np.float32
    expected = apply_named(image.astype(np.float64), "sobel")
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_stack_is_filtered_plane_by_plane():
    stack = RNG.random((4, 10, 12)).astype(np.float32)
    got = apply_named(stack, "gaussian", sigma=1.3)
    for i, plane in enumerate(stack):
        np.testing.assert_allclose(got[i], apply_named(plane, "gaussian", sigma=1.3))


def test_other_spatial_axes_can_be_chosen():
    stack = RNG.random((6, 7, 8))
    got = apply_named(stack, "sobel", axes=(0, 2))
    for j in range(stack.shape[1]):
        np.testing.assert_allclose(got[:, j], apply_named(stack[:, j], "sobel"))


@pytest.mark.parametrize("channels", [3, 4])
def test_rgb_filters_each_colour_and_keeps_alpha(channels):
    image = (RNG.random((12, 10, channels)) * 255).astype(np.uint8)
    got = apply_named(image, "sobel", rgb=True)
    assert got.shape == image.shape and got.dtype == np.float32
    for c in range(3):
        np.testing.assert_allclose(got[..., c], apply_named(image[..., c], "sobel"))
    if channels == 4:
        np.testing.assert_array_equal(got[..., 3], image[..., 3])


def test_rgb_stack():
    image = RNG.random((2, 8, 9, 4))
    got = apply_named(image, "emboss", rgb=True)
    np.testing.assert_allclose(got[1, ..., 0], apply_named(image[1, ..., 0], "emboss"))
    np.testing.assert_allclose(got[..., 3], image[..., 3].astype(np.float32))


@pytest.mark.parametrize("mode", ["reflect", "constant", "wrap"])
@pytest.mark.parametrize(("rgb", "shape"), [(False, (3, 40, 50)), (True, (40, 50, 4))])
def test_dask_stays_lazy_and_equals_numpy(mode, rgb, shape):
    image = RNG.random(shape).astype(np.float32)
    lazy = da.from_array(image, chunks=(2, 16, 20, 4)[-len(shape) :])
    for name in ("sobel", "gaussian", "custom"):
        params = {"weights": RNG.random((5, 5))} if name == "custom" else {}
        got = apply_named(lazy, name, mode=mode, cval=1.0, rgb=rgb, **params)
        assert isinstance(got, da.Array) and got.dtype == np.float32
        expected = apply_named(image, name, mode=mode, cval=1.0, rgb=rgb, **params)
        np.testing.assert_allclose(got.compute(), expected, atol=1e-5)


def test_iter_apply_reports_progress_and_returns_the_result():
    stack = RNG.random((3, 8, 8))
    gen = kernels.iter_apply_named(stack, "sobel")
    steps = []
    with pytest.raises(StopIteration) as stop:
        while True:
            steps.append(next(gen))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_allclose(stop.value.value, apply_named(stack, "sobel"))


def test_nan_propagates_locally():
    image = np.zeros((7, 7))
    image[3, 3] = np.nan
    got = apply_named(image, "laplacian8")
    assert np.isnan(got[2:5, 2:5]).all() and np.isnan(got).sum() == 9
    # only non-zero weights carry it: Sobel x has a zero middle column
    assert np.isnan(apply_named(image, "sobel_x")).sum() == 6
    assert kernels.count_nonfinite(image) == 1
    assert kernels.count_nonfinite(np.ones(3, int)) == 0


# -- custom kernels and bad input --------------------------------------------------


def test_custom_kernel_from_text_and_normalised():
    w = kernels.parse_kernel("[[1, 2, 1], [2, 4, 2], [1, 2, 1]]")
    np.testing.assert_array_equal(w, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    [n] = kernels.kernel_weights(
        "custom", weights="1 2 1\n2 4 2\n1,2,1", normalise=True
    )
    np.testing.assert_allclose(n, w / 16)
    assert kernels.parse_kernel("7").shape == (1, 1)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1 2; 3 4", "odd size"),
        ("1 a 1; 1 1 1; 1 1 1", "numbers only"),
        ("", "empty"),
        ("1 2 3; 4 5", "same length"),
        ("1 2 3", "square"),
        ("; ".join([" ".join(["1"] * 17)] * 17), "15x15"),
        ("1 nan 1; 1 1 1; 1 1 1", "NaN"),
    ],
)
def test_bad_custom_kernels_say_what_to_do(text, match):
    with pytest.raises(KernelError, match=match):
        kernels.kernel_weights("custom", weights=text)


def test_normalising_a_zero_sum_kernel_is_refused():
    with pytest.raises(KernelError, match="sum to 0"):
        kernels.kernel_weights("custom", weights="1 0 -1; 2 0 -2; 1 0 -1", normalise=1)


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.zeros((0, 5)), {}, "empty"),
        (np.zeros(5), {}, "2D"),
        (np.array([["a", "b"], ["c", "d"]]), {}, "dtype"),
        (np.zeros((4, 4), complex), {}, "dtype"),
        (np.zeros((4, 4, 2)), {"rgb": True}, "3 or 4"),
        (np.zeros((4, 4)), {"mode": "bogus"}, "border mode"),
    ],
)
def test_bad_images_raise_kernel_error(image, kwargs, match):
    with pytest.raises(KernelError, match=match):
        apply_named(image, "sobel", **kwargs)


def test_bad_names_and_parameters():
    with pytest.raises(KernelError, match="Unknown kernel"):
        kernels.kernel_weights("sobol")
    with pytest.raises(KernelError, match="positive"):
        kernels.kernel_weights("gaussian", sigma=0)
    with pytest.raises(KernelError, match="finite"):
        apply_kernel(np.ones((3, 3)), [[np.inf]])
    assert issubclass(KernelError, ValueError)


# -- classic kernels for learned-filter matching -----------------------------------


def test_classic_kernels_by_size():
    k3 = kernels.classic_kernels(3)
    assert {"sobel_x", "sobel_y", "laplacian4", "gaussian", "box", "identity"} <= set(
        k3
    )
    assert set(kernels.classic_kernels(2)) == {
        "box",
        "identity",
        "roberts_1",
        "roberts_2",
    }
    k5 = kernels.classic_kernels(5)
    assert {"gaussian", "box", "sobel_x", "laplacian_of_gaussian"} <= set(k5)
    for size in (2, 3, 5, 7):
        for w in kernels.classic_kernels(size).values():
            assert w.shape == (size, size)
    np.testing.assert_allclose(k5["gaussian"].sum(), 1)


def test_pad_to_odd_keeps_the_result():
    w = np.array([[1.0, -2.0], [3.0, 0.5]])
    padded = kernels.pad_to_odd(w)
    assert padded.shape == (3, 3)
    np.testing.assert_allclose(apply_kernel(FLOAT, padded), apply_kernel(FLOAT, w))
