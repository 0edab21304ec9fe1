"""Short lines read whole by the field reader (napari_digits.scan.fields).

The rules are checked with a stand-in reader whose readings the test
chooses; the real field reader, in the real engine, is checked at the end.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_digits.scan import find_digits
from napari_digits.scan.fields import (
    BLANK,
    FIELD_HEIGHT,
    FIELD_WIDTH,
    FRAME,
    FRAMES,
    READ_MORE_LIKELY,
    decode,
    field_image,
    sequence_log_probability,
)


def line_of(blobs: int, *, gap: int = 30) -> np.ndarray:
    """Dark blocks 60 px tall and 36 wide, ``gap`` apart, on light paper."""
    page = np.full((160, 60 + blobs * (36 + gap)), 0.9, np.float32)
    for k in range(blobs):
        c = 40 + k * (36 + gap)
        page[50:110, c : c + 36] = 0.1
        page[62:98, c + 10 : c + 26] = 0.9  # a hole: a 0-like ring
    return page


class Reader:
    """A stand-in for the engine's Predict: crops and lines, readings chosen.

    Crops read as ``digit`` at ``sure``; a line reads as ``text``, each digit
    at ``confident``, spread evenly over the line's ink (a digit marked in
    the first frame of its share, as the real reader marks them), the blank
    the rest of that frame; with ``hedge``, that frame gives ``digit`` that
    probability too (a reader unsure between its reading and the classifier's).
    """

    def __init__(self, text: str, confident=0.9, digit=0, sure=0.6, hedge=0.0):
        self.text, self.confident, self.digit, self.sure = text, confident, digit, sure
        self.hedge = hedge
        self.lines = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if images.shape[1:] == (28, 28):
            p = np.full((len(images), 10), (1 - self.sure) / 9, np.float32)
            p[:, self.digit] = self.sure
            return p
        assert images.shape[1:] == (FIELD_HEIGHT, FIELD_WIDTH)
        self.lines += len(images)
        out = np.full((len(images), FRAMES, BLANK + 1), 0.001, np.float32)
        out[:, :, BLANK] = 0.99
        for i, image in enumerate(images):
            inked = np.flatnonzero(image.max(axis=0) > 0)
            first, last = inked[0] // FRAME, inked[-1] // FRAME
            share = (last - first + 1) / len(self.text)
            for j, d in enumerate(self.text):
                t = int(first + j * share + 0.2 * share)
                if self.hedge:
                    out[i, t, self.digit] = self.hedge
                out[i, t, BLANK] = max(1 - self.confident - self.hedge, 0.001)
                out[i, t, int(d)] = self.confident
        return out


def frames_of(reader: Reader, page: np.ndarray) -> np.ndarray:
    """The stand-in reader's ``(FRAMES, 11)`` frames for a page holding one line."""
    return reader(np.stack([field_image(1 - page)[0]]))[0]


def odds(frames: np.ndarray, read: list[int], other: list[int]) -> float:
    """How much likelier (log) the reader finds ``read`` than ``other``."""
    return sequence_log_probability(frames, read) - sequence_log_probability(
        frames, other
    )


def read(page, reader, **options):
    scan = find_digits(page, classify=reader, fields=True, digit_height=60, **options)
    ordered = sorted(range(len(scan)), key=lambda k: scan.regions[k].bbox[1])
    values = [int(scan.probabilities[k].argmax()) for k in ordered]
    return scan, values


def test_field_image_scales_the_ink_to_the_reader_input():
    ink = np.zeros((100, 400), np.float32)
    ink[20:80, 50:110] = 1.0
    image, left, scale = field_image(ink)
    assert image.shape == (FIELD_HEIGHT, FIELD_WIDTH) and image.dtype == np.uint8
    assert left == 50 and scale == pytest.approx(28 / 60)
    rows = np.flatnonzero(image.max(axis=1))
    assert rows[-1] - rows[0] + 1 == 28
    long = np.zeros((10, 1000), np.float32)
    long[:, :] = 1  # too long for the height: scaled to the width
    image, _, scale = field_image(long)
    assert np.flatnonzero(image.max(axis=0))[-1] == FIELD_WIDTH - 3
    assert field_image(np.zeros((5, 5)))[0].max() == 0


def test_decode_counts_runs_once_and_blanks_separate_repeats():
    f = np.full((8, 11), 0.01)
    f[:, BLANK] = 0.9
    for t, d in ((1, 0), (2, 0), (4, 0), (6, 5)):
        f[t, BLANK], f[t, d] = 0.01, 0.95
    assert decode(f) == [(0, 0.95, 1), (0, 0.95, 4), (5, 0.95, 6)]
    assert decode(np.eye(11)[[BLANK] * 5]) == []


def test_as_many_digits_read_whole_multiply_with_the_classifier():
    scan, values = read(line_of(3), Reader("777"))  # classifier: 0 at 0.6
    assert values == [7, 7, 7]
    assert any("read 1 short lines whole" in m for m in scan.messages)
    reader = np.full(10, 0.001) / 0.909 + 1e-4  # its frame: 7 at 0.9
    reader[7] = 0.9 / 0.909 + 1e-4
    classifier = np.full(10, 0.4 / 9)
    classifier[0] = 0.6
    product = classifier * reader
    assert scan.probabilities[0] == pytest.approx(product / product.sum(), abs=1e-5)


def test_a_reading_with_more_digits_cuts_the_line_again():
    page = line_of(3, gap=0)  # three rings that touch: one component
    scan, values = read(page, Reader("4444"))
    assert values == [4, 4, 4, 4]
    labels = [r.label for r in scan.regions]
    assert len(set(labels)) == 4
    for region in scan.regions:  # each new digit is in the label image
        r0, c0, r1, c1 = region.bbox
        assert (scan.labels[r0:r1, c0:c1] == region.label).any()
    assert scan.crops.shape == (4, 28, 28)
    ink = (page < 0.5).sum()
    assert (scan.labels > 0).sum() == pytest.approx(ink, rel=0.05)  # nothing lost


def test_a_sure_classifier_keeps_its_reading_against_a_less_sure_reader():
    scan, values = read(line_of(3), Reader("777", sure=0.995))  # reader: 0.99
    assert values == [0, 0, 0]
    assert not any("field reader" in m for m in scan.messages)
    # ... unless the field reader finds another count of digits
    assert read(line_of(3, gap=0), Reader("4444", sure=0.995))[1] == [4] * 4


def test_another_count_of_digits_wins_only_where_the_reader_finds_it_far_likelier():
    # the cuts read "00"; the reader reads "4444" but finds "00" likelier
    unsure = Reader("4444", confident=0.4, hedge=0.3)
    assert odds(frames_of(unsure, line_of(3, gap=0)), [0, 0], [4] * 4) > 0
    cut = read(line_of(3, gap=0), unsure)[1]
    assert cut == [0, 0]
    # far likelier ("00" about e ** 10 times less likely): the reader wins
    sure = Reader("4444", confident=0.9, hedge=0.05)
    assert read(line_of(3, gap=0), sure)[1] == [4] * 4
    # likelier, but not e ** READ_MORE_LIKELY times: the cuts stay
    likelier = odds(frames_of(sure, line_of(3, gap=0)), [4] * 4, [0, 0])
    assert likelier > READ_MORE_LIKELY
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("napari_digits.scan.fields.READ_MORE_LIKELY", likelier + 0.1)
        assert read(line_of(3, gap=0), sure)[1] == [0, 0]


def test_a_digit_read_once_or_twice_is_left_to_the_classifier_on_the_pieces():
    # the cuts read "00"; the reader "000", no likelier: one blank frame apart
    reader = Reader("000", confident=0.5)
    assert (
        odds(frames_of(reader, line_of(3, gap=0)), [0] * 3, [0, 0]) < READ_MORE_LIKELY
    )
    # the line is cut in three, each piece read as a 0 at 0.6: the reader wins
    assert read(line_of(3, gap=0), reader)[1] == [0] * 3
    # ... and not where the classifier reads the pieces as a 0 at under PIECE_SURE
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("napari_digits.scan.fields.PIECE_SURE", 0.65)
        assert read(line_of(3, gap=0), reader)[1] == [0, 0]


def test_sequence_probability_sums_every_path_of_the_reading():
    rng = np.random.default_rng(0)
    frames = rng.dirichlet(np.full(BLANK + 1, 0.5), size=4)
    totals: dict[tuple, float] = {}
    for path in itertools.product(range(BLANK + 1), repeat=len(frames)):
        read = tuple(d for d, _ in itertools.groupby(path) if d != BLANK)
        p = np.prod(frames[np.arange(len(frames)), path])
        totals[read] = totals.get(read, 0.0) + p
    assert sum(totals.values()) == pytest.approx(1.0)
    for reading in [(), (3,), (3, 3), (1, 2, 1), (5, 5, 5), (0, 1, 2, 3)]:
        got = np.exp(sequence_log_probability(frames, list(reading)))
        assert got == pytest.approx(totals.get(reading, 0.0), rel=1e-9, abs=1e-300)
    assert np.exp(sequence_log_probability(frames, [1, 2, 3, 4, 5])) < 1e-12


def test_lines_too_long_for_the_reader_are_not_read_whole():
    reader = Reader("7" * 12)
    _, values = read(line_of(12, gap=40), reader)
    assert values == [0] * 12 and reader.lines == 0
    reader = Reader("7")
    read(line_of(1), reader)
    assert reader.lines == 1


def test_the_scan_keeps_each_short_line_as_the_reader_saw_it():
    scan, _ = read(line_of(3, gap=0), Reader("4444"))  # cut again into four
    [(labels, image)] = scan.lines
    left_to_right = sorted(scan.regions, key=lambda r: r.bbox[1])
    assert list(labels) == [r.label for r in left_to_right] and len(labels) == 4
    assert image.shape == (FIELD_HEIGHT, FIELD_WIDTH) and image.dtype == np.uint8
    inked = np.flatnonzero(image.max(axis=0) > 0)
    assert inked[0] == 2  # the whole line, scaled to 28 rows of 60
    assert inked[-1] - inked[0] + 1 == pytest.approx(3 * 36 * 28 / 60, abs=2)
    scan, _ = read(line_of(12, gap=40), Reader("7" * 12))
    assert scan.lines == ()  # too long for the reader


def test_without_fields_the_scan_holds_no_probabilities():
    scan = find_digits(line_of(2), classify=Reader("77"), digit_height=60)
    assert scan.probabilities is None


def test_a_classifier_that_cannot_read_lines_is_told_so():
    def crops_only(images):
        return np.full((len(images), 10), 0.1, np.float32)

    with pytest.raises(ValueError, match="fields=False"):
        find_digits(line_of(2), classify=crops_only, fields=True, digit_height=60)


def test_the_field_reader_reads_touching_pairs_that_the_cuts_miss(mnist_dir, engine):
    """Page 6 of the touching-pairs benchmark's pairs (bench/bench_real.py):
    cut digit by digit, a "43" reads as an 8 and a "41" as a 4; over the
    benchmark's 200 pairs the field reader takes 73.5% to 90.0%."""
    from napari_digits.current_model import shipped_model_path
    from napari_digits.data import load_mnist
    from napari_digits.engine.protocol import Predict
    from napari_digits.results import read_page
    from napari_digits.synthetic import one_a_line, touching_pair

    mnist = load_mnist(mnist_dir)
    model = str(shipped_model_path())

    def predict(crops):
        return engine.call(Predict(model=model, images=crops))

    order = np.random.default_rng(0).permutation(len(mnist.y_test))[:400]
    x, y = mnist.x_test, mnist.y_test
    chosen = order.reshape(-1, 2)[50:60]
    ink, _ = one_a_line(
        [touching_pair(x[a], x[b]) for a, b in chosen], gap=40, margin=60
    )
    truth = [[int(y[a]), int(y[b])] for a, b in chosen]
    assert truth[1] == [4, 3] and truth[8] == [4, 1]
    read = {}
    for fields in (False, True):
        _, rows, _ = read_page(0.9 - 0.8 * ink, predict, fields=fields)
        lines: dict[int, list[int]] = {}
        for r in sorted(rows, key=lambda r: r.min_col):
            lines.setdefault(r.line, []).append(r.prediction)
        read[fields] = [lines[k] for k in sorted(lines)]
    assert read[False][1] == [8] and read[False][8] == [4]
    assert read[True][1] == [4, 3] and read[True][8] == [4, 1]
    right = {f: sum(a == b for a, b in zip(read[f], truth, strict=False)) for f in read}
    assert right[True] >= right[False] + 1  # (its "77" reads as "717" there)


def test_a_flag_read_as_a_1_of_its_own_joins_its_stem():
    from napari_digits.scan import DigitRegion
    from napari_digits.scan.fields import join_flags

    labels = np.zeros((100, 200), np.int32)
    labels[20:80, 100:108] = 2  # the stem
    for r in range(20, 50):  # the flag, down to the left from the stem's top
        labels[r, 100 - (r - 20) : 106 - (r - 20)] = 1
    labels[20:80, 140:148] = 3  # a 1 beside it, as tall as the stem
    labels[20:80, 148:156] = 4  # ... and another, touching it
    strength = (labels > 0).astype(np.float32)

    def region(label):
        rows, cols = np.nonzero(labels == label)
        box = (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
        centre = (rows.mean(), cols.mean())
        return DigitRegion(label, box, centre, rows.size, touching=True)

    regions = [region(k) for k in (1, 2, 3, 4)]
    crops = np.zeros((4, 28, 28), np.uint8)
    ones = np.tile(np.eye(10, dtype=np.float32)[1] * 0.9 + 0.01, (4, 1))
    out, crops, probs, joined = join_flags(regions, crops, ones, (labels, strength), 1)
    assert joined == 1 and len(out) == 3 and crops.shape == (3, 28, 28)
    assert out[0].bbox == (20, 71, 80, 108)  # flag and stem: one 1
    assert set(np.unique(labels)) == {0, 1, 3, 4}
    assert [r.label for r in out[1:]] == [3, 4]  # two 1s as tall: two digits
    assert probs.argmax(axis=1).tolist() == [1, 1, 1]
