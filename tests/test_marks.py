"""Marks that are not digits (points, dashes, '='): real MNIST digits, real engine."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_digits.results import numbers, read_page


@pytest.fixture(scope="module")
def page(mnist_dir):
    """'12.4 =' in dark ink on light paper: MNIST digits, a point, an '='."""
    from napari_digits.data import load_mnist

    m = load_mnist(mnist_dir)
    ink = np.zeros((160, 520))
    col = 30
    for d in (1, 2, None, 4):
        if d is None:  # the point: a round dot on the base line
            yy, xx = np.mgrid[0:160, 0:520]
            ink[(yy - 104) ** 2 + (xx - (col + 8)) ** 2 <= 36] = 1.0
            col += 30
            continue
        digit = m.x_test[np.flatnonzero(m.y_test == d)[0]].astype(float) / 255
        big = np.clip(ndi.zoom(digit, 3, order=1), 0, 1)  # 84 px: digits ~60 px
        ink[20:104, col : col + 84] = np.maximum(ink[20:104, col : col + 84], big)
        col += 70
    ink[55:61, col + 20 : col + 70] = 1.0  # '=': two flat bars
    ink[75:81, col + 20 : col + 70] = 1.0
    return 0.9 - 0.8 * ink


def test_marks_are_rows_of_minus_one_kept_out_of_numbers(page, engine):
    from napari_digits.current_model import shipped_model_path
    from napari_digits.engine.protocol import Predict

    model = str(shipped_model_path())

    def predict(crops):
        return engine.call(Predict(model=model, images=crops))

    _, rows, _ = read_page(page, predict, marks=True, digit_height=60)
    values = [r.value for r in sorted(rows, key=lambda r: r.min_col)]
    assert values == [1, 2, -1, 4, -1]
    marks = [r for r in rows if r.value < 0]
    assert all(r.probability == 1.0 and r.runner_up == -1 for r in marks)
    assert "".join(numbers(rows).values()) == "124"
    _, plain, _ = read_page(
        page, predict, digit_height=60
    )  # without marks: only the digits
    assert sorted(r.value for r in plain) == [1, 2, 4]


def _segment(ink: np.ndarray, a: tuple, b: tuple, width: float) -> None:
    """Draw the segment ``a``-``b`` (row, col) into ``ink``."""
    yy, xx = np.mgrid[0 : ink.shape[0], 0 : ink.shape[1]].astype(float)
    (ay, ax), (by, bx) = a, b
    dy, dx = by - ay, bx - ax
    t = np.clip(((yy - ay) * dy + (xx - ax) * dx) / (dy * dy + dx * dx), 0, 1)
    near = np.hypot(yy - ay - t * dy, xx - ax - t * dx) <= width / 2
    ink[near] = 1.0


def test_a_comma_hanging_below_the_digits_is_a_mark(mnist_dir, engine):
    """'4,02': a comma half a digit tall, from the digits' foot down (cheques
    write them so; one was read as a 1)."""
    from napari_digits.current_model import shipped_model_path
    from napari_digits.data import load_mnist
    from napari_digits.engine.protocol import Predict

    m = load_mnist(mnist_dir)
    ink = np.zeros((180, 420))
    col = 30
    for d in (4, None, 0, 2):
        if d is None:  # the comma: a slanted stroke, 29 px tall, from the foot
            _segment(ink, (95, col + 20), (118, col + 12), 6)
            col += 30
            continue
        digit = m.x_test[np.flatnonzero(m.y_test == d)[0]].astype(float) / 255
        big = np.clip(ndi.zoom(digit, 3, order=1), 0, 1)
        ink[20:104, col : col + 84] = np.maximum(ink[20:104, col : col + 84], big)
        col += 70
    model = str(shipped_model_path())

    def predict(crops):
        return engine.call(Predict(model=model, images=crops))

    _, rows, _ = read_page(0.9 - 0.8 * ink, predict, marks=True, digit_height=60)
    values = [r.value for r in sorted(rows, key=lambda r: r.min_col)]
    assert values == [4, -1, 0, 2]
    assert "".join(numbers(rows).values()) == "402"
