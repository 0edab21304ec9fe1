"""The Learned filters widget in a real viewer, with the real engine process."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels

from make_model import build_models, first_layer
from napari_digits import annotations
from napari_digits import learned_filters as lf
from napari_digits._widgets import learned_filters as widget_module
from napari_digits._widgets.learned_filters import (
    FILTERS_LAYER,
    LABEL_SPACE,
    LABELS_LAYER,
    TEXELS,
    LearnedFiltersWidget,
)
from napari_digits.current_model import current_model
from napari_digits.engine.protocol import ConvWeights, TrainingProgress
from napari_digits.kernels import apply_kernel

TIMEOUT = 120_000  # ms: the first request starts the engine (imports TensorFlow)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return build_models(tmp_path_factory.getbasetemp() / "learned_filter_models")


@pytest.fixture
def notes(monkeypatch):
    """Record the widget's notifications instead of showing them."""
    seen = {"error": [], "warning": [], "info": []}
    for kind, messages in seen.items():
        monkeypatch.setattr(widget_module, f"show_{kind}", messages.append)
    return seen


@pytest.fixture
def widget(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = LearnedFiltersWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Learned filters")
    yield widget
    current_model.reset()  # reloads the filters on view: wait for it too
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)


def use(models, name):
    current_model.set(models / f"{name}.keras")
    return first_layer(models, name)


def wait(qtbot, widget):
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)


def show_model(qtbot, widget):
    widget.show_current_model()
    wait(qtbot, widget)


@pytest.mark.parametrize("name", ["conv2x2", "conv3x3", "conv5x5", "rgb3x3"])
def test_tiles_show_every_filter_of_the_first_layer(widget, qtbot, models, notes, name):
    conv = use(models, name)
    show_model(qtbot, widget)
    assert notes["error"] == []
    h, w, cin, n = conv.kernel.shape
    image = widget.viewer.layers[FILTERS_LAYER]
    labels = widget.viewer.layers[LABELS_LAYER]
    assert isinstance(labels, Labels)  # no Shapes, no text (issue 9)
    features = labels.features
    assert len(features) == n * cin == widget.table.rowCount()
    assert features["index"].tolist() == list(range(1, n * cin + 1))
    zoom, t = lf.default_zoom(h, w), TEXELS
    boxes = lf.tile_filters(conv.kernel, label_space=LABEL_SPACE).boxes
    tops = []
    pairs = zip(features["filter"], features["channel"], boxes, strict=True)
    for k, (f, c, (r0, c0, r1, c1)) in enumerate(pairs):
        # tile k is outlined by label k + 1, its index written above it
        mask = labels.data == k + 1
        assert mask[r0 * t - 1, c0 * t : c1 * t].all()  # the top edge
        assert not mask[r0 * t : r1 * t, c0 * t : c1 * t].any()  # the tile shows
        if c0 > 0:
            assert mask[r0 * t : r1 * t, c0 * t - 1].all()  # the left edge
        index = sum(annotations.glyphs()[d].sum() for d in str(f))
        assert mask[: r0 * t - 1].sum() == index
        assert (r1 - r0, c1 - c0) == (h * zoom, w * zoom)
        tile = image.data[r0:r1, c0:c1]
        np.testing.assert_allclose(tile[::zoom, ::zoom], conv.kernel[:, :, c, f])
        tops.append(r0)
    limit = np.abs(conv.kernel).max()
    np.testing.assert_allclose(image.contrast_limits, (-limit, limit), rtol=1e-6)
    assert image.colormap.name == "RdBu_r"
    if cin > 1:  # one row of tiles per input channel
        assert len(set(tops)) == cin
    assert widget.filter_index.max == n - 1 and widget.channel.max == cin - 1


def test_sobel_and_gaussian_filters_are_named_back(widget, qtbot, models):
    use(models, "conv3x3")
    show_model(qtbot, widget)
    assert widget.table.rowCount() == 8
    use(models, "sobel_gauss")  # filters on view follow the current model
    wait(qtbot, widget)
    assert widget.table.rowCount() == 2
    features = widget.viewer.layers[LABELS_LAYER].features
    assert features["closest"].tolist() == ["Sobel x", "Gaussian blur"]
    np.testing.assert_allclose(features["r"], 1.0, atol=1e-5)
    assert [widget.table.item(row, 3).text() for row in range(2)] == [
        "Sobel x",
        "Gaussian blur",
    ]
    assert widget.table.item(0, 2).text() == "1.00"
    assert widget.table.isColumnHidden(1)  # one input channel: no channel column
    assert widget.viewer.layers[FILTERS_LAYER].metadata["matches"][0] == (
        "filter 0 ~ Sobel x, r = 1.00"
    )


