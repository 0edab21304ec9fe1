"""The "Read digits" widget in a real viewer, classifying in the real engine."""

from __future__ import annotations

import csv
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_digits import annotations, correction_log
from napari_digits._widgets import scan as widget_module
from napari_digits._widgets._digits_table import CORRECTED, HEADERS
from napari_digits._widgets.scan import (
    BOXES_LAYER,
    LABELS_LAYER,
    READINGS_LAYER,
    ScanWidget,
)
from napari_digits.current_model import current_model
from napari_digits.results import CSV_HEADER, NOT_A_DIGIT, numbers, read_csv, score
from napari_digits.synthetic import read_truth

WAIT = 180_000  # ms: the first request starts the engine (TensorFlow import)


@pytest.fixture
def messages(monkeypatch):
    """Collect the widget's notifications instead of showing them."""
    said: list[tuple[str, str]] = []
    for kind in ("show_error", "show_warning", "show_info"):
        monkeypatch.setattr(
            widget_module, kind, lambda msg, kind=kind: said.append((kind, msg))
        )
    return said


@pytest.fixture
def viewer_and_widget(make_napari_viewer, engine, messages):
    viewer = make_napari_viewer()
    return viewer, ScanWidget(viewer)


def run(widget, qtbot, layer):
    widget.layer.value = layer
    worker = widget.start()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=5000)
    qtbot.waitUntil(lambda: widget.layers_ready, timeout=5000)
    return worker


def cell(widget, row: int, header: str):
    return widget.model.index(row, HEADERS.index(header))


def box_colours(viewer, index: int) -> np.ndarray:
    return viewer.layers[BOXES_LAYER].edge_color[4 * index : 4 * index + 4]


def test_reads_the_sample_page_into_layers_table_and_csv(
    viewer_and_widget, qtbot, tmp_path, messages
):
    viewer, widget = viewer_and_widget
    [page] = viewer.open_sample("napari-digits", "scanned_page")
    truth = read_truth(page.metadata["truth"])
    run(widget, qtbot, page)

    rows = widget.rows
    assert score(rows, truth).accuracy >= 0.98
    labels, boxes = viewer.layers[LABELS_LAYER], viewer.layers[BOXES_LAYER]
    assert labels.multiscale and labels.data[0].shape == page.data.shape[:2]  # 2 levels
    assert len(np.unique(labels.data[0])) - 1 == len(rows) == len(truth)
    assert len(boxes.data) == 4 * len(rows)  # four sides a box
    assert list(labels.features["read"]) == [r.value for r in rows]
    assert widget.model.rowCount() == len(rows)
    assert widget.status.value.startswith(f"{len(rows)} digits")
    assert viewer.layers.selection.active is labels  # hovering shows the reading

    # sort by probability, then correct a digit in the table itself
    widget.table.sortByColumn(HEADERS.index("p"), Qt.AscendingOrder)
    first = cell(widget, 0, "#").data(Qt.UserRole)
    assert rows[first].probability == min(r.probability for r in rows)
    wrong = (rows[first].prediction + 1) % 10
    widget.model.setData(cell(widget, 0, "fix"), str(wrong))
    assert widget.rows[first].corrected == wrong
    assert cell(widget, 0, "read").data() == wrong
    assert labels.features["read"][first] == wrong
    assert (box_colours(viewer, first)[:, :3] == (0, 1, 1)).all()  # cyan: corrected
    other = cell(widget, 1, "#").data(Qt.UserRole)
    widget.model.setData(cell(widget, 1, "fix"), "-")  # not a digit
    assert widget.rows[other].corrected == -1 and cell(widget, 1, "read").data() == -1
    assert labels.features["read"][other] == -1
    widget.model.setData(cell(widget, 1, "fix"), "")  # undone
    assert widget.rows[other].corrected is None
    # a piece holding two digits (or a digit missed beside it): both typed
    inked = np.count_nonzero(widget.reading.readings)
    number = widget.rows[other].number
    before = numbers(widget.rows)[number]
    widget.model.setData(cell(widget, 1, "fix"), "65")
    assert widget.rows[other].corrected == "65"
    assert cell(widget, 1, "read").data() == "65"
    assert labels.features["read"][other] == "65"
    assert len(numbers(widget.rows)[number]) == len(before) + 1
    assert np.count_nonzero(widget.reading.readings) > inked  # two glyphs now
    widget.model.setData(cell(widget, 1, "fix"), "")
    assert numbers(widget.rows)[number] == before

    out = tmp_path / "digits.csv"
    assert widget.export_csv(str(out)) == len(rows)
    with open(out, newline="") as f:
        assert tuple(next(csv.reader(f))) == CSV_HEADER
    exported = read_csv(out)
    assert [r.corrected for r in exported].count(wrong) == 1
    assert exported[first].corrected == wrong
    assert exported[0].file.endswith("scanned_page.jpg")
    undone = [*exported[:first], *exported[first + 1 :]]
    assert score(undone, truth).correct >= 0.98 * len(truth) - 1

    run(widget, qtbot, page)  # reading the page again keeps the correction
    assert widget.rows[first].corrected == wrong
    assert [layer.name for layer in viewer.layers] == [
        page.name,
        LABELS_LAYER,
        READINGS_LAYER,
        BOXES_LAYER,
    ]
    assert viewer.layers[BOXES_LAYER] is boxes  # updated in place


