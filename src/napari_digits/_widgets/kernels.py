"""The "Kernels" dock widget: apply a classic kernel to an Image layer.

Wiring only; the filtering is :mod:`napari_digits.kernels`. The result is a new
float32 Image layer ``"<source> [<kernel>]"`` with the source's transform. A
live preview filters the current plane (debounced) into one preview layer;
"Apply" filters the whole layer in a worker thread with a progress bar (a dask
layer is wrapped lazily and stays lazy). Bad input is a notification, never a
traceback, and adds no layer.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
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
    TextEdit,
)
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_digits import kernels
from napari_digits._widgets import create_worker, ensure_pool_threads, warm_imports
from napari_digits._widgets._display import percentile_limits, selection_kept, wrap
from napari_digits._widgets._kernel_grid import KernelGrid
from napari_digits.kernels import CATALOGUE, KernelError

if TYPE_CHECKING:
    import napari

#: debounce of the live preview, in milliseconds
PREVIEW_DELAY_MS = 250
#: the preview shows at most this many pixels along a side (a larger plane is
#: filtered at full resolution in the worker, then shown strided)
PREVIEW_SIDE = 1024
#: marks the preview layer in its metadata (never a source, whatever its name)
PREVIEW_KEY = "napari_digits_preview"
DEFAULT_CUSTOM = "0 -1 0\n-1 5 -1\n0 -1 0"


class NonFiniteImage(KernelError):
    """The image holds NaN or inf values (they would spread to neighbours)."""


@dataclass(frozen=True)
class Job:
    """Everything one filtering run needs, read from the widget in the GUI thread."""

    layer: Image
    data: Any
    key: str
    params: dict[str, Any]
    label: str
    mode: str
    rgb: bool
    axes: tuple[int, int]
    offset: tuple[int, ...] = field(default=())

    def run(self, data: Any = None) -> Any:
        """Filter ``data`` (default: the job's data) in one go."""
        source = self.data if data is None else data
        return kernels.apply_named(source, self.key, **self.kwargs())

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`kernels.apply_named`."""
        return {"mode": self.mode, "rgb": self.rgb, "axes": self.axes, **self.params}

    def layer_kwargs(self, suffix: str = "") -> dict[str, Any]:
        """Name and transform of the result layer, so it overlays the source."""
        src = self.layer
        translate = np.asarray(src.translate, dtype=float).copy()
        for axis, index in enumerate(self.offset):
            translate[axis] += index * src.scale[axis]
        return {
            "name": f"{src.name} [{self.label}]{suffix}",
            "scale": src.scale,
            "translate": translate,
            "rotate": src.rotate,
            "shear": src.shear,
            "affine": src.affine.affine_matrix,
            "rgb": self.rgb,
            "metadata": {"source": src.name, "kernel": self.key, **self.params},
            **({} if self.rgb else {"colormap": "gray"}),
        }


@dataclass(frozen=True)
class Preview:
    """A computed preview: the (strided) result, its stride, its contrast limits."""

    data: np.ndarray
    step: int
    limits: tuple[float, float]


def compute_preview(job: Job, side: int = PREVIEW_SIDE) -> Preview:
    """Filter ``job``'s plane at full resolution; keep at most ``side`` px a side.

    Runs in a worker thread: the filtering, the striding and the contrast
    limits (percentiles) all happen here, so that the GUI thread only hands
    a small array to the layer.
    """
    out = np.asarray(job.run())
    step = max(1, *(int(np.ceil(out.shape[a] / side)) for a in job.axes))
    if step > 1:
        index = [slice(None)] * out.ndim
        for axis in job.axes:
            index[axis] = slice(None, None, step)
        out = np.ascontiguousarray(out[tuple(index)])
    return Preview(out, step, percentile_limits(out))


def filter_layer(
    job: Job,
) -> Generator[tuple[int, int], None, tuple[Any, tuple | None]]:
    """Filter ``job``'s whole layer, yielding progress (a worker's generator).

    Returns the result and its percentile contrast limits (None for a lazy
    dask result: napari then picks the limits from what it shows).
    """
    out = yield from kernels.iter_apply_named(job.data, job.key, **job.kwargs())
    limits = percentile_limits(out) if isinstance(out, np.ndarray) else None
    return out, limits


def describe(key: str, params: dict[str, Any], custom_name: str = "") -> str:
    """Label a kernel for a layer name, e.g. ``"gaussian sigma=2"``."""
    if key == "custom":
        if custom_name:
            return custom_name
        w = kernels.kernel_weights("custom", **params)[0]
        return f"custom {w.shape[0]}x{w.shape[1]}"
    values = " ".join(f"{k}={v:g}" for k, v in params.items())
    return f"{key} {values}".strip()


def displayed_axes(viewer: napari.viewer.Viewer, layer: Image) -> tuple[int, int]:
    """Return the layer's data axes shown as the canvas' rows and columns."""
    offset = viewer.dims.ndim - layer.ndim
    axes = [d - offset for d in viewer.dims.displayed if d - offset >= 0]
    if len(axes) < 2:
        return (layer.ndim - 2, layer.ndim - 1)
    return (axes[-2], axes[-1])


def current_plane(viewer: napari.viewer.Viewer, layer: Image, axes) -> tuple:
    """Return the plane on screen: an index per hidden axis, None per shown one."""
    point = layer.world_to_data(viewer.dims.point[-layer.ndim :])
    shape = layer.data.shape
    return tuple(
        None if i in axes else int(np.clip(np.round(p), 0, shape[i] - 1))
        for i, p in enumerate(point[: layer.ndim])
    )


class KernelsWidget(QWidget):
    """Dock widget: choose an image, a kernel and a border mode; preview; apply."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        ensure_pool_threads()
        warm_imports()
        self.viewer = viewer
        self._custom_name = ""
        self._preview_layer: Image | None = None
        self._preview_source: Image | None = None
        self._preview_pending = False  # settings changed while one was computed
        self._replace_preview = False  # a layer was removed: replace, not update
        self._generation = 0
        self.worker = None
        self.preview_worker = None
        self._build_controls()
        self.grid = KernelGrid()
        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.grid)
        layout.addWidget(self.apply_button.native)
        layout.addStretch()
        self._timer = QTimer(self, singleShot=True, interval=PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self.update_preview)
        self._connect()
        self._on_kernel_changed()

    # -- building -------------------------------------------------------------

    def _build_controls(self) -> None:
        self.layer = ComboBox(label="image", choices=self._image_layers)
        self.kernel = ComboBox(
            label="kernel",
            choices=[(spec.name, key) for key, spec in CATALOGUE.items()],
            value="sobel",
        )
        self.params = {p.name: _param_widget(p) for p in _all_params()}
        self.custom = TextEdit(label="weights", value=DEFAULT_CUSTOM)
        self.custom.native.setFixedHeight(90)
        self.custom.native.setToolTip("Rows of numbers; odd size up to 15x15.")
        self.normalise = CheckBox(text="normalise to sum 1")
        self.mode = ComboBox(label="border", choices=kernels.MODES, value="reflect")
        self.live = CheckBox(text="live preview (current plane)")
        self.status = Label(value="")
        wrap(self.status)  # long messages must not widen the dock
        self.apply_button = PushButton(text="Apply to the whole layer")
        self.controls = Container(
            widgets=[
                self.layer,
                self.kernel,
                *self.params.values(),
                self.custom,
                self.normalise,
                self.mode,
                self.live,
                self.status,
            ]
        )

    def _connect(self) -> None:
        events, dims = self.viewer.layers.events, self.viewer.dims.events
        viewer_links = [
            *((e, self._refresh_layers) for e in (events.inserted, events.removed)),
            (events.reordered, self._refresh_layers),
            (events.removed, self._on_layer_removed),
            (dims.current_step, self._schedule_preview),
            (dims.order, self._schedule_preview),
        ]
        for event, callback in viewer_links:
            event.connect(callback)
        # a closed dock widget must not hear from the viewer any more
        self.destroyed.connect(lambda *_: _disconnect(viewer_links))
        self.kernel.changed.connect(self._on_kernel_changed)
        for widget in (*self.params.values(), self.normalise, self.mode, self.layer):
            widget.changed.connect(self._on_settings_changed)
        self.custom.native.textChanged.connect(self._on_custom_typed)
        self.live.changed.connect(self._on_live_toggled)
        self.apply_button.changed.connect(self.apply)

    def _image_layers(self, _widget=None) -> list[tuple[str, Image]]:
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Image)
            and layer is not self._preview_layer
            and not layer.metadata.get(PREVIEW_KEY)
        ]

    def _refresh_layers(self, _event=None) -> None:
        self.layer.reset_choices()

    def _on_layer_removed(self, event) -> None:
        """Forget a removed preview; drop the preview of a removed source.

        Mesa's llvmpipe (napari 0.9, vispy 0.17) can crash when a layer that
        stays is updated in place after another layer was removed; so after
        any removal the preview is replaced rather than updated, and the
        preview of a removed source is removed (later, not inside this event).
        """
        self._replace_preview = True
        if event.value is self._preview_layer:
            self._preview_layer = self._preview_source = None
            self._generation += 1
        elif event.value is self._preview_source:
            self._preview_source = None
            self._generation += 1  # results in flight are for the removed source
            QTimer.singleShot(0, self._drop_orphan_preview)

    def _drop_orphan_preview(self) -> None:
        if self._preview_layer is not None and self._preview_source is None:
            self._remove_preview()
            self.status.value = "Preview removed with its source image."

    # -- reacting to the controls ------------------------------------------------

    def _on_kernel_changed(self, _value=None) -> None:
        spec = CATALOGUE[self.kernel.value]
        for name, widget in self.params.items():
            widget.visible = any(p.name == name for p in spec.params)
        self.custom.visible = self.normalise.visible = spec.key == "custom"
        self._on_settings_changed()

    def _on_custom_typed(self, _value=None) -> None:
        self._custom_name = ""
        self._on_settings_changed()

    def _on_settings_changed(self, _value=None) -> None:
        try:
            weights = kernels.kernel_weights(self.kernel.value, **self.kernel_params())
        except KernelError as exc:
            self.grid.set_message(f"<b>Invalid kernel:</b> {exc}")
            self._mark_preview_stale(str(exc))
            return
        size = "x".join(map(str, weights[0].shape))
        note = f"{size}, sum {weights[0].sum():.4g}"
        if len(weights) == 2:
            note = f"magnitude = hypot(left, right); each {note}"
        self.grid.set_weights(weights, note)
        self._schedule_preview()

    def _on_live_toggled(self, on: bool) -> None:
        if on:
            self.update_preview()
        else:
            self._remove_preview()

    def _schedule_preview(self, _event=None) -> None:
        if self.live.value:
            self._timer.start()

    # -- reading the job -----------------------------------------------------------

    def kernel_params(self) -> dict[str, Any]:
        """Return the current kernel's parameters as set in the controls."""
        spec = CATALOGUE[self.kernel.value]
        if spec.key == "custom":
            return {"weights": self.custom.value, "normalise": self.normalise.value}
        return {p.name: self.params[p.name].value for p in spec.params}

    def job(self, *, plane: bool = False) -> Job:
        """Read and validate the current settings.

        Raises
        ------
        KernelError
            With a message for the user when the input cannot be filtered.
        """
        layer = self._source_layer()
        key, params = self.kernel.value, self.kernel_params()
        label = describe(key, params, self._custom_name)
        axes = displayed_axes(self.viewer, layer)
        data, offset = layer.data, ()
        if plane:
            index = current_plane(self.viewer, layer, axes)
            data = data[
                tuple(slice(None) if i is None else slice(i, i + 1) for i in index)
            ]
            offset = tuple(0 if i is None else i for i in index)
        _check_data(data, layer.name, layer.rgb, axes)
        kernels.kernel_weights(key, **params)
        return Job(
            layer, data, key, params, label, self.mode.value, layer.rgb, axes, offset
        )

    def _source_layer(self) -> Image:
        layer = self.layer.value
        if isinstance(layer, Image) and layer in self.viewer.layers:
            if layer.multiscale:
                raise KernelError(f"'{layer.name}' is multiscale: not supported yet.")
            return layer
        others = [f"'{x.name}' ({type(x).__name__})" for x in self.viewer.layers]
        hint = f" The layers here are {', '.join(others)}." if others else ""
        raise KernelError(
            "No image layer to filter: kernels apply to Image layers only "
            "(not Labels, Points, Shapes ...). Open an image, e.g. File > Open "
            f"Sample > napari-digits > Portrait.{hint}"
        )

    # -- preview ---------------------------------------------------------------------

    def update_preview(self):
        """Filter the plane on screen into the preview layer (in a worker).

        Returns
        -------
        napari.qt.threading.FunctionWorker or None
            The running worker, or None when the input is invalid (the reason
            is shown under the controls).
        """
        if not self.live.value:
            return None
        running = self.preview_worker
        if running is not None and running.is_running:
            self._preview_pending = True  # one more when this one is done
            return running
        try:
            job = self.job(plane=True)
        except KernelError as exc:
            self.status.value = f"preview: {exc}"
            self._mark_preview_stale(str(exc))
            return None
        self.status.value = ""
        self._generation += 1
        generation = self._generation
        worker = create_worker(compute_preview, job)
        worker.returned.connect(lambda out: self._show_preview(job, out, generation))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_preview_finished)
        self.preview_worker = worker
        worker.start()
        return worker

    def _on_preview_finished(self) -> None:
        self.preview_worker = None
        if self._preview_pending:
            self._preview_pending = False
            self.update_preview()

    def _show_preview(self, job: Job, preview: Preview, generation: int) -> None:
        stale = self._preview_pending or generation != self._generation
        if stale or not self.live.value or job.layer not in self.viewer.layers:
            return
        kwargs = job.layer_kwargs(suffix=" preview")
        kwargs["metadata"] = {**kwargs["metadata"], PREVIEW_KEY: True}
        scale = np.asarray(kwargs["scale"], dtype=float).copy()
        scale[list(job.axes)] *= preview.step
        kwargs.update(scale=scale, contrast_limits=preview.limits)
        if preview.step > 1:
            self.status.value = f"preview shown at 1/{preview.step} resolution"
        layer = self._preview_layer
        self._preview_source = job.layer
        if (
            layer is None
            or layer not in self.viewer.layers
            or self._replace_preview
            or layer.rgb != job.rgb
            or (layer.ndim != preview.data.ndim - job.rgb)
        ):
            self._replace_preview_layer(preview.data, kwargs)
            return
        layer.data = preview.data
        layer.name = kwargs["name"]
        layer.scale, layer.translate = kwargs["scale"], kwargs["translate"]
        layer.contrast_limits = preview.limits
        layer.metadata = kwargs["metadata"]

    def _replace_preview_layer(self, data: np.ndarray, kwargs: dict) -> None:
        old, self._replace_preview = self._preview_layer, False
        with selection_kept(self.viewer):
            if old is not None and old in self.viewer.layers:
                self.viewer.layers.remove(old)
            self._preview_layer = self.viewer.add_image(data, **kwargs)

    def _mark_preview_stale(self, reason: str) -> None:
        """Say that the preview on view no longer matches the settings."""
        self._generation += 1  # a result in flight is for the old settings
        layer = self._preview_layer
        if layer is not None and layer in self.viewer.layers:
            if not layer.name.endswith("(stale)"):
                layer.name = f"{layer.name} (stale)"
            self.status.value = f"preview is stale: {reason}"

    def _remove_preview(self) -> None:
        layer, self._preview_layer = self._preview_layer, None
        self._preview_source = None
        self._generation += 1
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)

    # -- apply -----------------------------------------------------------------------

    def apply(self, _value=None):
        """Filter the whole layer in a worker and add the result as a new layer.

        Returns
        -------
        napari.qt.threading.GeneratorWorker or None
            The running worker, or None when the input is invalid (a
            notification says why and nothing changes).
        """
        try:
            job = self.job()
        except NonFiniteImage as exc:
            show_warning(str(exc))
            return None
        except KernelError as exc:
            show_error(str(exc))
            return None
        worker = create_worker(
            filter_layer,
            job,
            _progress={"total": _steps(job), "desc": f"{job.layer.name} [{job.label}]"},
        )
        worker.returned.connect(lambda result: self._add_result(job, *result))
        worker.errored.connect(self._on_error)
        self.worker = worker
        worker.start()
        return worker

    def _add_result(self, job: Job, out: Any, limits: tuple | None) -> None:
        self._remove_preview()
        kwargs = job.layer_kwargs()
        if limits is not None:
            kwargs["contrast_limits"] = limits
        self.viewer.add_image(out, **kwargs)

    def _on_error(self, exc: Exception) -> None:
        show_error(f"Filtering failed: {exc}")

    # -- for other widgets -----------------------------------------------------------

    def set_custom_kernel(self, weights: np.ndarray, name: str = "") -> None:
        """Load a kernel (e.g. a learned filter) as the custom kernel.

        Parameters
        ----------
        weights : numpy.ndarray
            2D convolution weights. An even-sized kernel (e.g. a 2x2 learned
            filter) is padded with a zero row and column at the end, which
            gives the same result (see :func:`kernels.pad_to_odd`). A
            cross-correlation filter (Keras ``Conv2D``) should be flipped with
            ``np.flip`` first to reproduce that layer's response.
        name : str, optional
            Name used for the result layer instead of ``"custom NxN"``.
        """
        try:
            w = np.asarray(weights, dtype=np.float64)
            padded = kernels.pad_to_odd(w) if w.ndim == 2 else w
            kernels.check_custom(padded)
        except (KernelError, TypeError, ValueError) as exc:
            show_error(f"Cannot use this kernel: {exc}")
            return
        if padded.shape != w.shape:
            show_info(
                f"{w.shape[0]}x{w.shape[1]} kernel padded with zeros to "
                f"{padded.shape[0]}x{padded.shape[1]} (same result)."
            )
        self.normalise.value = False
        self.custom.value = kernels.format_kernel(padded)
        self._custom_name = name
        self.kernel.value = "custom"
        self._on_settings_changed()