def test_feature_maps_of_a_digit_equal_numpy(
    widget, qtbot, models, mnist_dir, monkeypatch
):
    from napari_digits.data import load_mnist

    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    conv = use(models, "conv3x3")
    widget.digit.value = 7
    widget.second.value = True
    widget.show_feature_maps()
    wait(qtbot, widget)
    digit = load_mnist(mnist_dir).x_test[7] / 255
    expected = lf.activation_maps(digit, conv, padding="valid")  # relu + bias
    maps = widget.viewer.layers["feature maps: layer 1"]
    assert maps.data.shape == (8, 26, 26)
    np.testing.assert_allclose(np.moveaxis(maps.data, 0, -1), expected, atol=1e-5)
    digit_layer = widget.viewer.layers["MNIST test digit"]
    # right of the digit, row for row, at the digit's (visible) scale
    assert maps.scale[1:].tolist() == digit_layer.scale.tolist()
    assert maps.translate[1] == digit_layer.translate[0] + digit_layer.scale[0]
    assert maps.translate[2] > digit_layer.extent.world[1][1]
    np.testing.assert_allclose(
        maps.contrast_limits, np.percentile(maps.data, [1, 99]), rtol=1e-5
    )
    assert widget.viewer.layers["feature maps: layer 2"].data.shape == (5, 12, 12)
    np.testing.assert_allclose(widget.viewer.layers["MNIST test digit"].data, digit)


def test_feature_maps_of_an_rgb_layer_plane(widget, qtbot, models, notes):
    conv = use(models, "conv2x2")  # padding "same"
    rgb = np.random.default_rng(0).integers(0, 256, (2, 20, 17, 3), dtype=np.uint8)
    widget.viewer.add_image(
        rgb, name="photo", rgb=True, scale=(1, 2, 2), translate=(0, 5, 0)
    )
    widget.viewer.dims.set_current_step(0, 1)
    widget.source.value = "photo"
    widget.show_feature_maps()
    wait(qtbot, widget)
    assert any("converted to grey" in message for message in notes["warning"])
    grey = lf.to_grey(rgb[1], rgb=True)
    expected = lf.activation_maps(grey, conv, padding="same")
    maps = widget.viewer.layers["feature maps: layer 1"].data
    np.testing.assert_allclose(np.moveaxis(maps, 0, -1), expected, atol=1e-5)
    assert "feature maps: layer 2" not in widget.viewer.layers
    # the maps lie beside the photo, row for row ("same" padding: pixel for pixel)
    layer = widget.viewer.layers["feature maps: layer 1"]
    photo = widget.viewer.layers["photo"]
    assert layer.scale[1:].tolist() == [2, 2] and layer.translate[1] == 5
    assert layer.translate[2] > photo.extent.world[1][-1]
    assert set(widget.viewer.layers.selection) == {photo}  # the user's choice kept


def test_follow_mode_refreshes_the_tiles_at_every_epoch(widget, qtbot):
    assert not widget.follow.value  # off by default
    mine = widget.viewer.add_image(np.zeros((50, 60)), name="mine")
    widget.follow.value = True
    kernels = np.random.default_rng(1).normal(size=(2, 3, 3, 1, 4)).astype(np.float32)
    for epoch, kernel in enumerate(kernels, start=1):
        progress = TrainingProgress(
            epoch=epoch, epochs=2, batch=10, batches=10, loss=0.1, epoch_end=True,
            first_layer=ConvWeights(kernel, np.zeros(4, np.float32), "relu"),
        )  # fmt: skip
        current_model.epoch_ended.emit(progress)
        wait(qtbot, widget)
        layer = widget.viewer.layers[FILTERS_LAYER]
        tiles = lf.tile_filters(kernel, label_space=LABEL_SPACE)
        np.testing.assert_array_equal(layer.data, tiles.image)
        assert layer.metadata["source"] == f"epoch {epoch}"
        assert widget.viewer.layers.selection.active is mine  # never taken
        assert set(widget.viewer.layers.selection) == {mine}
    widget.follow.value = False
    current_model.epoch_ended.emit(
        progress.__class__(**{**progress.__dict__, "epoch": 3})
    )
    wait(qtbot, widget)
    assert widget.viewer.layers[FILTERS_LAYER].metadata["source"] == "epoch 2"


