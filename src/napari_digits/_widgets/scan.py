"""The "Read digits" dock widget: wiring only.

Finding digits is :func:`napari_digits.scan.find_digits`, the table is
:mod:`napari_digits.results`, what is drawn over the page is
:mod:`napari_digits.annotations` (its layers: ``_reading_layers``),
classifying is a ``Predict`` request to the engine process. One background
job finds, classifies and builds every array the layers need; the GUI thread
only hands them to layers, updated in place. A table model, a crop and
"explain this digit" panel, corrections, learning from them and a CSV export
complete it.
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QSizePolicy, QVBoxLayout, QWidget

from napari_digits import annotations, correction_log, corrections, results
from napari_digits._widgets import create_worker, ensure_pool_threads, warm_imports
from napari_digits._widgets._digits_table import DigitsModel, digits_table
from napari_digits._widgets._explain import ExplainPanel
from napari_digits._widgets._reading_layers import (
    BOXES_LAYER,
    LABELS_LAYER,
    MINE,
    READINGS_LAYER,
    Reading,
    ReadingLayers,
    draw,
)
from napari_digits.current_model import current_model
from napari_digits.scan import ScanError

if TYPE_CHECKING:
    import napari

__all__ = ["BOXES_LAYER", "LABELS_LAYER", "READINGS_LAYER", "ScanWidget"]


def classify(model: str, crops: np.ndarray) -> np.ndarray:
    """Ask the engine for the crops' probabilities (worker thread)."""
    from napari_digits.engine.client import get_engine
    from napari_digits.engine.protocol import Predict

    return get_engine().call(Predict(model=model, images=crops))


#: seconds the engine trains when the user asks it to learn corrections
LEARN_BUDGET = 45.0
#: digits of the earlier pages kept for learning (the oldest pages go first)
EARLIER_PAGES_DIGITS = 20_000


def learnt_model_path() -> Path:
    """Return a new file for a model learnt from corrections (``~/napari-digits``)."""
    folder = Path.home() / "napari-digits"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return folder / f"corrected-{stamp}.keras"


def finetune_job(config: Any) -> Any:
    """Fine-tune in the engine (worker thread); returns a FinetuneResult."""
    from napari_digits.engine.client import get_engine
    from napari_digits.engine.protocol import Finetune

    return get_engine().call(Finetune(config=config))


def first_layer_maps(model: str, crop: np.ndarray) -> np.ndarray:
    """Ask the engine for a crop's first-layer feature maps ``(H, W, F)``.

    Worker thread; ``crop`` is a 28x28 uint8 MNIST-style crop.
    """
    from napari_digits.engine.client import get_engine
    from napari_digits.engine.protocol import FeatureMaps

    image = np.asarray(crop, np.float32) / 255
    return get_engine().call(FeatureMaps(model=model, image=image, depth=1))[0]


def read_job(
    image: np.ndarray,
    model: str,
    options: dict[str, Any],
    file: str,
    earlier: dict[str, list[results.DigitRow]],
    review: float,
):
    """Find, classify, tabulate and draw a page (worker thread).

    Yields step names; returns a :class:`Reading`. ``earlier`` holds the
    tables of the last read by page key (:func:`correction_log.page_key`):
    the corrections of the table of the same pixels are carried over, else
    those kept on disk for them (:mod:`napari_digits.correction_log`), so a
    page's corrections never reach another page, another plane of a stack
    included.
    """
    options = dict(options)
    number_gap = options.pop("number_gap")
    yield "finding and classifying digits"
    scan, rows, probs = results.read_page(
        image, partial(classify, model), file=file, number_gap=number_gap, **options
    )
    key = correction_log.page_key(image)
    earlier = [
        dataclasses.replace(r, file=file)
        for r in earlier.get(key, [])
        if r.corrected is not None
    ]
    if earlier:  # the same page read again in this viewer: its table wins
        rows, carried = results.carry_corrections(earlier, rows)
        restored, lost, problem = 0, len(earlier) - carried, ""
    else:
        rows, restored, lost, problem = restore_kept(key, file, rows)
    yield "drawing"
    import pandas  # noqa: F401  (napari's layer features: not in the GUI thread)

    return draw(
        scan, rows, probs, review, lost, key=key, restored=restored, problem=problem
    )


