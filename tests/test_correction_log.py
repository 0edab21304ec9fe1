"""Corrections kept on disk per page (pure: no Qt, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_digits import correction_log
from napari_digits.results import NOT_A_DIGIT, correct, read_csv
from test_results import table


def test_the_key_names_the_pixels_not_the_array():
    page = np.random.default_rng(0).integers(0, 255, (300, 200), np.uint8)
    key = correction_log.page_key(page)
    assert correction_log.page_key(page.copy()) == key
    assert correction_log.page_key(np.asfortranarray(page)) == key
    changed = page.copy()
    changed[150, 100] ^= 1
    assert correction_log.page_key(changed) != key
    assert correction_log.page_key(page.astype(np.uint16)) != key
    assert correction_log.page_key(page.reshape(200, 300)) != key


def test_corrections_come_back_for_the_same_pixels_under_another_name(tmp_path):
    rows = correct(correct(table(), 2, 9), 4, NOT_A_DIGIT)
    assert correction_log.save(rows, "k", tmp_path) == 2
    kept = read_csv(correction_log.path_of("k", tmp_path))
    assert [(r.digit, r.corrected) for r in kept] == [
        (rows[2].digit, 9),
        (rows[4].digit, NOT_A_DIGIT),
    ]
    back = correction_log.load("k", "scan-copy.png", tmp_path)
    assert [r.corrected for r in back] == [9, NOT_A_DIGIT]
    assert {r.file for r in back} == {"scan-copy.png"}
    assert correction_log.load("other", "page.png", tmp_path) == []


def test_undoing_every_correction_removes_the_file(tmp_path):
    rows = correct(table(), 2, "65")
    correction_log.save(rows, "k", tmp_path)
    assert correction_log.load("k", "page.png", tmp_path)[0].corrected == "65"
    assert correction_log.save(correct(rows, 2, None), "k", tmp_path) == 0
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_file_is_a_value_error_naming_it(tmp_path):
    path = correction_log.path_of("k", tmp_path)
    path.write_bytes(b"min_row,corrected\nnot a number,\x00\xff\n")
    with pytest.raises(ValueError, match=r"corrections kept in .*k\.csv"):
        correction_log.load("k", "page.png", tmp_path)


def test_a_folder_that_cannot_be_made_is_an_os_error(tmp_path):
    blocked = tmp_path / "a file"
    blocked.write_text("")
    with pytest.raises(OSError):
        correction_log.save(correct(table(), 2, 9), "k", blocked)