def test_each_reading_is_written_over_its_box_and_follows_corrections(
    viewer_and_widget, qtbot
):
    viewer, widget = viewer_and_widget
    [page] = viewer.open_sample("napari-digits", "scanned_page")
    run(widget, qtbot, page)
    reading = widget.reading
    layer = viewer.layers[READINGS_LAYER]
    assert layer.data[0] is reading.readings or np.shares_memory(
        layer.data[0], reading.readings
    )
    scale = reading.readings_scale

    def glyph(index):  # the texels just above the box
        row = widget.rows[index]
        bottom, left = int(row.min_row / scale) - 1, int(row.min_col / scale)
        h, w = annotations.glyph_cell()
        return reading.readings[max(bottom - h, 0) : bottom, left : left + w]

    for k in range(0, len(widget.rows), 17):
        expected = annotations.glyphs()[str(widget.rows[k].value)]
        area = glyph(k)
        assert set(np.unique(area)) - {0} == {reading.codes[k]}
        assert (area != 0).sum() == expected.sum()
    # glyph height scales with the page's digits: about half a digit tall
    height = annotations.glyph_cell()[0] * scale
    assert 0.3 < height / reading.scan.digit_height < 0.7

    k = 3
    new = (widget.rows[k].value + 4) % 10
    widget.correct(k, new)
    area = glyph(k)
    assert set(np.unique(area)) - {0} == {annotations.CORRECTED}
    assert (area != 0).sum() == annotations.glyphs()[str(new)].sum()


def test_a_new_page_clears_the_crop_and_corrections_update_the_count(
    viewer_and_widget, qtbot
):
    viewer, widget = viewer_and_widget
    [page] = viewer.open_sample("napari-digits", "scanned_page")
    run(widget, qtbot, page)
    widget.review.value = 1.0  # every digit below p = 100% to review
    flagged = sum(r.needs_review(1.0) for r in widget.rows)
    assert flagged > 10 and f" {flagged} to review" in widget.status.value
    k = next(i for i, r in enumerate(widget.rows) if r.needs_review(1.0))
    widget.correct(k, widget.rows[k].prediction)  # same digit: no correction
    widget.correct(k, (widget.rows[k].prediction + 1) % 10)
    assert f" {flagged - 1} to review" in widget.status.value
    widget.correct(k, None)  # undo
    assert f" {flagged} to review" in widget.status.value

    widget.select_row(5)
    assert not widget.explain.empty
    second = viewer.add_image(page.data[:700], name="top half", rgb=True)
    run(widget, qtbot, second)
    assert widget.explain.empty and not widget.explain.probs.text()
    assert not widget.explain_button.enabled