def restore_kept(
    key: str, file: str, rows: list[results.DigitRow]
) -> tuple[list[results.DigitRow], int, int, str]:
    """Carry the corrections kept on disk for the pixels ``key`` into ``rows``.

    Returns
    -------
    rows : list of DigitRow
        ``rows`` with the kept corrections.
    restored : int
        Kept corrections that found their digit again.
    lost : int
        Kept corrections that found none.
    problem : str
        Why the kept corrections could not be read (a damaged file: the
        page is read without them); empty when they could.
    """
    try:
        kept = correction_log.load(key, file)
    except ValueError as exc:
        return rows, 0, 0, f"{exc}; reading the page without them"
    rows, restored = results.carry_corrections(kept, rows)
    return rows, restored, len(kept) - restored, ""


@dataclasses.dataclass
class Planes:
    """Every plane of a stack, read (built in the worker)."""

    rows: list[results.DigitRow]
    keys: dict[int, str]  # page (plane number, from 1) -> correction_log key
    restored: int = 0
    lost: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)


def read_planes_job(data: Any, rgb: bool, model: str, options: dict, file: str):
    """Read every plane of a stack (worker thread): yields progress, returns Planes.

    Each plane's corrections kept on disk, by its pixels, come back with it.
    """
    from napari_digits.archive.pages import plane_count, read_planes

    total, done = plane_count(data.shape, rgb=rgb), Planes([], {})
    planes = read_planes(data, partial(classify, model), file=file, rgb=rgb, **options)
    for k, (plane, plane_rows) in enumerate(planes, start=1):
        key = done.keys[k] = correction_log.page_key(plane)
        plane_rows, restored, lost, problem = restore_kept(key, file, plane_rows)
        done.rows.extend(plane_rows)
        done.restored, done.lost = done.restored + restored, done.lost + lost
        done.problems += [problem] if problem else []
        yield f"read plane {k} of {total}: {len(done.rows)} digits so far"
    return done


def page_of(viewer: napari.viewer.Viewer, layer: Any) -> tuple[np.ndarray, str]:
    """Return the 2D (or RGB) page a layer shows now, and a note about it.

    Raises
    ------
    ScanError
        For anything but an Image layer.
    """
    if not isinstance(layer, Image):
        kind = type(layer).__name__ if layer is not None else "no"
        raise ScanError(
            f"{kind} layer chosen: choose an Image layer that holds the scanned page"
        )
    data = layer.data[0] if layer.multiscale else layer.data  # full resolution
    page_ndim = 3 if layer.rgb else 2
    if data.ndim == page_ndim:
        return np.asarray(data), ""
    lead = data.ndim - page_ndim
    step = viewer.dims.current_step[-layer.ndim :][:lead]
    plane = data[tuple(int(s) for s in step)]
    return np.asarray(plane), f"processing the current plane {tuple(step)} of a stack"


def file_name(layer: Image) -> str:
    """Return the page's file for the table: source path, metadata, or name."""
    path = layer.source.path or layer.metadata.get("path")
    return str(path) if path else layer.name


