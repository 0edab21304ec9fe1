"""The "Learned filters" dock widget: wiring only.

Every computation lives in :mod:`napari_digits.learned_filters` (tiles,
matching) and in the engine process (reading weights, feature maps); this
module turns controls into calls and results into layers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, SpinBox
from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from napari_digits import annotations
from napari_digits import learned_filters as lf
from napari_digits._widgets import (
    OneATurn,
    create_worker,
    ensure_pool_threads,
    warm_imports,
)
from napari_digits._widgets._display import (
    GAP_FRACTION,
    beside,
    keeping_selection,
    percentile_limits,
    scene_extent,
    selection_kept,
    wrap,
)
from napari_digits.current_model import current_model
from napari_digits.engine.protocol import ConvWeights, FeatureMaps, GetFirstLayer

if TYPE_CHECKING:
    import napari

#: the diverging colormap of weights (blue < 0 < red), centred by the limits
DIVERGING = "RdBu_r"
FILTERS_LAYER = "learned filters"
LABELS_LAYER = "learned filters: index"
DIGIT_LAYER = "MNIST test digit"
MNIST_SOURCE = "MNIST test digit"
TABLE_COLUMNS = ("filter", "channel", "r", "closest kernel")
#: pixels above every row of tiles, where the filter indices are written
LABEL_SPACE = 10
#: texels of the index layer per pixel of the tiles (the index fits LABEL_SPACE)
TEXELS = 2
#: marks the layers this dock adds (they are results, not the user's scene)
RESULT_KEY = "napari_digits_learned_filters"


def first_layer(model: str) -> ConvWeights:
    """Ask the engine for a model's first convolution layer (worker thread)."""
    from napari_digits.engine.client import get_engine

    return get_engine().call(GetFirstLayer(model=model))


def feature_maps(
    model: str, image: np.ndarray | int, depth: int
) -> tuple[np.ndarray, list[np.ndarray], list[tuple[float, float]]]:
    """Return the input, the activation maps and their limits (worker thread).

    The maps come from the engine, one ``(filters, H', W')`` stack a layer,
    each with contrast limits at its 1st and 99th percentiles.

    ``image`` is a 2D float image in 0..1, or the index of an MNIST test digit.
    Raises :class:`~napari_digits.learned_filters.ImageTooSmallError` before
    asking for the maps when the image is smaller than the first layer's
    filters, and ValueError for a model whose first layer takes several
    channels (the engine's FeatureMaps takes a grey image).
    """
    from napari_digits.engine.client import get_engine

    conv = get_engine().call(GetFirstLayer(model=model))
    if conv.kernel.shape[2] != 1:
        raise ValueError(
            f"feature maps are computed for grey images; this model's first layer "
            f"takes {conv.kernel.shape[2]} channels: pick a 1-channel model"
        )
    if isinstance(image, int):
        from napari_digits.data import load_mnist

        image = load_mnist().x_test[image].astype(np.float32) / 255
    lf.check_image_size(image.shape, conv.kernel.shape[:2])
    lf.check_feature_maps(image.shape, [(*image.shape, conv.kernel.shape[-1])])
    maps = get_engine().call(FeatureMaps(model=model, image=image, depth=depth))
    # (C, H, W) stacks and their contrast limits, computed here, not in the GUI
    stacks = [np.ascontiguousarray(np.moveaxis(m, -1, 0)) for m in maps]
    return image, stacks, [percentile_limits(stack) for stack in stacks]


def start_engine() -> str:
    """Start the engine and load TensorFlow in it (worker thread); say so.

    The kernel catalogue that the matching needs is loaded here too.
    """
    import napari_digits.kernels  # noqa: F401  (scipy.ndimage: seconds, once)
    from napari_digits.engine.client import get_engine
    from napari_digits.engine.protocol import ListDevices

    get_engine().call(ListDevices())
    return "engine ready"