def test_corrections_are_kept_on_disk_and_come_back_in_a_new_viewer(
    make_napari_viewer, engine, qtbot, messages
):
    viewer = make_napari_viewer()
    widget = ScanWidget(viewer)
    [page] = viewer.open_sample("napari-digits", "scanned_page")
    run(widget, qtbot, page)
    new = (widget.rows[3].prediction + 1) % 10
    widget.correct(3, new)
    widget.correct(8, NOT_A_DIGIT)
    kept = correction_log.path_of(widget.reading.key)
    assert [r.corrected for r in read_csv(kept)] == [new, NOT_A_DIGIT]

    # as after a crash: another viewer, the same pixels from another "file"
    again = ScanWidget(make_napari_viewer())
    copy = again.viewer.add_image(page.data.copy(), name="the scan again")
    run(again, qtbot, copy)
    assert again.rows[3].corrected == new and again.rows[8].corrected == NOT_A_DIGIT
    assert sum(r.corrected is not None for r in again.rows) == 2
    assert any(m.startswith("restored 2 correction(s)") for _, m in messages)

    again.correct(3, None)
    again.correct(8, None)  # every correction undone: nothing is kept
    assert not kept.exists()

    kept.write_bytes(b"digit,corrected\n\xff\x00,7\n")  # damaged
    run(again, qtbot, copy)
    said = [m for kind, m in messages if kind == "show_warning"]
    assert said and "corrections kept in" in said[-1] and "without them" in said[-1]
    assert all(r.corrected is None for r in again.rows)

    kept.unlink()
    kept.parent.rmdir()
    kept.parent.write_text("")  # the folder cannot be made: a warning, once
    again.correct(3, new)
    again.correct(4, new)
    said = [m for kind, m in messages if "not kept on disk" in m]
    assert len(said) == 1 and again.rows[4].corrected == new


def test_rows_and_boxes_select_each_other(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    [page] = viewer.open_sample("napari-digits", "scanned_page")
    run(widget, qtbot, page)
    white = np.ones(4)

    widget.select_row(7)
    assert widget.selected == 7
    assert (box_colours(viewer, 7) == white).all()
    assert not (box_colours(viewer, 6) == white).all()
    assert widget.explain.probs.text().count("\n") == 9

    # a click (press and release at one place) inside box 12 selects its row
    row = widget.rows[12]
    point = ((row.min_row + row.max_row) / 2, (row.min_col + row.max_col) / 2)
    labels = viewer.layers[LABELS_LAYER]
    event = SimpleNamespace(type="mouse_press", position=point)
    clicks = widget._on_click(labels, event)
    next(clicks)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(clicks)
    selected = widget.table.selectionModel().selectedRows()[0]
    assert selected.data(Qt.UserRole) == 12 and widget.selected == 12
    assert (box_colours(viewer, 12) == white).all()
    assert not (box_colours(viewer, 7) == white).all()
    assert widget.digit_at((0, 0)) is None


def test_explain_this_digit_shows_the_first_layer_feature_maps(
    viewer_and_widget, qtbot
):
    viewer, widget = viewer_and_widget
    [page] = viewer.open_sample("napari-digits", "scanned_page")
    run(widget, qtbot, page)
    widget.select_row(4)
    assert widget.explain_button.enabled
    worker = widget.explain_selected()
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    qtbot.waitUntil(lambda: widget.explain.maps.pixmap() is not None, timeout=5000)
    assert not widget.explain.maps.pixmap().isNull()
    from napari_digits._widgets.learned_filters import first_layer

    filters = first_layer(str(current_model.path)).kernel.shape[-1]
    assert f"{filters} first-layer feature maps" in widget.explain.caption.text()
    assert not widget.explain.crop.pixmap().isNull()
    assert "tensorflow" not in sys.modules


def test_the_dock_keeps_the_canvas_wide_and_the_table_fits(
    make_napari_viewer, qtbot, engine, messages
):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1300, 850)
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Read digits")
    [page] = viewer.open_sample("napari-digits", "scanned_page")
    run(widget, qtbot, page)
    widget.select_row(3)  # the explain panel shows the digit
    qtbot.wait(100)
    canvas = viewer.window._qt_viewer.canvas.native
    before, canvas_before = widget.width(), canvas.width()
    widget.status.value = "word " * 100  # 500 characters
    qtbot.wait(100)
    assert widget.status.native.wordWrap()
    assert widget.width() <= max(before, 400), (before, widget.width())
    assert canvas.width() == canvas_before > 550
    # digit, reading and probability are in view without scrolling
    table = widget.table
    p = HEADERS.index("p")
    assert max(HEADERS.index("#"), HEADERS.index("read")) < p
    right = table.columnViewportPosition(p) + table.columnWidth(p)
    assert right <= table.viewport().width(), (right, table.viewport().width())
    assert table.model().headerData(CORRECTED, Qt.Horizontal) == "fix"


