"""The page -> regions -> 28x28 crops pipeline, on real MNIST digits, no Qt."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_digits.scan import (
    ScanError,
    erase_long_runs,
    find_digits,
    normalize_crop,
    split_columns,
    to_gray,
)

SCALE = 3  # MNIST digits pasted at 3x: about 60 px tall, 200 dpi handwriting


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    from napari_digits.data import load_mnist

    return load_mnist(mnist_dir)


def paste(digits, *, step=100, shape=(220, 900), top=60, left=40):
    """Dark digits on light, unevenly lit paper; returns page and positions."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    paper = 0.95 - 0.25 * xx / shape[1] - 0.1 * yy / shape[0]
    ink = np.zeros(shape)
    col = left
    for d in digits:
        big = ndi.zoom(d.astype(float) / 255, SCALE, order=1)
        ink[top : top + big.shape[0], col : col + big.shape[1]] = np.maximum(
            ink[top : top + big.shape[0], col : col + big.shape[1]], big
        )
        col += step
    page = paper * (1 - 0.85 * ink) + rng.normal(0, 0.01, shape)
    return np.clip(page, 0, 1)


def first(mnist, n=8):
    return mnist.x_test[:n]


def corr(a, b):
    return np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1]


def corr_up_to_a_pixel(a, b):
    """Best correlation over shifts of at most one pixel.

    MNIST moved every digit by whole pixels to centre its centre of mass, so
    an original may sit up to half a pixel off centre each way, and so may a
    crop: up to one pixel apart, both correct.
    """
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return max(corr(np.roll(a, s, axis=(0, 1)), b) for s in shifts)


def test_pasted_mnist_digits_come_back_close_to_their_originals(mnist):
    digits = mnist.x_test[:16]
    scans = [find_digits(paste(digits[:8])), find_digits(paste(digits[8:]))]
    assert [len(s) for s in scans] == [8, 8]
    crops = []
    for scan in scans:
        assert scan.crops.shape == (8, 28, 28) and scan.crops.dtype == np.uint8
        order = np.argsort([r.centroid[1] for r in scan.regions])
        crops += [scan.crops[k] for k in order]
    pairs = list(zip(crops, digits, strict=True))
    assert np.mean([corr(c, d) for c, d in pairs]) > 0.9
    assert min(corr_up_to_a_pixel(c, d) for c, d in pairs) > 0.9
    assert all(s.crops.max() == 255 for s in scans)  # ink saturates, like MNIST
    assert scans[0].ink == "dark"


@pytest.mark.parametrize(
    "convert",
    [
        lambda p: (p * 255).astype(np.uint8),
        lambda p: (p * 65535).astype(np.uint16),
        lambda p: p.astype(np.float32),
        lambda p: p * 1000.0 + 20,
        lambda p: np.stack([p * 255] * 3, -1).astype(np.uint8),
        lambda p: np.dstack([p, p, p, np.ones_like(p)]).astype(np.float32),
    ],
    ids=["uint8", "uint16", "float01", "float-any", "rgb", "rgba"],
)
def test_every_dtype_and_colour_layout_gives_the_same_digits(mnist, convert):
    page = paste(first(mnist, 4))
    reference = [r.bbox for r in find_digits(page).regions]
    boxes = [r.bbox for r in find_digits(convert(page)).regions]
    assert len(boxes) == 4
    assert np.abs(np.array(boxes) - np.array(reference)).max() <= 2


def test_light_ink_on_dark_paper_is_detected_and_can_be_overridden(mnist):
    page = 1.0 - paste(first(mnist, 4))
    scan = find_digits(page)
    assert scan.ink == "light" and len(scan) == 4
    wrong = find_digits(page, ink="dark")
    assert wrong.ink == "dark" and len(wrong) != 4


def test_local_threshold_finds_the_same_digits(mnist):
    assert len(find_digits(paste(first(mnist, 5)), method="local")) == 5


def test_blank_page_says_no_digits_found():
    scan = find_digits(np.full((300, 400), 200, np.uint8))
    assert len(scan) == 0 and scan.crops.shape == (0, 28, 28)
    assert "no digits found" in scan.messages


def test_page_of_noise_yields_no_digits():
    noise = np.random.default_rng(1).normal(0.8, 0.05, (600, 600))
    scan = find_digits(noise)
    assert len(scan) == 0 and "no digits found" in scan.messages


def test_stack_is_refused_with_a_clear_message():
    with pytest.raises(ScanError, match="choose one plane"):
        to_gray(np.zeros((3, 50, 50)))


def test_ruled_line_through_digits_is_erased_and_digits_kept(mnist):
    page = paste(first(mnist, 5))
    page[118:122, 10:-10] = 0.1  # a ruled line crossing every digit
    page[:, 2:5] = 0.1  # and a page border
    scan = find_digits(page)
    assert len(scan) == 5
    assert any("ruled lines" in m for m in scan.messages)
    assert max(r.width for r in scan.regions) < 100


