"""The training augmentation (pure numpy): real MNIST digits, real fonts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_digits import augment


@pytest.fixture(scope="module")
def digits(mnist_dir):
    from napari_digits.data import load_mnist

    m = load_mnist(mnist_dir)
    return m.x_train[:64], m.y_train[:64]


def test_augment_keeps_shape_dtype_and_is_seeded(digits):
    x, _ = digits
    a = augment.augment_batch(x, np.random.default_rng(1), p=1.0)
    b = augment.augment_batch(x, np.random.default_rng(1), p=1.0)
    assert a.shape == x.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert (a != x).any(axis=(1, 2)).mean() > 0.9  # nearly every image changed
    assert (a.max(axis=(1, 2)) > 200).all()  # no digit lost


def test_probability_zero_returns_the_images(digits):
    x, _ = digits
    np.testing.assert_array_equal(
        augment.augment_batch(x, np.random.default_rng(0), p=0), x
    )


def test_font_digits_render_centred_crops():
    fonts = augment.font_files()
    if not fonts:
        pytest.skip("no DejaVu/Liberation/FreeFont installed")
    images, labels = augment.font_digits(fonts, 50, np.random.default_rng(0))
    assert images.shape == (50, 28, 28) and labels.shape == (50,)
    assert set(labels) <= set(range(10))
    assert (images.max(axis=(1, 2)) == 255).all()
    for image in images:  # the longest side scaled to MNIST's 20 px box
        rows, cols = np.nonzero(image > 30)
        side = max(np.ptp(rows), np.ptp(cols)) + 1
        assert 18 <= side <= 21


@pytest.fixture(scope="module")
def ones_and_sevens(mnist_dir):
    from napari_digits.data import load_mnist

    m = load_mnist(mnist_dir)
    pick = np.concatenate([np.flatnonzero(m.y_train == d)[:30] for d in (1, 7, 0)])
    canvas = np.zeros((len(pick), augment.CANVAS, augment.CANVAS), np.float32)
    o = (augment.CANVAS - 28) // 2
    canvas[:, o : o + 28, o : o + 28] = m.x_train[pick] / 255.0
    return canvas, m.y_train[pick]


def test_continental_ones_sevens_and_zeros_get_their_strokes(ones_and_sevens):
    canvas, labels = ones_and_sevens
    out = augment.continental(canvas, labels, np.random.default_rng(0), p=1.0)
    assert (out >= canvas).all()  # strokes are only added
    added = (out > 0.5) & ~(canvas > 0.5)
    drawn_on_ink = 0
    for before, new, label in zip(canvas, added, labels, strict=True):
        rows = np.flatnonzero((before > 0.5).any(axis=1))
        top, height = rows[0], rows[-1] - rows[0] + 1
        if new.sum() < 8:
            drawn_on_ink += 1  # a broken stem, or a bar along the ink
            continue
        r, c = np.nonzero(new)
        if label == 1:  # the up-stroke leaves the top, down to the left
            first_col = np.flatnonzero((before[top : top + 2] > 0.5).any(axis=0))
            upper = r < top + 0.8 * height
            assert c[upper].min() < first_col.min() - 2 and r.min() <= top + 2
            assert (r[~upper] >= rows[-1] - 3).all()  # a foot, if any, at the base
        elif label == 7:  # the bar crosses the stem around the middle
            assert top + 0.3 * height < np.median(r) < top + 0.8 * height
            assert np.ptp(c) > np.ptp(r)
        else:  # the stroke joining a 0 to its neighbour leaves it sideways
            inside = ndi.binary_fill_holes(before > 0.5)[r, c]
            assert inside.mean() < 0.5 and np.ptp(c) >= np.ptp(r)
    assert drawn_on_ink <= 0.1 * len(canvas)


def test_continental_leaves_other_digits_alone(ones_and_sevens):
    canvas, _ = ones_and_sevens
    others = np.full(len(canvas), 3)
    out = augment.continental(canvas, others, np.random.default_rng(0), p=1.0)
    np.testing.assert_array_equal(out, canvas)
