"""Read digits on every plane of a stack, in a real viewer with the real engine."""

from __future__ import annotations

import numpy as np
import pytest

from napari_digits import correction_log
from napari_digits._widgets import scan as widget_module
from napari_digits._widgets._digits_table import HEADERS
from napari_digits._widgets.scan import MINE, ScanWidget
from napari_digits.results import NOT_A_DIGIT, read_csv

WAIT = 180_000


def read(widget, qtbot, *, every_plane: bool):
    widget.every_plane.value = every_plane
    worker = widget.start()
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=5000)


@pytest.fixture
def messages(monkeypatch):
    said: list[tuple[str, str]] = []
    for kind in ("show_error", "show_warning", "show_info"):
        monkeypatch.setattr(
            widget_module, kind, lambda msg, kind=kind: said.append((kind, msg))
        )
    return said


def test_every_plane_of_a_stack_is_read_with_its_page(
    make_napari_viewer, qtbot, engine, messages
):
    from napari_digits.sample_data import scanned_page

    viewer = make_napari_viewer()
    widget = ScanWidget(viewer)
    [(rgb, _, _)] = scanned_page()
    grey = rgb[:, :, 1]
    planes = [np.full_like(grey[:500], 230), grey[:500], grey[500:1000]]
    stack = viewer.add_image(np.stack(planes), name="scans")
    widget.layer.value = stack
    widget.every_plane.value = True
    steps: list[str] = []

    worker = widget.start()
    worker.yielded.connect(steps.append)
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=5000)

    rows = widget.rows
    assert {r.page for r in rows} == {2, 3}  # the blank plane has none
    assert [r.page for r in rows] == sorted(r.page for r in rows)
    assert len(rows) > 40 and widget.model.rowCount() == len(rows)
    page_column = HEADERS.index("page")
    last = widget.model.index(len(rows) - 1, page_column)
    assert widget.model.data(last) == 3
    assert "on 3 planes" in widget.status.value
    assert steps[-1].startswith("read plane 3 of 3")
    assert not [m for kind, m in messages if kind == "show_error"]
    assert not any(name in viewer.layers for name in MINE)

    widget.select_row(len(rows) - 1)  # a row of page 3 shows plane 3
    qtbot.waitUntil(lambda: viewer.dims.current_step[0] == 2, timeout=5000)
    widget.correct(0, (rows[0].prediction + 1) % 10)
    assert widget.rows[0].corrected is not None


def test_each_plane_keeps_its_own_corrections(
    make_napari_viewer, qtbot, engine, messages
):
    """A stack's corrections are kept on disk by plane, as a page's are, and
    never reach another plane: not even one with the same digits in the same
    places (a form scanned twice), read alone or with every plane."""
    from napari_digits.sample_data import scanned_page

    [(rgb, _, _)] = scanned_page()
    grey = rgb[:500, :, 1]
    twin = grey.copy()
    twin[0, 0] ^= 1  # the same form, other pixels: another page
    viewer = make_napari_viewer()
    widget = ScanWidget(viewer)
    widget.layer.value = viewer.add_image(np.stack([grey, twin]), name="forms")
    read(widget, qtbot, every_plane=True)
    first = [r for r in widget.rows if r.page == 1]
    assert len(first) == len(widget.rows) // 2 > 10
    new = (first[2].prediction + 1) % 10
    widget.correct(2, new)
    kept = correction_log.path_of(correction_log.page_key(grey))
    assert [r.corrected for r in read_csv(kept)] == [new]
    assert not correction_log.path_of(correction_log.page_key(twin)).exists()

    viewer.dims.set_current_step(0, 1)  # the twin alone: nothing carried over
    read(widget, qtbot, every_plane=False)
    assert all(r.corrected is None for r in widget.rows)
    viewer.dims.set_current_step(0, 0)  # the first plane alone: carried over
    read(widget, qtbot, every_plane=False)
    assert widget.rows[2].corrected == new
    widget.correct(5, NOT_A_DIGIT)

    # as after a crash: another viewer reads every plane again
    again = ScanWidget(make_napari_viewer())
    again.layer.value = again.viewer.add_image(np.stack([grey, twin]))
    read(again, qtbot, every_plane=True)
    assert [(r.page, r.corrected) for r in again.rows if r.corrected is not None] == [
        (1, new),
        (1, NOT_A_DIGIT),
    ]
    assert ("show_info", "restored 2 correction(s)") in [
        (kind, m[:24]) for kind, m in messages
    ]