def test_bad_corrections_and_bad_layers_are_messages(viewer_and_widget, messages):
    viewer, widget = viewer_and_widget
    labels = viewer.add_labels(np.zeros((50, 50), np.int32))
    points = viewer.add_points([[1, 1]])
    for layer in (labels, points):
        widget.layer.value = layer
        assert widget.start() is None
    errors = [m for kind, m in messages if kind == "show_error"]
    assert len(errors) == 2 and all("choose an Image layer" in m for m in errors)
    assert LABELS_LAYER not in viewer.layers


def test_a_bad_fix_is_a_message(viewer_and_widget, qtbot, messages):
    viewer, widget = viewer_and_widget
    [page] = viewer.open_sample("napari-digits", "scanned_page")
    run(widget, qtbot, page)
    for bad in ("x", "6x", "1" * 13):
        widget.model.setData(cell(widget, 0, "fix"), bad)
        kind, message = messages.pop()
        assert kind == "show_error" and message.startswith("a fix is a digit 0-9")
    assert all(r.corrected is None for r in widget.rows)


def test_blank_page_says_no_digits_found(viewer_and_widget, qtbot, messages):
    viewer, widget = viewer_and_widget
    blank = viewer.add_image(np.full((400, 300), 230, np.uint8))
    run(widget, qtbot, blank)
    assert widget.status.value == "no digits found"
    assert ("show_warning", "no digits found") in messages
    assert LABELS_LAYER not in viewer.layers and BOXES_LAYER not in viewer.layers


def test_stack_reads_the_current_plane(viewer_and_widget, qtbot, messages):
    from napari_digits.sample_data import scanned_page

    viewer, widget = viewer_and_widget
    [(rgb, _, _)] = scanned_page()
    grey = rgb[:600, :, 1]
    stack = viewer.add_image(np.stack([np.full_like(grey, 230), grey]))
    viewer.dims.set_current_step(0, 1)
    run(widget, qtbot, stack)
    assert any("current plane" in m for _, m in messages)
    assert len(widget.rows) > 20


def test_punctuation_is_shown_as_marks_when_asked(
    viewer_and_widget, qtbot, mnist_dir, tmp_path
):
    from scipy import ndimage as ndi

    from napari_digits.data import load_mnist

    viewer, widget = viewer_and_widget
    digits = load_mnist(mnist_dir).x_test[:3]
    ink = np.zeros((200, 420))
    for k, d in enumerate(digits):  # "72.1" with the point between 2 and 1
        col = 20 + 90 * k + (40 if k == 2 else 0)
        ink[40:124, col : col + 84] = ndi.zoom(d / 255.0, 3, order=1)
    ink[104:116, 215:227] = 1.0  # the point, on the line, clear of both digits
    page = viewer.add_image((230 - 200 * np.clip(ink, 0, 1)).astype(np.uint8))

    run(widget, qtbot, page)
    assert [r.value for r in widget.rows] == [7, 2, 1]
    widget.marks.value = True
    run(widget, qtbot, page)
    values = [r.value for r in sorted(widget.rows, key=lambda r: r.min_col)]
    assert values == [7, 2, -1, 1]
    assert sorted(viewer.layers[LABELS_LAYER].features["read"]) == [-1, 1, 2, 7]
    out = tmp_path / "marks.csv"
    widget.export_csv(str(out))
    assert sorted(r.prediction for r in read_csv(out)) == [-1, 1, 2, 7]


