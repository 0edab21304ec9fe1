"""The "Read digits" widget in a real viewer, classifying in the real engine."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_digits._widgets import scan as widget_module
from napari_digits._widgets.scan import BOXES_LAYER, LABELS_LAYER, ScanWidget
from napari_digits.current_model import current_model
from napari_digits.results import CSV_HEADER, read_csv, score
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
    return worker


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
    assert len(np.unique(labels.data)) - 1 == len(rows) == len(truth)
    assert len(boxes.data) == len(rows)
    assert list(boxes.features["prediction"]) == [r.prediction for r in rows]
    assert "1 " in boxes.features["text"][0] or boxes.features["text"][0][1] == " "
    assert widget.table.rowCount() == len(rows)
    assert widget.status.value.startswith(f"{len(rows)} digits")

    # a row shows its crop and probabilities; a box selects its row
    widget.table.selectRow(5)
    assert not widget.crop_view.pixmap().isNull()
    assert widget.prob_view.text().count("\n") == 9
    boxes.selected_data = {7}
    boxes.events.highlight()
    selected = widget.table.selectedItems()[0].data(Qt.UserRole)
    assert selected == 7

    # sort by probability, then correct a digit in the table itself
    widget.table.sortItems(5, Qt.AscendingOrder)
    first = widget.table.item(0, 0).data(Qt.UserRole)
    wrong = (rows[first].prediction + 1) % 10
    widget.table.item(0, 8).setText(str(wrong))
    assert widget.rows[first].corrected == wrong
    assert boxes.features["text"][first].startswith(f"{wrong}*")

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
    assert len(viewer.layers) == 3  # the page and one labels, one boxes layer


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