def filters_view(conv: ConvWeights) -> tuple:
    """Return the tiles, the closest classic kernels and their table (worker).

    Raises ValueError for weights that are not a convolution kernel.
    """
    tiles = lf.tile_filters(conv.kernel, label_space=LABEL_SPACE)
    matches = lf.match_filters(conv.kernel)
    return tiles, matches, lf.match_table(matches)


def placement(
    size: tuple[int, int],
    shape: tuple[int, ...],
    world: tuple[Any, Any] = ((1, 1), (0, 0)),
) -> dict[str, Any]:
    """Return the scale and translate that centre a map stack over its input.

    ``size`` is the input's ``(H, W)``, ``shape`` the stack's ``(C, H', W')``,
    ``world`` the input layer's last two ``(scale, translate)``.
    """
    step = np.array(
        [max(1, round(n / m)) for n, m in zip(size, shape[-2:], strict=True)]
    )
    offset = (np.array(size) - 1) / 2 - step * (np.array(shape[-2:]) - 1) / 2
    scale, translate = (np.asarray(v, dtype=float) for v in world)
    return {
        "scale": (1, *(scale * step)),
        "translate": (0, *(translate + scale * offset)),
    }


class LearnedFiltersWidget(QWidget):
    """See the current model's first-layer filters, what they do, what they resemble.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer to add layers to.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.conv: ConvWeights | None = None
        self.matches: list[lf.Match] = []
        self.worker = None  # the running background worker, if any
        self._new_results = False
        self._queue: deque = deque()  # requests waiting for it
        self._layers = OneATurn()  # results shown, a layer a turn
        ensure_pool_threads()
        warm_imports()
        self._build()
        self._connect()
        self.warm_up()

    # -- layout --------------------------------------------------------------

    def _build(self) -> None:
        self.model_label = Label(value=self._model_text())
        self.show_button = PushButton(text="Show the current model's filters")
        self.follow = CheckBox(text="Follow a running training", value=False)
        self.status = Label(value="")
        self.source = ComboBox(label="input", choices=self._sources)
        self.digit = SpinBox(label="digit index", max=9999)
        self.second = CheckBox(text="second layer's maps too", value=False)
        self.maps_button = PushButton(text="Show feature maps")
        self.filter_index = SpinBox(label="filter", max=0)
        self.channel = SpinBox(label="input channel", max=0)
        self.target = ComboBox(label="image", choices=self._image_names)
        self.apply_button = PushButton(text="Apply the filter to the image")
        self.send_button = PushButton(text="Send to the Kernels widget")
        self.controls = Container(
            widgets=[
                self.model_label, self.status, self.show_button, self.follow,
                Label(value="<b>Feature maps</b>"), self.source, self.digit,
                self.second, self.maps_button,
                Label(value="<b>One learned filter</b>"), self.filter_index,
                self.channel, self.target, self.apply_button, self.send_button,
            ]
        )  # fmt: skip
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumWidth(300)
        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.table)
        for label in (self.model_label, self.status):
            wrap(label)  # a long path or message must not widen the dock

    def warm_up(self) -> None:
        """Start the engine in the background, so that the first request is quick.

        TensorFlow takes seconds to load; the dock says "starting engine..."
        meanwhile instead of making the first button press wait for it.
        """
        # no get_engine() here: its first call starts multiprocessing's
        # resource tracker (a process), in the worker rather than the GUI
        self.status.value = "starting engine..."
        self._run(start_engine, self._on_ready, "starting engine")

    def _on_ready(self, message: str) -> None:
        if self.status.value == "starting engine...":
            self.status.value = ""

    def _connect(self) -> None:
        self.show_button.changed.connect(self.show_current_model)
        self.maps_button.changed.connect(self.show_feature_maps)
        self.apply_button.changed.connect(self.apply_filter)
        self.send_button.changed.connect(self.send_to_kernels)
        for event in (
            self.viewer.layers.events.inserted,
            self.viewer.layers.events.removed,
        ):
            event.connect(self.controls.reset_choices)
        signals = [
            (current_model.changed, self._on_model_changed),
            (current_model.epoch_ended, self._on_epoch_ended),
        ]
        for signal, slot in signals:
            signal.connect(slot)
        self.destroyed.connect(lambda *_: [s.disconnect(f) for s, f in signals])

    def _sources(self, *_: Any) -> list[str]:
        return [MNIST_SOURCE, *self._image_names()]

    def _image_names(self, *_: Any) -> list[str]:
        return [
            layer.name
            for layer in self.viewer.layers
            if layer._type_string == "image" and layer.name != FILTERS_LAYER
        ]

    def _model_text(self) -> str:
        return f"model: {current_model.path.name}"

    # -- background work -----------------------------------------------------

    def _run(self, func: Callable, done: Callable, desc: str, *args: Any) -> None:
        """Run ``func(*args)`` in a worker, one at a time (the engine is serial)."""
        self._queue.append((func, done, desc, args))
        if self.worker is None:
            self._start_next()

    def _start_next(self) -> None:
        func, done, desc, args = self._queue.popleft()
        self.worker = create_worker(
            func,
            *args,
            _start_thread=False,
            _progress={"desc": desc},
            _connect={"returned": done, "errored": self._on_error},
        )
        self.worker.finished.connect(self._on_finished)
        self.worker.start()

    def _on_finished(self) -> None:
        self.worker = None
        if self._queue:
            self._start_next()

    @property
    def busy(self) -> bool:
        """Whether a background request of this widget is running or waiting."""
        return self.worker is not None or bool(self._queue) or not self._layers.done

    def _on_error(self, exc: Exception) -> None:
        if self.status.value == "starting engine...":
            self.status.value = f"the engine did not start: {exc}"
        show_error(f"Learned filters: {exc}")

    # -- the filters ---------------------------------------------------------

    def show_current_model(self) -> None:
        """Read the current model's first layer in the engine, then show it."""
        path = current_model.path
        self.model_label.value = self._model_text()
        if not path.exists():
            show_error(
                f"No model at {path}: train one in the Training widget "
                "or load one first."
            )
            return
        self._run(first_layer, self._on_first_layer, "reading filters", str(path))

    def _on_first_layer(self, conv: ConvWeights) -> None:
        self.show_filters(conv, source=str(current_model.path))

    def show_filters(self, conv: ConvWeights, source: str = "") -> None:
        """Show ``conv``'s filters as tiles, their indices and closest kernels.

        The tiles and the matching are computed in the background (the first
        matching builds the kernel catalogue: seconds on a busy machine).
        """
        done = partial(self._show_filters, conv, source)
        self._run(filters_view, done, "matching filters", conv)

    def _show_filters(self, conv: ConvWeights, source: str, view: tuple) -> None:
        tiles, matches, table = view
        self.conv, self.matches = conv, matches
        self._new_results = False
        _, _, channels, filters = conv.kernel.shape
        self._fill_table(table)
        self.table.setColumnHidden(1, channels == 1)
        self.filter_index.max, self.channel.max = filters - 1, channels - 1
        steps = [
            partial(self._show_tiles, tiles, source, table),
            partial(self._show_labels, tiles, table),
        ]
        self._layers.run(  # a layer a turn of the event loop
            [*(keeping_selection(self.viewer, step) for step in steps), self._into_view]
        )

    def _into_view(self) -> None:
        if self._new_results:
            self.viewer.reset_view()  # bring the new tiles into view

    def _scene(self) -> np.ndarray | None:
        """Return the extent of the user's layers (not this dock's results)."""
        return scene_extent(
            layer for layer in self.viewer.layers if not layer.metadata.get(RESULT_KEY)
        )

    def _show_tiles(self, tiles: lf.FilterTiles, source: str, table: dict) -> None:
        limits = (-tiles.limit, tiles.limit)
        metadata = {"source": source, "matches": table["label"].tolist()}
        if FILTERS_LAYER in self.viewer.layers:
            layer = self.viewer.layers[FILTERS_LAYER]
            layer.data, layer.contrast_limits = tiles.image, limits
            layer.metadata.update(metadata)
            return
        self.viewer.add_image(
            tiles.image,
            name=FILTERS_LAYER,
            colormap=DIVERGING,
            contrast_limits=limits,
            interpolation2d="nearest",
            metadata={**metadata, RESULT_KEY: True},
            # beside the user's images, as tall as they are
            **beside(self._scene(), tiles.image.shape),
        )
        self._new_results = True

    def _show_labels(self, tiles: lf.FilterTiles, table: dict) -> None:
        """Outline each tile and write its index above it, as a label image.

        No Shapes or text layer: on Mesa llvmpipe removing one and drawing
        another crashes the viewer (README, Known issues). Tile ``k`` is
        label ``k + 1``: hovering it shows its row of the table.
        """
        if FILTERS_LAYER not in self.viewer.layers:
            return  # removed by the user before this turn
        texts = [str(f) for f in tiles.filters]
        data = annotations.box_labels(tiles.boxes, texts, tiles.image.shape, TEXELS)
        features = {"index": np.arange(1, len(texts) + 1), **table}
        where = self.viewer.layers[FILTERS_LAYER]
        step = np.asarray(where.scale) / TEXELS  # texels on the tiles' pixels
        place = {"scale": step, "translate": where.translate + (step - where.scale) / 2}
        layer = (
            self.viewer.layers[LABELS_LAYER]
            if LABELS_LAYER in self.viewer.layers
            else None
        )
        if isinstance(layer, Labels):
            layer.data = data
            layer.scale, layer.translate = place["scale"], place["translate"]
        else:
            if layer is not None:
                self.viewer.layers.remove(layer)
            colours = {None: "#333333", 0: "transparent"}
            layer = self.viewer.add_labels(
                data,
                name=LABELS_LAYER,
                colormap=DirectLabelColormap(color_dict=colours),
                metadata={RESULT_KEY: True},
                **place,
            )
        layer.features = features

    def _fill_table(self, table: dict) -> None:
        self.table.setRowCount(len(table["filter"]))
        for row in range(len(table["filter"])):
            r = table["r"][row]
            cells = [
                table["filter"][row],
                table["channel"][row],
                "-" if np.isnan(r) else f"{r:.2f}",
                table["closest"][row] or "(none)",
            ]
            for column, value in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(str(value)))
        self.table.resizeColumnsToContents()

    def _on_model_changed(self, path: Any) -> None:
        self.model_label.value = self._model_text()
        if self.conv is not None:  # filters on view: show the new model's
            self.show_current_model()

    def _on_epoch_ended(self, progress: Any) -> None:
        if self.follow.value and progress.first_layer is not None:
            self.show_filters(progress.first_layer, source=f"epoch {progress.epoch}")

    # -- feature maps --------------------------------------------------------

    def show_feature_maps(self) -> None:
        """Show the activation maps of the chosen digit or image layer's plane."""
        path = current_model.path
        if not path.exists():
            show_error(f"No model at {path}: train or load one first.")
            return
        image, world = self.digit.value, None
        if self.source.value != MNIST_SOURCE:
            layer = self.viewer.layers[self.source.value]
            world = (layer.scale[-2:], layer.translate[-2:])
            try:
                image = self._layer_plane(layer)
            except ValueError as exc:
                show_error(f"Feature maps: {exc}")
                return
        depth = 2 if self.second.value else 1
        done = partial(self._on_maps, world=world)
        self._run(feature_maps, done, "feature maps", str(path), image, depth)

    def _layer_plane(self, layer: Any) -> np.ndarray:
        if layer.multiscale:
            raise ValueError("multiscale images are not supported: pick another")
        plane = lf.current_plane(
            layer.data, self.viewer.dims.current_step, rgb=layer.rgb
        )
        if layer.rgb:
            show_warning(f"{layer.name} is RGB: converted to grey for the network")
        return lf.to_grey(plane, rgb=layer.rgb)

    def _on_maps(self, result: tuple, *, world: tuple | None) -> None:
        """Show the maps to the right of their input, one layer's maps a column.

        An MNIST digit (``world`` None) goes right of the user's images first,
        as tall as they are, so that its 28x28 maps are not a speck.
        """
        image, maps, limits = result
        with selection_kept(self.viewer):
            if world is None:
                where = beside(self._scene(), image.shape)
                self._set_image(DIGIT_LAYER, image, {"colormap": "gray", **where})
                world = (where["scale"], where["translate"])
            scale, (top, left) = (np.asarray(v, dtype=float) for v in world)
            width = image.shape[-1] * scale[-1] * (1 + GAP_FRACTION)
            for depth, (stack, clim) in enumerate(zip(maps, limits, strict=True), 1):
                shifted = (scale, (top, left + depth * width))
                kwargs = {
                    "colormap": "magma",
                    "contrast_limits": clim,
                    **placement(image.shape, stack.shape, shifted),
                }
                self._set_image(f"feature maps: layer {depth}", stack, kwargs)
        self.viewer.reset_view()  # the input and its maps in view

    def _set_image(self, name: str, data: np.ndarray, kwargs: dict) -> None:
        if "contrast_limits" not in kwargs:
            kwargs = {"contrast_limits": percentile_limits(data), **kwargs}
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = data
            for key in ("scale", "translate", "contrast_limits"):
                if key in kwargs:
                    setattr(layer, key, kwargs[key])
        else:
            metadata = {RESULT_KEY: True}
            self.viewer.add_image(data, name=name, metadata=metadata, **kwargs)

    # -- one filter ----------------------------------------------------------

    def selected_kernel(self) -> np.ndarray:
        """Return the chosen learned filter in the Kernels capability's convention.

        Raises
        ------
        ValueError
            When no filters are on view yet.
        """
        if self.conv is None:
            raise ValueError("no filters yet: show the current model's filters first")
        return lf.as_kernel(
            self.conv.kernel, self.filter_index.value, channel=self.channel.value
        )

    def apply_filter(self) -> None:
        """Convolve the chosen image layer with the chosen learned filter."""
        from napari_digits.kernels import apply_kernel

        try:
            weights = self.selected_kernel()
            layer = self.viewer.layers[self.target.value or ""]
            shape = layer.data.shape[-3:-1] if layer.rgb else layer.data.shape[-2:]
            lf.check_image_size(shape, weights.shape)
        except (KeyError, ValueError) as exc:
            show_error(f"Apply filter: {exc}")
            return
        name = f"{layer.name} * filter {self.filter_index.value}"
        where = {"scale": layer.scale, "translate": layer.translate}

        def done(result: np.ndarray) -> None:
            with selection_kept(self.viewer):
                self._set_image(name, result, {"colormap": "gray", **where})

        apply = partial(apply_kernel, rgb=layer.rgb)
        self._run(apply, done, "applying filter", layer.data, weights)

    def send_to_kernels(self) -> None:
        """Hand the chosen learned filter to the Kernels widget as a custom kernel.

        The Kernels widget pads an even-sized (2x2) filter to odd with zeros,
        which keeps its result.
        """
        try:
            weights = self.selected_kernel()
        except ValueError as exc:
            show_error(f"Send to Kernels: {exc}")
            return
        name = f"learned filter {self.filter_index.value}"
        self.kernels_widget().set_custom_kernel(weights, name=name)
        show_info(f"{name} is now the Kernels widget's custom kernel")

    def kernels_widget(self) -> Any:
        """Return the docked Kernels widget, docking one when there is none."""
        from napari_digits._widgets.kernels import KernelsWidget

        for widget in self.viewer.window.dock_widgets.values():
            if isinstance(widget, KernelsWidget):
                return widget
        _, widget = self.viewer.window.add_plugin_dock_widget(
            "napari-digits", "Kernels"
        )
        return widget
