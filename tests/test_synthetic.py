"""Synthetic scanned pages and the shipped sample: seeded, true to their CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_digits.results import DigitRow, score
from napari_digits.scan import find_digits
from napari_digits.synthetic import make_page, read_truth, touching_pair, write_truth

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "scanned_page.jpg"


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    from napari_digits.data import load_mnist

    return load_mnist(mnist_dir)


def small_page(mnist, seed):
    return make_page(
        mnist.x_test, mnist.y_test, shape=(700, 600), digit_height=40, seed=seed
    )


def test_pages_are_seeded(mnist):
    a, b, c = small_page(mnist, 1), small_page(mnist, 1), small_page(mnist, 2)
    assert np.array_equal(a.image, b.image) and a.truth == b.truth
    assert not np.array_equal(a.image, c.image)
    assert a.image.dtype == np.uint8 and a.image.shape == (700, 600, 3)


def test_truth_names_mnist_test_digits_and_every_digit_is_found(mnist, tmp_path):
    page = small_page(mnist, 3)
    assert len(page.truth) > 20
    for row in page.truth:
        assert row["label"] == mnist.y_test[row["mnist_index"]]
    write_truth(page.truth, tmp_path / "t.csv")
    assert read_truth(tmp_path / "t.csv") == page.truth
    scan = find_digits(page.image)
    rows = [as_row(r) for r in scan.regions]
    s = score(rows, page.truth)
    assert s.found == s.truth and s.extra == 0


def as_row(region):
    return DigitRow("", 0, 0, 0, 0, *region.bbox, 0.0, 0.0, 0, 1.0, 0, 0.0)


def test_shipped_sample_is_small_and_matches_its_ground_truth():
    from PIL import Image

    assert SAMPLE.stat().st_size < 2_000_000
    truth = read_truth(SAMPLE.with_suffix(".csv"))
    assert len(truth) >= 200
    image = np.asarray(Image.open(SAMPLE))
    s = score([as_row(r) for r in find_digits(image).regions], truth)
    assert s.found == s.truth and s.extra == 0


def test_sample_menu_entry_gives_the_page_with_its_truth():
    from napari_digits.sample_data import scanned_page

    [(data, meta, kind)] = scanned_page()
    assert kind == "image" and meta["rgb"] and data.shape == (1754, 1240, 3)
    assert Path(meta["metadata"]["truth"]).exists()


def test_a_touching_pair_is_one_component_holding_both_digits(mnist):
    from scipy import ndimage as ndi

    a, b = mnist.x_test[0], mnist.x_test[1]
    ink = touching_pair(a, b)
    assert ndi.label(ink > 0.5, structure=np.ones((3, 3)))[1] == 1
    big = [ndi.zoom(d / 255, 3, order=1) for d in (a, b)]
    widths = [np.ptp(np.flatnonzero(d.max(axis=0) > 0.3)) + 1 for d in big]
    inked = np.ptp(np.flatnonzero(ink.max(axis=0) > 0.3)) + 1
    assert max(widths) < inked <= sum(widths)  # side by side, touching
    assert ink.sum() >= 0.9 * sum(np.clip(d, 0, 1).sum() for d in big)
    with pytest.raises(ValueError, match="without ink"):
        touching_pair(a, np.zeros_like(b))


def test_field_lines_are_seeded_and_hold_their_digits(mnist):
    from napari_digits.scan.fields import FIELD_HEIGHT, FIELD_WIDTH
    from napari_digits.synthetic_fields import MAX_DIGITS, digit_pool, make_fields

    rng = np.random.default_rng(0)
    pool, classes = digit_pool(mnist.x_train[:300], mnist.y_train[:300], rng)
    assert len(pool) > 250 and all(p.dtype == np.float32 for p in pool)
    images, digits, lengths = make_fields(pool, classes, 40, seed=1)
    again = make_fields(pool, classes, 40, seed=1)
    assert np.array_equal(images, again[0]) and np.array_equal(digits, again[1])
    assert images.shape == (40, FIELD_HEIGHT, FIELD_WIDTH) and images.dtype == np.uint8
    assert 1 <= lengths.min() and lengths.max() <= MAX_DIGITS
    for line, n in zip(digits, lengths, strict=True):
        assert (
            (line[:n] >= 0).all() and (line[:n] <= 9).all() and (line[n:] == -1).all()
        )
    inked = images.max(axis=1) > 0  # each line's ink fills the reader's height
    assert all(row.any() for row in inked)
    assert (images.max(axis=(1, 2)) > 200).all()
    assert not np.array_equal(images, make_fields(pool, classes, 40, seed=2)[0])


def test_varied_lines_keep_both_ends_of_their_ink_and_change_their_shape():
    from scipy import ndimage as ndi

    from napari_digits.scan.fields import FIELD_HEIGHT, FIELD_MARGIN, FIELD_WIDTH
    from napari_digits.synthetic_fields import vary_lines

    # a bar at each end of a line as wide as the field: neither may be lost
    lines = np.zeros((60, FIELD_HEIGHT, FIELD_WIDTH), np.uint8)
    left, right = FIELD_MARGIN, FIELD_WIDTH - FIELD_MARGIN - 3
    lines[:, 4:28, left : left + 3] = 255
    lines[:30, 4:28, right : right + 3] = 255
    lines[30:, 4:28, left + 126 : left + 129] = 255  # and a shorter line
    varied = vary_lines(lines, np.random.default_rng(0))
    again = vary_lines(lines, np.random.default_rng(0))
    assert varied.shape == lines.shape and varied.dtype == np.uint8
    assert np.array_equal(varied, again)
    for line in varied:
        assert ndi.label(line > 100)[1] == 2
    spans = [np.ptp(np.flatnonzero(v.max(axis=0) > 100)) for v in varied[30:]]
    assert min(spans) < 0.9 * 126 and max(spans) > 1.1 * 126  # narrower, wider
    slants = [np.argmax(v[6] > 100) - np.argmax(v[26] > 100) for v in varied]
    assert min(slants) < -3 and max(slants) > 3
    assert not vary_lines(np.zeros_like(lines[:2]), np.random.default_rng(1)).any()
