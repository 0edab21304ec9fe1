"""What is drawn over a read page: boxes as segments, readings as glyphs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from napari_digits import annotations as a
from napari_digits.results import DigitRow

ROW = DigitRow("", 1, 1, 1, 1, 40, 10, 60, 22, 50.0, 16.0, 7, 0.99, 1, 0.01)


def test_a_box_is_four_segments_around_its_pixels():
    segments = a.box_segments([ROW])
    assert segments.shape == (4, 2, 2)
    starts, ends = segments[:, 0], segments[:, 0] + segments[:, 1]
    corners = {(39.5, 9.5), (39.5, 21.5), (59.5, 21.5), (59.5, 9.5)}
    assert {tuple(p) for p in starts} == corners == {tuple(p) for p in ends}
    assert a.box_segments([]).shape == (0, 2, 2)


def test_status_codes_and_colours():
    rows = [ROW, replace(ROW, probability=0.5), replace(ROW, corrected=3)]
    codes = a.status(rows, 0.8)
    assert list(codes) == [a.OK, a.REVIEW, a.CORRECTED]
    colours = a.segment_colours(codes, highlight=1)
    assert colours.shape == (12, 4)
    assert (colours[:4, :3] == (0, 1, 0)).all()  # lime
    assert (colours[4:8] == 1).all()  # the highlighted box is white
    assert (colours[8:, :3] == (0, 1, 1)).all()  # cyan


def test_a_reading_is_written_above_its_box_and_rewritten():
    scale = 2.0
    image = a.readings_image([ROW], np.array([a.REVIEW]), (100, 60), scale)
    assert image.shape == (50, 30) and image.dtype == np.uint8
    rows, cols = np.nonzero(image)
    assert rows.max() < ROW.min_row / scale and cols.min() >= ROW.min_col // scale
    assert set(np.unique(image)) == {0, a.REVIEW}
    assert (image != 0).sum() == a.glyphs()["7"].sum()
    a.write_reading(image, replace(ROW, corrected=1), a.CORRECTED, scale)
    assert set(np.unique(image)) == {0, a.CORRECTED}
    assert (image != 0).sum() == a.glyphs()["1"].sum()


def test_a_piece_of_several_digits_shows_them_all_and_is_erased_whole():
    image = np.zeros((50, 40), np.uint8)
    several = replace(ROW, corrected="65")
    a.write_reading(image, several, a.CORRECTED, 2.0)
    assert (image != 0).sum() == a.glyphs()["6"].sum() + a.glyphs()["5"].sum()
    a.write_reading(image, ROW, a.OK, 2.0, before=several.digits)  # undone
    assert (image != 0).sum() == a.glyphs()["7"].sum()


def test_a_reading_at_the_top_edge_is_clipped_not_lost():
    top = replace(ROW, min_row=2, max_row=20)
    image = a.readings_image([top], np.array([a.OK]), (40, 40), 1.0)
    assert image.any()
    a.write_reading(image, replace(top, corrected=1), a.CORRECTED, 1.0)
    assert (image != 0).sum() == a.glyphs()["1"].sum()  # the 7 erased whole


def test_readings_scale_with_the_digits():
    assert a.readings_scale(10) == 1.0
    h = a.glyph_cell()[0]
    for height in (64, 200):
        assert abs(h * a.readings_scale(height) / height - a.READING_HEIGHT) < 0.1


def test_pyramid_levels_are_views():
    image = np.zeros((5000, 3000), np.uint16)
    levels = a.pyramid(image)
    assert [lvl.shape for lvl in levels] == [
        (5000, 3000),
        (2500, 1500),
        (1250, 750),
        (625, 375),
    ]
    assert all(np.shares_memory(lvl, image) for lvl in levels)
    assert len(a.pyramid(np.zeros((50, 50)))) == 1


def test_text_is_written_glyph_after_glyph_and_clipped():
    image = np.zeros((20, 100), np.uint8)
    a.write_text(image, "3>5 87%", 16, 2, 4)
    masks = a.glyphs()
    assert (image == 4).sum() == sum(masks[c].sum() for c in "3>5 87%")
    assert np.nonzero(image)[1].max() < 2 + a.text_width("3>5 87%")
    clipped = np.zeros((5, 5), np.uint8)
    a.write_text(clipped, "88", 3, -2, 1)  # off the top and left: no error
    assert clipped.any()


def test_boxes_are_outlined_and_labelled_by_their_number():
    boxes = np.array([[10, 0, 20, 10], [10, 12, 20, 22]])
    image = a.box_labels(boxes, ["7", "12"], (21, 24), 2)
    assert image.shape == (42, 48) and image.dtype == np.uint16
    assert (image[19, 24:44] == 2).all()  # above box 1, outside it
    assert not image[20:40, 0:20].any() and not image[20:40, 24:44].any()
    assert (image[:19] == 1).sum() == a.glyphs()["7"].sum()
    assert (image[:19] == 2).sum() == a.glyphs()["1"].sum() + a.glyphs()["2"].sum()


def test_cell_texts_are_centred_with_their_codes():
    texts = np.array([["1135", "0"], ["7", "42"]])
    image = a.cell_texts(texts, 48, np.array([[2, 1], [1, 1]]))
    assert image.shape == (96, 96)
    cell = image[:48, :48]
    assert (cell == 2).sum() == sum(a.glyphs()[d].sum() for d in "1135")
    rows, cols = np.nonzero(cell)
    assert abs((cols.min() + cols.max()) / 2 - 24) <= 1
    assert abs((rows.min() + rows.max()) / 2 - 24) <= 1
    assert set(np.unique(image[48:, 48:])) == {0, 1}