def _disconnect(links) -> None:
    for event, callback in links:
        event.disconnect(callback)


def _all_params() -> list[kernels.Param]:
    seen: dict[str, kernels.Param] = {}
    for spec in CATALOGUE.values():
        for p in spec.params:
            seen.setdefault(p.name, p)
    return list(seen.values())


def _param_widget(p: kernels.Param):
    cls = SpinBox if p.integer else FloatSpinBox
    kwargs = {} if p.integer else {"step": p.step}
    return cls(label=p.label, value=p.default, min=p.minimum, max=p.maximum, **kwargs)


def _check_data(data: Any, name: str, rgb: bool, axes: tuple[int, int]) -> None:
    if 0 in np.shape(data):
        raise KernelError(f"'{name}' is empty (shape {data.shape}): nothing to filter.")
    kernels.check_image(data, rgb=rgb, axes=axes)
    if isinstance(data, np.ndarray):
        bad = kernels.count_nonfinite(data)
        if bad:
            raise NonFiniteImage(
                f"'{name}' holds {bad} NaN/inf value(s); a kernel would spread "
                "them to every neighbour it touches. Replace them first, e.g. "
                "with numpy.nan_to_num, then apply again."
            )


def _steps(job: Job) -> int:
    """How many steps :func:`kernels.iter_apply_named` will report."""
    spatial = np.ndim(job.data) - (1 if job.rgb else 0)
    loop = [a for a in range(spatial) if a not in job.axes]
    if not loop or not isinstance(job.data, np.ndarray):
        return 1
    return int(job.data.shape[loop[0]])