def test_apply_a_learned_filter_like_the_kernels_widget(widget, qtbot, models):
    conv = use(models, "conv3x3")
    show_model(qtbot, widget)
    image = np.random.default_rng(2).random((30, 25)).astype(np.float32)
    widget.viewer.add_image(image, name="noise")
    widget.target.value = "noise"
    widget.filter_index.value = 2
    widget.apply_filter()
    wait(qtbot, widget)
    result = widget.viewer.layers["noise * filter 2"].data
    weights = conv.kernel[:, :, 0, 2]
    np.testing.assert_allclose(result, apply_kernel(image, np.flip(weights)), atol=1e-6)
    # inside the border it is the network's own (correlation) response
    linear = ConvWeights(conv.kernel[..., 2:3], np.zeros(1), "linear")
    inner = lf.activation_maps(image, linear)[..., 0]
    np.testing.assert_allclose(result[1:-1, 1:-1], inner, atol=1e-5)


def test_bad_input_is_a_notification_and_changes_nothing(
    widget, qtbot, models, notes, tmp_path
):
    current_model.set(tmp_path / "missing.keras")
    widget.show_current_model()
    assert "No model" in notes["error"][-1]
    current_model.set(models / "dense.keras")
    show_model(qtbot, widget)
    assert "convolution" in notes["error"][-1]
    assert FILTERS_LAYER not in widget.viewer.layers
    widget.apply_filter()
    assert "show the current model's filters first" in notes["error"][-1]
    use(models, "conv5x5")
    show_model(qtbot, widget)
    widget.viewer.add_image(np.ones((3, 40)), name="thin")
    layers = len(widget.viewer.layers)
    widget.source.value = widget.target.value = "thin"
    widget.show_feature_maps()
    wait(qtbot, widget)
    assert "smaller than the filter" in notes["error"][-1]
    widget.apply_filter()
    assert "smaller than the filter" in notes["error"][-1]
    assert len(widget.viewer.layers) == layers
    use(models, "rgb3x3")
    widget.source.value = "MNIST test digit"
    widget.show_feature_maps()
    wait(qtbot, widget)
    assert "pick a 1-channel model" in notes["error"][-1]
    assert len(widget.viewer.layers) == layers


@pytest.mark.parametrize("name", ["conv2x2", "conv3x3"])
def test_send_a_learned_filter_to_the_kernels_widget(
    widget, qtbot, models, notes, name
):
    from napari_digits._widgets.kernels import KernelsWidget
    from napari_digits.kernels import pad_to_odd, parse_kernel

    conv = use(models, name)
    widget.send_to_kernels()
    assert "show the current model's filters first" in notes["error"][-1]
    show_model(qtbot, widget)
    widget.filter_index.value = 1
    widget.send_to_kernels()
    kernels_widget = widget.kernels_widget()
    assert isinstance(kernels_widget, KernelsWidget)
    assert list(widget.viewer.window.dock_widgets.values()).count(kernels_widget) == 1
    assert kernels_widget.kernel.value == "custom"
    expected = pad_to_odd(np.flip(conv.kernel[:, :, 0, 1]))
    np.testing.assert_allclose(
        parse_kernel(kernels_widget.custom.value), expected, rtol=1e-5
    )
    assert "learned filter 1" in notes["info"][-1]


def test_tiles_go_beside_the_users_image_and_into_view(widget, qtbot, models):
    use(models, "conv3x3")
    image = widget.viewer.add_image(np.zeros((300, 200)), name="page", translate=(7, 3))
    show_model(qtbot, widget)
    tiles = widget.viewer.layers[FILTERS_LAYER]
    labels = widget.viewer.layers[LABELS_LAYER]
    (top, left), (bottom, right) = image.extent.world
    assert tiles.translate[0] == top and tiles.translate[1] > right
    # as tall as the image, so that the tiles are visible next to it
    assert tiles.extent.world[1][0] == pytest.approx(bottom, rel=0.02)
    # texels on the tiles' pixels: the pixel edges coincide
    np.testing.assert_allclose(labels.scale * TEXELS, tiles.scale)
    np.testing.assert_allclose(
        labels.translate - labels.scale / 2, tiles.translate - tiles.scale / 2
    )
    centre = getattr(widget.viewer, "scene", widget.viewer).camera.center[-1]
    assert left < centre < tiles.extent.world[1][1]  # both in view
    assert widget.viewer.layers.selection.active is image


def test_a_long_status_wraps_and_the_dock_stays_narrow(widget, qtbot):
    before = widget.width()
    widget.status.value = "word " * 100  # 500 characters
    widget.model_label.value = "model: " + "x" * 400
    qtbot.wait(100)
    assert widget.status.native.wordWrap()
    assert widget.width() <= max(before, 450), (before, widget.width())


def test_the_engine_starts_when_the_dock_opens(make_napari_viewer, qtbot, engine):
    engine.shutdown()
    viewer = make_napari_viewer()
    widget = LearnedFiltersWidget(viewer)
    assert widget.status.value == "starting engine..." and widget.busy
    wait(qtbot, widget)
    assert widget.status.value == "" and engine.alive
