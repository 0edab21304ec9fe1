"""The training augmentation (pure numpy): real MNIST digits, real fonts."""

from __future__ import annotations

import numpy as np
import pytest

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