CRASH_WORKFLOW = """
import time
import napari
from qtpy.QtWidgets import QApplication

def pump(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.instance().processEvents()
        time.sleep(0.01)

def read(widget):
    worker = widget.start()
    ready = lambda: getattr(widget, "layers_ready", True)  # noqa: E731
    while worker.is_running or not widget.run_button.enabled or not ready():
        pump(0.05)
    pump(0.5)  # drawn

viewer = napari.Viewer()
_, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Read digits")
[page] = viewer.open_sample("napari-digits", "scanned_page")
widget.layer.value = page
for run in range(5):
    # issue 9, crash a: read, delete the results, read again
    read(widget)
    names = {layer.name for layer in viewer.layers}
    assert names == {page.name, *widget_layers}, names
    viewer.layers.remove("digits: boxes")
    pump(0.3)
    viewer.layers.remove("digits: labels")
    pump(0.3)
    read(widget)
    assert len(viewer.layers) == 4, [layer.name for layer in viewer.layers]
    print("deleted and read again", run, flush=True)
for run in range(5):
    read(widget)  # the page again, with its layers present
    assert len(viewer.layers) == 4, [layer.name for layer in viewer.layers]
    print("read again", run, flush=True)
viewer.close()
print("survived")
"""


@pytest.mark.slow
def test_deleting_the_results_and_reading_again_never_crashes():
    """Ten reads that crashed the viewer, each drawn (run in a subprocess)."""
    layers = repr([LABELS_LAYER, READINGS_LAYER, BOXES_LAYER])
    script = f"widget_layers = {layers}\n" + CRASH_WORKFLOW
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    assert done.stdout.strip().endswith("survived")


@pytest.mark.slow
def test_model_with_the_wrong_input_is_a_clear_error(
    viewer_and_widget, qtbot, messages, tmp_path_factory
):
    from make_model import build_models

    models = build_models(tmp_path_factory.mktemp("models"))
    viewer, widget = viewer_and_widget
    [page] = viewer.open_sample("napari-digits", "scanned_page")
    current_model.set(models / "rgb3x3.keras")
    try:
        run(widget, qtbot, page)
    finally:
        current_model.reset()
    errors = [m for kind, m in messages if kind == "show_error"]
    assert errors and "(28, 28, 1)" in errors[0]
    assert page in viewer.layers and widget.status.value == "failed"


def test_learn_from_my_corrections_makes_a_new_current_model_and_reads_again(
    viewer_and_widget, qtbot, tmp_path, monkeypatch, messages
):
    viewer, widget = viewer_and_widget
    [page] = viewer.open_sample("napari-digits", "scanned_page")
    run(widget, qtbot, page)
    assert widget.learn_button.enabled
    assert widget.learn() is None  # nothing corrected yet: a message, no work
    assert messages[-1] == ("show_info", "correct some digits in the table first")

    out = tmp_path / "learnt.keras"
    monkeypatch.setattr(widget_module, "learnt_model_path", lambda: out)
    monkeypatch.setattr(widget_module, "LEARN_BUDGET", 3.0)
    value = (widget.rows[0].prediction + 1) % 10
    widget.correct(0, value)
    try:
        worker = widget.learn()
        assert worker is not None and not widget.learn_button.enabled
        with qtbot.waitSignal(worker.finished, timeout=WAIT):
            pass
        qtbot.waitUntil(lambda: current_model.path == out, timeout=5000)
        qtbot.waitUntil(
            lambda: widget.worker is not worker and widget.run_button.enabled,
            timeout=WAIT,
        )
        qtbot.waitUntil(lambda: widget.layers_ready, timeout=WAIT)
        assert out.is_file() and (tmp_path / "learnt.keras.json").is_file()
        assert widget.rows[0].corrected == value  # the correction is carried over
        assert any("learnt 1 correction(s)" in m for _, m in messages)
    finally:
        current_model.reset()


