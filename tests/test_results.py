"""Reading order, numbers, the table and its CSV: hand-made regions, no Qt."""

from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import pytest

from napari_digits.results import (
    CSV_HEADER,
    NOT_A_DIGIT,
    DigitRow,
    build_table,
    carry_corrections,
    correct,
    first_digit_law,
    numbers,
    read_csv,
    read_page,
    reading_order,
    score,
    top_two,
    write_csv,
)
from napari_digits.scan import DigitRegion, Scan


def region(label, r, c, h=20, w=12):
    return DigitRegion(label, (r, c, r + h, c + w), (r + h / 2, c + w / 2), h * w)


def skewed_page():
    """Two lines of two numbers ("12 3" and "45 6"), drifting 8 px down."""
    regions = []
    for line, top in enumerate((100, 160)):
        for k, col in enumerate((10, 26, 60)):
            drift = col // 8  # a slight skew: the line goes down to the right
            regions.append(region(line * 3 + k + 1, top + drift, col))
    return regions[::-1]  # order must not matter


def test_reading_order_follows_skewed_lines_and_splits_numbers_by_gap():
    regions = skewed_page()
    orders = reading_order(regions, digit_height=20)
    pairs = zip(regions, orders, strict=True)
    got = {r.label: (o.line, o.position, o.number) for r, o in pairs}
    assert got == {
        1: (1, 1, 1),
        2: (1, 2, 1),
        3: (1, 3, 2),
        4: (2, 1, 3),
        5: (2, 2, 3),
        6: (2, 3, 4),
    }


def test_top_two_gives_prediction_and_runner_up():
    p = np.array([[0.1, 0.7, 0.2] + [0] * 7, [0.05] * 8 + [0.3, 0.3]])
    pred, prob, runner, runner_p = top_two(p)
    assert list(pred) == [1, 8] and list(runner) == [2, 9]
    assert prob[0] == pytest.approx(0.7) and runner_p[1] == pytest.approx(0.3)


def make_scan(regions):
    crops = np.zeros((len(regions), 28, 28), np.uint8)
    return Scan(tuple(regions), crops, np.zeros((300, 200), np.int32), "dark", 20.0)


def table():
    regions = skewed_page()
    probs = np.zeros((6, 10))
    for k, r in enumerate(regions):
        probs[k, r.label] = 0.6  # reads label as its digit, runner-up 0
        probs[k, 0] = 0.4
    return build_table(make_scan(regions), probs, file="page.png")


def test_table_is_in_reading_order_with_numbers():
    rows = table()
    assert [r.digit for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r.prediction for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].runner_up == 0 and rows[0].runner_up_probability == 0.4
    assert numbers(rows) == {1: "12", 2: "3", 3: "45", 4: "6"}
    assert all(r.needs_review() for r in rows)  # 0.6 < 0.8


def test_corrections_are_kept_and_exported(tmp_path):
    rows = correct(table(), 1, 7)
    assert rows[1].corrected == 7 and rows[1].value == 7 and not rows[1].needs_review()
    assert numbers(rows)[1] == "17"
    assert correct(rows, 1, 2)[1].corrected is None  # back to the prediction
    with pytest.raises(ValueError, match=r"0\.\.9"):
        correct(rows, 0, 12)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        correct(rows, 0, -2)
    rows = correct(rows, 3, NOT_A_DIGIT)  # a speck read as a 4
    assert rows[3].corrected == -1 and rows[3].value == -1
    assert numbers(rows) == {1: "17", 2: "3", 3: "5", 4: "6"}  # number 3 was "45"
    path = tmp_path / "out.csv"
    assert write_csv(rows, path) == 6
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    assert tuple(lines[0]) == CSV_HEADER
    assert lines[2][CSV_HEADER.index("corrected")] == "7"
    assert lines[1][CSV_HEADER.index("corrected")] == ""
    assert lines[4][CSV_HEADER.index("corrected")] == "-1"
    back = read_csv(path)
    assert [(r.prediction, r.corrected) for r in back] == [
        (r.prediction, r.corrected) for r in rows
    ]


def test_a_file_that_is_no_table_is_one_error_naming_it(tmp_path):
    path = tmp_path / "t.csv"
    write_csv(table(), path)
    header, first = path.read_text().splitlines()[:2]
    bad = first.split(",")
    bad[CSV_HEADER.index("line")] = "x"
    cases = {
        "line 2: no value in column 'line'": "file,page,digit\np.png,1,0\n",
        "line 3: 'x' in column 'line'": "\n".join([header, first, ",".join(bad), ""]),
        "codec can't decode": b"\x89PNG\r\n\x1a\n\xff\xfe",
    }
    for words, text in cases.items():
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(ValueError, match="no table written by") as raised:
            read_csv(path)
        assert str(path) in str(raised.value) and words in str(raised.value)


