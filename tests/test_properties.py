"""Property-based tests (Hypothesis) of the kernels and of the scan core.

* Kernels: for any finite image of any shape and numeric dtype, every
  catalogue kernel gives the convolution as scipy.ndimage defines it (per
  plane, per colour channel), as float32, in every border mode; and what
  scipy.ndimage.convolve gives wherever the image is as large as the kernel.
* Scan: for any array, :func:`napari_digits.scan.find_digits` returns boxes
  inside the page and MNIST crops, or raises ScanError, nothing else; and
  :func:`~napari_digits.scan.to_gray` gives finite grey levels in 0..1.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage as ndi

from napari_digits import kernels
from napari_digits.scan import ScanError, find_digits, ink, to_gray
from napari_digits.scan.ink import gaussian_smooth

DTYPES = st.sampled_from(
    [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64, np.bool_]
)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def finite_images(shape, dtype=DTYPES):
    """Arrays of any dtype, with floats bounded so float32 rounding stays small."""
    return dtype.flatmap(
        lambda dt: hnp.arrays(
            dt,
            shape,
            elements=hnp.from_dtype(
                np.dtype(dt),
                **(
                    {"min_value": -1e4, "max_value": 1e4, "allow_nan": False}
                    if np.dtype(dt).kind == "f"
                    else {}
                ),
            ),
        )
    )


KERNEL_NAMES = [k for k in kernels.CATALOGUE if k != "custom"]
PARAMS = {
    "gaussian": st.fixed_dictionaries({"sigma": st.floats(0.2, 6)}),
    "box": st.fixed_dictionaries({"size": st.integers(1, 9)}),
    "unsharp": st.fixed_dictionaries(
        {"radius": st.floats(0.2, 4), "amount": st.floats(0, 5)}
    ),
}


@st.composite
def kernel_cases(draw):
    name = draw(st.sampled_from(KERNEL_NAMES))
    params = draw(PARAMS.get(name, st.just({})))
    mode = draw(st.sampled_from(kernels.MODES))
    return name, params, mode


#: scipy.ndimage's border modes as numpy.pad's
PAD = {
    "reflect": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
    "wrap": "wrap",
    "constant": "constant",
}


def convolve(x: np.ndarray, w: np.ndarray, mode: str) -> np.ndarray:
    """Convolve by definition: pad as scipy's mode says, flip, sum windows.

    scipy.ndimage.convolve itself is the reference where the image is at
    least as large as the kernel; below that its 2D reflect extension differs
    from its own 1D one (and from this definition) by up to 1e-4.
    """
    w = kernels.pad_to_odd(w)  # scipy's centre of an even kernel: index size // 2
    padded = np.pad(x, [(n // 2, n // 2) for n in w.shape], mode=PAD[mode])
    windows = np.lib.stride_tricks.sliding_window_view(padded, w.shape)
    out = np.einsum("ijuv,uv->ij", windows, w[::-1, ::-1])
    if min(x.shape) >= max(w.shape):
        scale = 1e-9 * (1 + np.abs(x).max()) * np.abs(w).sum() + 1e-12
        np.testing.assert_allclose(out, ndi.convolve(x, w, mode=mode), atol=scale)
    return out


def scipy_reference(plane: np.ndarray, weights: list, mode: str) -> np.ndarray:
    x = plane.astype(np.float64)
    out = [convolve(x, w, mode) for w in weights]
    return out[0] if len(out) == 1 else np.hypot(*out)


def tolerance(image: np.ndarray, weights: list) -> float:
    scale = float(np.abs(image.astype(np.float64)).max(initial=0))
    return 1e-5 * scale * max(np.abs(w).sum() for w in weights) + 1e-6


@SETTINGS
@given(
    image=finite_images(
        hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=12)
    ),
    case=kernel_cases(),
)
def test_every_kernel_matches_scipy_on_any_finite_image(image, case):
    name, params, mode = case
    weights = kernels.kernel_weights(name, **params)
    result = kernels.apply_named(image, name, mode=mode, **params)
    assert result.dtype == np.float32 and result.shape == image.shape
    planes = image.reshape(-1, *image.shape[-2:])
    expected = np.stack([scipy_reference(p, weights, mode) for p in planes])
    np.testing.assert_allclose(
        result.reshape(expected.shape),
        expected,
        rtol=1e-5,
        atol=tolerance(image, weights),
    )


@SETTINGS
@given(
    image=finite_images(
        st.tuples(
            st.integers(1, 3),
            st.integers(1, 10),
            st.integers(1, 10),
            st.sampled_from([3, 4]),
        ),
        dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
    ),
    case=kernel_cases(),
)
def test_an_rgb_stack_is_filtered_per_channel_and_plane(image, case):
    name, params, mode = case
    weights = kernels.kernel_weights(name, **params)
    result = kernels.apply_named(image, name, mode=mode, rgb=True, **params)
    for t in range(image.shape[0]):
        for c in range(3):
            np.testing.assert_allclose(
                result[t, ..., c],
                scipy_reference(image[t, ..., c], weights, mode),
                rtol=1e-5,
                atol=tolerance(image, weights),
            )
    if image.shape[-1] == 4:
        np.testing.assert_array_equal(result[..., 3], image[..., 3].astype(np.float32))


@SETTINGS
@given(
    image=finite_images(
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=10)
    ),
    weights=hnp.arrays(
        np.float64,
        st.sampled_from([(1, 1), (3, 3), (5, 5), (2, 3), (3, 1)]),
        elements=st.floats(-10, 10),
    ),
    mode=st.sampled_from(kernels.MODES),
)
def test_any_finite_weights_match_scipy_convolve(image, weights, mode):
    result = kernels.apply_kernel(image, weights, mode=mode)
    expected = scipy_reference(image, [weights], mode)
    np.testing.assert_allclose(
        result, expected, rtol=1e-5, atol=tolerance(image, [weights])
    )


# -- scan ----------------------------------------------------------------------

ANY_VALUES = DTYPES.flatmap(
    lambda dt: hnp.arrays(
        dt,
        hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=48),
        elements=hnp.from_dtype(np.dtype(dt)),  # NaN and inf included for floats
    )
)


@st.composite
def pages(draw):
    """Pages with digit-like blobs on paper, in any dtype, some values odd."""
    h, w = draw(st.integers(8, 96)), draw(st.integers(8, 96))
    page = np.ones((h, w))
    for _ in range(draw(st.integers(0, 6))):
        r, c = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        page[r : r + draw(st.integers(1, 20)), c : c + draw(st.integers(1, 12))] = 0
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32, np.float64]))
    top = draw(st.sampled_from([1, 255, 4095, 65535])) if dtype != np.uint8 else 255
    page = (page * top).astype(dtype)
    if np.dtype(dtype).kind == "f" and draw(st.booleans()):
        page.flat[draw(st.integers(0, page.size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf])
        )
    if draw(st.booleans()):
        page = np.repeat(page[..., None], draw(st.sampled_from([3, 4])), axis=-1)
    return page


def check_scan(image: np.ndarray, **options) -> None:
    try:
        scan = find_digits(image, **options)
    except ScanError:
        return
    h, w = image.shape[:2]
    assert scan.labels.shape == (h, w)
    assert scan.crops.shape == (len(scan.regions), 28, 28)
    assert scan.crops.dtype == np.uint8
    for region in scan.regions:
        r0, c0, r1, c1 = region.bbox
        assert 0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w


@SETTINGS
@given(image=ANY_VALUES, ink=st.sampled_from(["auto", "dark", "light"]))
def test_scan_of_any_array_raises_only_scan_error(image, ink):
    check_scan(image, ink=ink)


@SETTINGS
@given(
    page=pages(),
    method=st.sampled_from(["otsu", "local"]),
    ink=st.sampled_from(["auto", "dark", "light"]),
)
def test_scan_of_a_page_gives_boxes_inside_it(page, method, ink):
    check_scan(page, method=method, ink=ink)


@SETTINGS
@given(image=ANY_VALUES)
@example(image=np.array([[np.inf, 3.40282357e38]]))  # paper past float32's range
def test_to_gray_is_finite_and_within_0_1_or_scan_error(image):
    try:
        gray = to_gray(image)
    except ScanError:
        return
    assert gray.dtype == np.float32 and gray.shape == image.shape[:2]
    assert np.isfinite(gray).all()
    assert gray.min() >= 0 and gray.max() <= 1 + 1e-6


@SETTINGS
@given(
    image=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
        elements=st.floats(0, 1, width=32),
    ),
    sigma=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    truncate=st.sampled_from([2.0, 4.0]),
)
def test_the_page_smoothing_is_scipys_gaussian_bit_for_bit(image, sigma, truncate):
    smooth = gaussian_smooth(image, sigma=sigma, truncate=truncate)
    expected = ndi.gaussian_filter(image, sigma, truncate=truncate, mode="reflect")
    assert smooth.dtype == np.float32
    np.testing.assert_array_equal(smooth, expected)


def test_the_page_smoothing_is_bit_for_bit_on_a_page_taller_than_a_block():
    rng = np.random.default_rng(0)
    page = rng.random((3 * ink.SMOOTH_ROWS + 5, 70), dtype=np.float32)
    np.testing.assert_array_equal(
        gaussian_smooth(page), ndi.gaussian_filter(page, 1.0, truncate=2.0)
    )