def test_specks_and_blobs_are_not_digits(mnist):
    page = paste(first(mnist, 3))
    page[20:23, 600:603] = 0.0  # a speck
    page[60:120, 700:760] = 0.05  # a solid blob of a digit's size
    scan = find_digits(page)
    assert len(scan) == 3
    assert all(r.bbox[1] < 600 for r in scan.regions)


def test_a_solid_upright_bar_is_a_digit(mnist):
    page = paste(first(mnist, 3))
    page[60:120, 700:730] = 0.05  # a 1 of a broad pen, or fattened by a form
    scan = find_digits(page)
    assert len(scan) == 4
    assert any(r.bbox[1] == 700 for r in scan.regions)


def test_broken_digit_is_merged_into_one(mnist):
    seven = mnist.x_test[0]  # a 7
    assert mnist.y_test[0] == 7
    page = paste([seven])
    page[60 + 3 * 12 : 60 + 3 * 12 + 7, :] = np.median(page)  # cut it in two
    assert ndi.label(page < 0.5)[1] >= 2
    scan = find_digits(page, digit_height=60)
    assert len(scan) == 1


def test_touching_digits_are_flagged_and_split(mnist):
    pair = [mnist.x_test[k] for k in (3, 1)]  # a 0 and a 2, written touching
    assert list(mnist.y_test[[3, 1]]) == [0, 2]
    page = paste([mnist.x_test[k] for k in (4, 6, 7)])  # three separate digits
    page = np.minimum(page, paste(pair, step=36, left=500))
    assert ndi.label(page[:, 480:] < 0.5)[1] == 1  # one component
    scan = find_digits(page)
    touching = [r for r in scan.regions if r.touching]
    assert len(scan) == 5 and len(touching) == 2
    assert len(np.unique(scan.labels)) == 6  # background + one label a digit


def test_split_columns_cuts_at_the_ink_minimum():
    mask = np.zeros((10, 30), bool)
    mask[:, 2:12] = mask[:, 16:28] = True
    mask[5, 12:16] = True  # a thin bridge
    (a, b), (c, d) = split_columns(mask, 2)
    assert a == 0 and d == 30 and 12 <= b == c <= 16


def test_erase_long_runs_keeps_short_strokes():
    mask = np.zeros((40, 100), bool)
    mask[20, :] = True
    mask[5:15, 50] = True
    out, erased = erase_long_runs(mask, 30)
    assert erased == 100 and out[5:15, 50].all() and not out[20].any()


def test_normalize_crop_is_mnist_shaped():
    crop = normalize_crop(np.ones((60, 15)))
    rows, _ = np.nonzero(crop)
    assert crop.dtype == np.uint8 and crop.shape == (28, 28)
    assert rows.max() - rows.min() + 1 == 20  # longest side: 20 px
    assert abs(ndi.center_of_mass(crop)[0] - 14) <= 1
    assert abs(ndi.center_of_mass(crop)[1] - 14) <= 1


def test_detached_bar_joins_its_digit_and_far_strays_are_dropped(mnist):
    page = paste(mnist.x_test[[2, 5, 0, 1, 3, 4]])  # starts with a narrow 1
    one = min(find_digits(page).regions, key=lambda r: r.bbox[1])
    r0, _, _, c1 = one.bbox
    page[r0 : r0 + 8, c1 + 4 : c1 + 24] = 0.1  # a bar 4 px right of the first 1
    page[150:158, 700:720] = 0.1  # the same bar far from any digit
    scan = find_digits(page)
    assert len(scan) == 6
    first = min(scan.regions, key=lambda r: r.bbox[1])
    assert first.bbox[3] == c1 + 24  # the bar is part of the digit


@pytest.mark.slow
def test_a_10000_pixel_square_page_fits_in_a_few_gigabytes(mnist):
    import tracemalloc

    tile = (paste(first(mnist)) * 255).astype(np.uint8)  # 220 x 900, 8 digits
    page = np.tile(tile, (46, 12))[:10000, :10000]
    tracemalloc.start()
    try:
        scan = find_digits(page)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(scan) >= 8 * 45 * 11
    assert peak < 3e9, f"peak {peak / 1e9:.1f} GB"


def test_a_digit_written_twice_as_tall_is_kept_a_longer_stroke_is_not():
    from napari_digits.scan import digit_like

    height = 20.0
    boxes = np.array(
        [
            [0, 0, 20, 14],  # a digit
            [0, 20, 42, 44],  # the first digit of an amount, written bigger
            [0, 50, 46, 54],  # a stroke 2.3 digit heights long
            [0, 60, 20, 200],  # a line 7 digit heights wide
        ]
    )
    areas = np.array([120, 400, 150, 300])
    assert digit_like(boxes, areas, height).tolist() == [True, True, False, False]