def test_a_piece_corrected_to_several_digits(tmp_path):
    """Two touching digits read as one, and a digit missed beside another."""
    rows = correct(table(), 1, "25")  # "12" is "125": the 2 held a 5 too
    assert rows[1].corrected == "25" and rows[1].digits == "25"
    assert numbers(rows)[1] == "125"
    rows = correct(rows, 0, " 01 ")  # leading zeros are digits
    assert rows[0].corrected == "01" and numbers(rows)[1] == "0125"
    assert correct(rows, 2, "3")[2].corrected is None  # one digit: as before
    assert correct(rows, 2, "-")[2].corrected == NOT_A_DIGIT
    assert correct(rows, 2, "")[2].corrected is None
    for bad in ("2a", "1.5", "+3", "٣", "1" * 13):
        with pytest.raises(ValueError, match="several"):
            correct(rows, 2, bad)
    for suffix in (".csv", ".parquet"):
        path = tmp_path / f"out{suffix}"
        write_csv(rows, path)
        back = read_csv(path)
        assert [r.corrected for r in back] == [r.corrected for r in rows]
        assert numbers(back) == numbers(rows)
    # a Parquet table of an older version (corrected as int32) still reads
    import pyarrow as pa
    import pyarrow.parquet as pq

    old = pq.read_table(tmp_path / "out.parquet")
    column = pa.array([-1, None, None, None, 7, None], pa.int32())
    old = old.set_column(CSV_HEADER.index("corrected"), "corrected", column)
    pq.write_table(old, tmp_path / "old.parquet")
    assert [r.corrected for r in read_csv(tmp_path / "old.parquet")] == [
        -1,
        None,
        None,
        None,
        7,
        None,
    ]
    again = [replace(r, min_col=r.min_col + 1, max_col=r.max_col + 1) for r in table()]
    carried, count = carry_corrections(rows, again)
    assert count == 2 and numbers(carried)[1] == "0125"


def test_the_first_digit_law_weighs_only_each_lines_first_digit():
    regions = skewed_page()  # two lines "12 3" and "45 6", in any order
    mark = replace(region(7, 100, 0, h=4, w=4), mark=True)  # a dash before line 1
    regions = [*regions, mark]
    p = np.full((len(regions), 10), 0.3 / 8, np.float32)
    p[:, 9], p[:, 1] = 0.4, 0.3  # an unsure 9-or-1 everywhere...
    p[1, :], p[1, 7] = 0.0, 1.0  # ...but one sure 7 (label 5, in line 2)
    out = first_digit_law(regions, p, reading_order(regions, digit_height=20))
    assert out.dtype == np.float32 and np.allclose(out.sum(axis=1), 1)
    firsts = [k for k, r in enumerate(regions) if r.label in (1, 4)]
    assert [int(out[k].argmax()) for k in firsts] == [1, 1]
    rest = [k for k in range(len(regions)) if k not in firsts]
    np.testing.assert_array_equal(out[rest], p[rest])  # the mark too
    sure = np.zeros((1, 10))
    sure[0, 7] = 1.0  # a sure first digit stays
    orders = reading_order(regions[:1], digit_height=20)
    assert first_digit_law(regions[:1], sure, orders)[0, 7] == 1.0


def test_score_matches_boxes_by_overlap():
    rows = table()
    truth = [
        dict(
            label=r.prediction,
            min_row=r.min_row + 1,
            min_col=r.min_col,
            max_row=r.max_row + 1,
            max_col=r.max_col,
        )
        for r in rows
    ]
    truth[0]["label"] = 9  # one misread
    truth.append(dict(label=1, min_row=0, min_col=0, max_row=5, max_col=5))  # missed
    s = score(rows, truth)
    assert (s.truth, s.found, s.correct, s.extra) == (7, 6, 5, 0)
    assert s.accuracy == pytest.approx(5 / 7)


def test_read_page_does_not_call_the_model_on_a_blank_page():
    def predict(crops):
        raise AssertionError("called")

    _, rows, probs = read_page(np.ones((100, 100)), predict)
    assert rows == [] and probs.shape == (0, 10)


def test_row_defaults():
    row = DigitRow("f", 1, 1, 1, 1, 0, 0, 1, 1, 0.5, 0.5, 3, 0.99, 5, 0.01)
    assert row.value == 3 and row.corrected is None


def test_corrections_survive_reading_the_page_again():
    rows = correct(table(), 2, 9)
    again = [replace(r, min_row=r.min_row + 1, max_row=r.max_row + 1) for r in table()]
    carried, count = carry_corrections(rows, again)
    assert count == 1 and carried[2].corrected == 9
    other_file = [replace(r, file="other.png") for r in again]
    assert carry_corrections(rows, other_file)[1] == 0