def test_learning_takes_the_corrections_of_every_page_read(
    viewer_and_widget, qtbot, tmp_path, monkeypatch, messages
):
    viewer, widget = viewer_and_widget
    [page] = viewer.open_sample("napari-digits", "scanned_page")
    top = viewer.add_image(page.data[:700], name="top half", rgb=True)
    bottom = viewer.add_image(page.data[700:], name="bottom half", rgb=True)
    for layer in (page, top, bottom):
        run(widget, qtbot, layer)
        if layer is not bottom:
            widget.correct(0, (widget.rows[0].prediction + 1) % 10)
    assert len(widget.earlier_pages) == 2  # the bottom half has no correction
    run(widget, qtbot, top)  # current again: its corrections come back
    assert widget.rows[0].corrected is not None
    assert len(widget.earlier_pages) == 1

    out = tmp_path / "learnt.keras"
    monkeypatch.setattr(widget_module, "learnt_model_path", lambda: out)
    monkeypatch.setattr(widget_module, "LEARN_BUDGET", 3.0)
    try:
        worker = widget.learn()
        assert "(2 corrected)" in widget.status.value
        assert "of 2 page(s)" in widget.status.value
        with qtbot.waitSignal(worker.finished, timeout=WAIT):
            pass
        qtbot.waitUntil(lambda: current_model.path == out, timeout=5000)
        qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=WAIT)
        assert any(m.startswith("learnt 2 correction(s)") for _, m in messages)
    finally:
        current_model.reset()


def test_learning_teaches_the_field_reader_the_short_lines_of_the_page(
    viewer_and_widget, qtbot, tmp_path, monkeypatch, messages, mnist_dir
):
    from scipy import ndimage as ndi

    from napari_digits.data import load_mnist
    from napari_digits.synthetic import one_a_line

    viewer, widget = viewer_and_widget
    mnist = load_mnist(mnist_dir)
    inks = []
    for k in range(3):  # three short lines of three digits, twice MNIST's size
        digits = [
            ndi.zoom(d / 255.0, 2, order=1) for d in mnist.x_test[3 * k : 3 * k + 3]
        ]
        gap = np.zeros((56, 16))
        inks.append(np.concatenate([digits[0], gap, digits[1], gap, digits[2]], axis=1))
    ink, _ = one_a_line(inks, gap=40, margin=40)
    page = viewer.add_image(0.9 - 0.8 * np.clip(ink, 0, 1), name="amounts")
    run(widget, qtbot, page)
    assert len(widget.rows) == 9 and len(widget.reading.scan.lines) == 3

    out = tmp_path / "learnt.keras"
    monkeypatch.setattr(widget_module, "learnt_model_path", lambda: out)
    monkeypatch.setattr(widget_module, "LEARN_BUDGET", 3.0)
    widget.correct(0, (widget.rows[0].prediction + 1) % 10)
    try:
        worker = widget.learn()
        assert "line(s)" in widget.status.value
        with qtbot.waitSignal(worker.finished, timeout=WAIT):
            pass
        qtbot.waitUntil(lambda: current_model.path == out, timeout=5000)
        qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=WAIT)
        assert (tmp_path / "learnt.fields.keras").is_file()  # its own reader
        said = next(m for _, m in messages if m.startswith("learnt 1 correction(s)"))
        assert int(said.split(" and ")[1].split(" line")[0]) >= 1, said
    finally:
        current_model.reset()