def _camera(viewer: napari.viewer.Viewer) -> Any:
    """Return the viewer's camera (``viewer.scene.camera`` since napari 0.9)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


class ScanWidget(QWidget):
    """Find, classify and read the handwritten digits of a scanned page.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose Image layer is read and where results are added.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        ensure_pool_threads()
        warm_imports()
        self.viewer = viewer
        self.reading: Reading | None = None
        self.stack_rows: list[results.DigitRow] = []  # every plane read at once
        self.stack_layer: Image | None = None
        self.stack_keys: dict[int, str] = {}  # a stack's planes' page keys
        self.selected: int | None = None
        self.worker = None
        self._keep_failed = False  # corrections could not be written to disk
        #: what the earlier corrected pages give to learn, by page key
        self.earlier_pages: dict[str, corrections.LearningSet] = {}
        self.layers = ReadingLayers(viewer, self._on_click)
        self._build_controls()
        self.model = DigitsModel(self._on_fix_typed)
        self.table = digits_table(self.model)
        self.table.selectionModel().selectionChanged.connect(self._on_row_selected)
        self.explain = ExplainPanel()
        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.table)
        layout.addWidget(self.explain_button.native)
        layout.addWidget(self.explain)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._reset_layer_choices)
        self.destroyed.connect(lambda *_: self._disconnect(viewer))

    # -- building ----------------------------------------------------------

    def _build_controls(self) -> None:
        self.layer = ComboBox(label="page", choices=self._layers)
        self.ink = ComboBox(label="ink", choices=["auto", "dark", "light"])
        self.method = ComboBox(label="threshold", choices=["otsu", "local"])
        self.min_contrast = FloatSpinBox(
            label="min contrast", value=0.15, min=0.01, max=1.0, step=0.01
        )
        self.digit_height = SpinBox(label="digit height (0: auto)", value=0, max=2000)
        self.number_gap = FloatSpinBox(
            label="number gap (digit heights)", value=0.6, min=0.05, max=5, step=0.05
        )
        self.review = FloatSpinBox(
            label="review below p",
            value=results.REVIEW_THRESHOLD,
            min=0,
            max=1,
            step=0.05,
        )
        self.split = CheckBox(text="split touching digits", value=True)
        self.marks = CheckBox(text="show punctuation (read -1)", value=False)
        self.marks.tooltip = (
            "points, commas, dashes and = beside the digits get rows of their own, "
            "read -1; they are never part of a number"
        )
        self.amounts = CheckBox(text="lines are amounts", value=False)
        self.amounts.tooltip = (
            "cheques, invoices: a line's first digit is weighed by the first-digit "
            "law (1 leads six times as often as 9), so an unsure 4-or-1 reads as 1"
        )
        self.every_plane = CheckBox(text="every plane of a stack", value=False)
        self.run_button = PushButton(text="Find and classify")
        self.export_button = PushButton(text="Export CSV...")
        self.explain_button = PushButton(text="Explain this digit", enabled=False)
        self.learn_button = PushButton(text="Learn from my corrections", enabled=False)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        self.status.native.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.run_button.changed.connect(self.start)
        self.export_button.changed.connect(self._ask_export)
        self.explain_button.changed.connect(self.explain_selected)
        self.learn_button.changed.connect(self.learn)
        self.review.changed.connect(self._on_review_changed)
        self.controls = Container(
            widgets=[
                self.layer,
                self.ink,
                self.method,
                self.min_contrast,
                self.digit_height,
                self.number_gap,
                self.review,
                self.split,
                self.marks,
                self.amounts,
                self.every_plane,
                self.run_button,
                self.export_button,
                self.learn_button,
                self.status,
            ]
        )

    def _layers(self, _widget=None) -> list[tuple[str, Any]]:
        return [(lay.name, lay) for lay in self.viewer.layers if lay.name not in MINE]

    def _reset_layer_choices(self, _event=None) -> None:
        self.layer.reset_choices()

    def _disconnect(self, viewer: napari.viewer.Viewer) -> None:
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.disconnect(self._reset_layer_choices)

    @property
    def rows(self) -> list[results.DigitRow]:
        """The table of the last page read, or of every plane (with corrections)."""
        return self.reading.rows if self.reading else self.stack_rows

    def tables(self) -> dict[str, list[results.DigitRow]]:
        """Return the table shown by page key (a stack's by plane), for ``read_job``."""
        if self.reading is not None:
            return {self.reading.key: self.reading.rows}
        tables: dict[str, list[results.DigitRow]] = {}
        for row in self.stack_rows:
            tables.setdefault(self.stack_keys[row.page], []).append(row)
        return tables

    # -- running -----------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """Return the scan options the controls hold."""
        return {
            "ink": self.ink.value,
            "method": self.method.value,
            "min_contrast": self.min_contrast.value,
            "digit_height": self.digit_height.value or None,
            "split_touching": self.split.value,
            "marks": self.marks.value,
            "amounts": self.amounts.value,
            "number_gap": self.number_gap.value,
        }

    def start(self, _=None):
        """Find and classify the digits of the chosen page in a worker."""
        layer = self.layer.value
        if self.every_plane.value and isinstance(layer, Image):
            data = layer.data[0] if layer.multiscale else layer.data
            if data.ndim > (3 if layer.rgb else 2):
                return self._start_planes(layer, data)
        try:
            page, note = page_of(self.viewer, layer)
        except ScanError as exc:
            show_error(str(exc))
            return None
        if note:
            show_info(note)
        self.status.value = "reading..."
        self.run_button.enabled = False
        worker = create_worker(
            read_job,
            page,
            str(current_model.path),
            self.options(),
            file_name(layer),
            self.tables(),
            self.review.value,
            _progress={"total": 2, "desc": "Read digits"},
            _start_thread=False,
            _connect={  # "errored" here, or superqt re-raises it in the GUI
                "yielded": lambda step: setattr(self.status, "value", step),
                "returned": lambda reading: self._show(layer, reading),
                "errored": self._on_error,
                "finished": lambda: setattr(self.run_button, "enabled", True),
            },
        )
        self.worker = worker
        worker.start()
        return worker

    def _start_planes(self, layer: Image, data: Any):
        """Read every plane of a stack in a worker, a progress step a plane."""
        from napari_digits.archive.pages import plane_count

        total = plane_count(data.shape, rgb=layer.rgb)
        self.status.value = f"reading {total} planes..."
        self.run_button.enabled = False
        worker = create_worker(
            read_planes_job,
            data,
            layer.rgb,
            str(current_model.path),
            self.options(),
            file_name(layer),
            _progress={"total": total, "desc": "Read digits: every plane"},
            _start_thread=False,
            _connect={
                "yielded": lambda step: setattr(self.status, "value", step),
                "returned": lambda planes: self._show_planes(layer, planes, total),
                "errored": self._on_error,
                "finished": lambda: setattr(self.run_button, "enabled", True),
            },
        )
        self.worker = worker
        worker.start()
        return worker

    def _on_error(self, exc: Exception) -> None:
        self.status.value = "failed"
        show_error(f"Read digits failed: {exc}")

    # -- results -----------------------------------------------------------

    def _show(self, source: Image, reading: Reading) -> None:
        self._say_restored(reading.restored, reading.lost, [reading.problem])
        self._set_aside(self.reading, reading.key)
        self.reading, self.selected = reading, None
        self.stack_rows, self.stack_layer, self.stack_keys = [], None, {}
        self._keep_failed = False
        self._by_label = {r.label: k for k, r in enumerate(reading.scan.regions)}
        self.explain.clear()
        self.explain_button.enabled = False
        self.model.set_rows(reading.rows)
        self.learn_button.enabled = bool(reading.rows)
        self._update_status()
        if not reading.rows:
            extra = "; ".join(self._scan_messages())
            show_warning("no digits found" + (f" ({extra})" if extra else ""))
        self.layers.put(source, reading)

    def _say_restored(
        self, restored: int, lost: int, problems: list[str], what: str = "this page"
    ) -> None:
        """Say what came back of the corrections kept from before."""
        problems = [p for p in problems if p]
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            show_warning(problems[0] + more)
        if restored:
            show_info(
                f"restored {restored} correction(s) you made to {what} "
                f"before (kept in {correction_log.FOLDER})"
            )
        if lost > 0:
            show_warning(f"{lost} earlier correction(s) matched no digit any more")

    def _show_planes(self, layer: Image, planes: Planes, total: int) -> None:
        """Show the rows of every plane; the page layers are of one page only."""
        self._say_restored(
            planes.restored, planes.lost, planes.problems, "these planes"
        )
        self._set_aside(self.reading, "")
        self.reading, self.selected = None, None
        self.stack_rows, self.stack_layer = planes.rows, layer
        self.stack_keys, self._keep_failed = planes.keys, False
        self.explain.clear()
        self.explain_button.enabled = False
        self.model.set_rows(planes.rows)
        for name in MINE:
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        self._update_status()
        self.status.value += (
            f" on {total} planes (a row's page is its plane; boxes are drawn "
            "when one plane is read)"
        )

    def _set_aside(self, reading: Reading | None, next_key: str) -> None:
        """Keep what a page left for another gives to learn (its corrections).

        The page read next (``next_key``) is current again, not an earlier
        page; past ``EARLIER_PAGES_DIGITS`` digits the oldest pages go.
        """
        self.earlier_pages.pop(next_key, None)
        if reading is None or reading.key == next_key:
            return
        chosen = corrections.select(reading.scan, reading.rows)
        if chosen.holds_corrections:
            self.earlier_pages[reading.key] = chosen
        pages = self.earlier_pages
        while sum(len(c.labels) for c in pages.values()) > EARLIER_PAGES_DIGITS:
            if len(pages) == 1:
                break  # the last page read: as much as the viewer holds anyway
            del pages[next(iter(pages))]

    def _go_to_page(self, page: int) -> None:
        """Show the plane a stack row comes from."""
        layer = self.stack_layer
        if layer is None or layer not in self.viewer.layers:
            return
        data = layer.data[0] if layer.multiscale else layer.data
        lead = data.shape[: layer.ndim - 2]  # a layer's ndim leaves colour out
        first = self.viewer.dims.ndim - layer.ndim
        for axis, step in enumerate(np.unravel_index(page - 1, lead)):
            self.viewer.dims.set_current_step(first + axis, int(step))

    def _scan_messages(self) -> list[str]:
        messages = self.reading.scan.messages if self.reading else []
        return [m for m in messages if m != "no digits found"]

    def _update_status(self) -> None:
        """Say how many digits, numbers and digits left to review."""
        rows = self.rows
        if not rows:
            self.status.value = "no digits found"
            return
        flagged = sum(r.needs_review(self.review.value) for r in rows)
        extra = "; ".join(self._scan_messages())
        self.status.value = (
            f"{len(rows)} digits, {len(results.numbers(rows))} numbers, "
            f"{flagged} to review" + (f"; {extra}" if extra else "")
        )

    @property
    def layers_ready(self) -> bool:
        """True when the last page's layers are all in place."""
        return self.layers.ready

    def _refresh_boxes(self) -> None:
        if self.reading:
            self.layers.colour_boxes(self.reading.codes, self.selected)

    def _on_review_changed(self, _=None) -> None:
        if not self.reading:
            return
        self._recode()
        self._update_status()

    def _recode(self) -> None:
        """Recompute the status codes, boxes and readings after a change."""
        codes = annotations.status(self.rows, self.review.value)
        changed = np.flatnonzero(codes != self.reading.codes)
        self.reading.codes[:] = codes
        for k in changed:
            self.layers.rewrite(self.reading, int(k), self.rows[k].digits)
        self._refresh_boxes()

    # -- selection and corrections -----------------------------------------

    def _on_row_selected(self, *_: Any) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.show_digit(rows[0].data(Qt.UserRole))

    def _on_click(self, layer: Any, event: Any):
        """Select the digit whose box was clicked (not dragged) in the table."""
        start = np.asarray(event.position)
        yield
        while event.type == "mouse_move":
            yield
        moved = np.abs(np.asarray(event.position) - start).max()
        if moved * _camera(self.viewer).zoom > 3:  # screen pixels: a drag, not a click
            return
        index = self.digit_at(layer.world_to_data(event.position)[-2:])
        if index is not None:
            self.select_row(index)

    def digit_at(self, point: Any) -> int | None:
        """Return the digit (reading order, from 0) whose box holds a point."""
        if not self.rows:
            return None
        boxes = np.array(
            [[r.min_row, r.min_col, r.max_row, r.max_col] for r in self.rows]
        )
        r, c = np.asarray(point, float) + 0.5
        inside = (
            (boxes[:, 0] <= r)
            & (r < boxes[:, 2])
            & (boxes[:, 1] <= c)
            & (c < boxes[:, 3])
        )
        hits = np.flatnonzero(inside)
        return int(hits[0]) if len(hits) else None

    def select_row(self, index: int) -> None:
        """Select the table row of digit ``index`` (reading order, from 0)."""
        row = self.model.row_of(index)
        if row >= 0:
            self.table.selectRow(row)
            self.table.scrollTo(self.model.index(row, 0))

    def show_digit(self, index: int) -> None:
        """Show digit ``index``'s crop and probabilities; highlight its box."""
        if self.reading is None:  # every plane read: show the row's plane
            if 0 <= index < len(self.stack_rows):
                self._go_to_page(self.stack_rows[index].page)
            return
        self.selected = index
        row = self.rows[index]
        k = self._by_label[row.label]
        caption = f"digit {row.digit}: read {row.value} (p {row.probability:.1%})"
        self.explain.show_digit(
            self.reading.scan.crops[k], self.reading.probabilities[k], caption
        )
        self.explain_button.enabled = True
        self._refresh_boxes()

    def _on_fix_typed(self, index: int, text: str) -> None:
        try:
            value = results.as_correction(text)
        except ValueError as exc:
            show_error(f"{exc} (empty to undo)")
            return
        self.correct(index, value)

    def correct(self, index: int, value: int | str | None) -> None:
        """Correct digit ``index`` (reading order, from 0) to ``value``.

        ``value`` is 0..9, ``results.NOT_A_DIGIT``, text of the several
        digits the piece holds (``"65"``), or None (undo); see
        :func:`napari_digits.results.as_correction`.
        """
        if self.reading is None:  # every plane read: the table, kept by plane
            self.stack_rows = results.correct(self.stack_rows, index, value)
            page = self.stack_rows[index].page
            plane = [r for r in self.stack_rows if r.page == page]
            self._keep_corrections(plane, self.stack_keys[page])
            self.model.update_rows(self.stack_rows)
            return
        before = self.rows[index].digits
        self.reading.rows[:] = results.correct(self.rows, index, value)
        self._keep_corrections(self.rows, self.reading.key)
        self.model.update_rows(self.rows)
        self.layers.rewrite(self.reading, index, before)
        self._recode()
        self._update_status()
        self.layers.update_features(self.rows)

    def _keep_corrections(self, rows: list[results.DigitRow], key: str) -> None:
        """Write a page's corrections to disk, so that a crash loses none."""
        try:
            correction_log.save(rows, key)
        except OSError as exc:
            if not self._keep_failed:  # once a page: the table still corrects
                show_warning(f"corrections are not kept on disk: {exc}")
            self._keep_failed = True

    # -- explain this digit ------------------------------------------------

    def explain_selected(self, _=None):
        """Ask the engine for the selected digit's first-layer feature maps."""
        if self.selected is None:
            show_warning("select a digit in the table first")
            return None
        index = self.selected
        k = self._by_label[self.rows[index].label]
        path = current_model.path
        worker = create_worker(
            first_layer_maps,
            str(path),
            self.reading.scan.crops[k],
            _start_thread=False,
            _connect={
                "returned": lambda maps: self._on_maps(index, path, maps),
                "errored": lambda exc: show_error(f"Explain this digit: {exc}"),
            },
        )
        self.explain_worker = worker
        worker.start()
        return worker

    def _on_maps(self, index: int, path: Any, maps: np.ndarray) -> None:
        if index != self.selected:
            return  # another digit was selected meanwhile
        row = self.rows[index]
        self.explain.show_maps(
            maps,
            f"digit {row.digit}: read {row.value} (p {row.probability:.1%}); "
            f"{maps.shape[-1]} first-layer feature maps of {path.name}",
        )

    # -- export ------------------------------------------------------------

    def learn(self, _=None):
        """Fine-tune the current model on the corrections made (a worker).

        The corrected digits and those read with high confidence, of this
        page and of the pages corrected before it since the widget opened,
        are learnt in the engine (:mod:`napari_digits.engine.finetune`, MNIST
        replayed, ``LEARN_BUDGET`` seconds); the new model, saved under
        :func:`learnt_model_path`, becomes current and the page is read again.
        """
        if self.reading is None:
            return None
        this_page = corrections.select(self.reading.scan, self.rows)
        chosen, here = corrections.LearningSet(), 0
        for page in [*self.earlier_pages.values(), this_page]:
            chosen.add(page)
            here += page.holds_corrections
        if not here:
            show_info("correct some digits in the table first")
            return None
        config = chosen.finetune_config(
            current_model.path,
            learnt_model_path(),
            time_budget=LEARN_BUDGET,
            provenance={"files": chosen.files, "from": "Read digits widget"},
        )
        self.learn_button.enabled = self.run_button.enabled = False
        self.status.value = (
            f"learning from {len(chosen.labels)} digit(s) ({chosen.n_corrected} "
            f"corrected) and {len(chosen.lines)} line(s) of {here} page(s)..."
        )
        worker = create_worker(
            finetune_job,
            config,
            _progress={"desc": "Learn from my corrections"},
            _start_thread=False,
            _connect={
                "returned": self._on_learnt,
                "errored": self._on_error,
                "finished": lambda: setattr(self.run_button, "enabled", True),
            },
        )
        self.worker = worker
        worker.start()
        return worker

    def _on_learnt(self, result: Any) -> None:
        show_info(
            f"learnt {result.corrected} correction(s) and {result.lines} line(s): "
            f"MNIST test accuracy "
            f"{result.test_accuracy:.2%}; reading the page again"
        )
        current_model.set(result.model_path)
        self.start()

    def _ask_export(self, _=None) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self, "Export the digits table", "digits.csv", "CSV (*.csv)"
        )
        if path:
            self.export_csv(path)

    def export_csv(self, path: str) -> int:
        """Write the table (with corrections) to ``path``; return the rows."""
        if not self.rows:
            show_warning("nothing to export: read a page first")
            return 0
        try:
            count = results.write_csv(self.rows, path)
        except OSError as exc:
            show_error(f"could not write {path}: {exc}")
            return 0
        show_info(f"wrote {count} digits to {path}")
        return count
