"""The Kernels dock widget in a real viewer."""

import subprocess
import sys
import textwrap

import dask.array as da
import numpy as np
import pytest

from napari_digits import kernels
from napari_digits._widgets import kernels as kw
from napari_digits._widgets.kernels import KernelsWidget

RNG = np.random.default_rng(3)


@pytest.fixture
def notes(monkeypatch):
    """Record the widget's notifications instead of showing them."""
    seen = []
    for kind in ("error", "warning", "info"):
        monkeypatch.setattr(kw, f"show_{kind}", lambda m, k=kind: seen.append((k, m)))
    return seen


@pytest.fixture
def viewer_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    return viewer, KernelsWidget(viewer)


def _apply(qtbot, widget):
    """Apply and wait for the result layer (the worker may finish at once)."""
    layers = widget.viewer.layers
    count = len(layers)
    assert widget.apply() is not None
    qtbot.waitUntil(lambda: len(layers) == count + 1, timeout=30_000)
    return layers[-1]


def _image(shape, dtype):
    data = RNG.random(shape) * (1 if dtype is bool else 200)
    return (data > 0.5) if dtype is bool else data.astype(dtype)


CASES = [
    ((20, 24), np.uint8, False),
    ((20, 24), np.uint16, False),
    ((20, 24), np.int32, False),
    ((20, 24), np.float64, False),
    ((20, 24), bool, False),
    ((3, 20, 24), np.float32, False),
    ((20, 24, 3), np.uint8, True),
    ((20, 24, 4), np.uint8, True),
    ((2, 20, 24, 3), np.float32, True),
]


@pytest.mark.parametrize(("shape", "dtype", "rgb"), CASES)
def test_apply_adds_an_overlaying_float32_layer(
    viewer_widget, qtbot, shape, dtype, rgb
):
    viewer, widget = viewer_widget
    data = _image(shape, dtype)
    ndim = len(shape) - rgb
    src = viewer.add_image(
        data, name="src", rgb=rgb, scale=[0.5] * ndim, translate=[3.0] * ndim
    )
    widget.layer.value = src
    widget.kernel.value = "sobel"
    _apply(qtbot, widget)
    out = viewer.layers["src [sobel]"]
    assert out.rgb == rgb and out.data.dtype == np.float32
    np.testing.assert_allclose(out.data, kernels.apply_named(data, "sobel", rgb=rgb))
    np.testing.assert_array_equal(out.scale, src.scale)
    np.testing.assert_array_equal(out.translate, src.translate)
    if shape[-1] == 4:
        np.testing.assert_array_equal(out.data[..., 3], data[..., 3])


def test_parameters_border_mode_and_name(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    data = _image((30, 30), np.float32)
    widget.layer.value = viewer.add_image(data, name="img")
    widget.kernel.value = "gaussian"
    widget.params["sigma"].value = 2.5
    widget.mode.value = "constant"
    assert widget.params["amount"].native.isHidden()
    assert not widget.params["sigma"].native.isHidden()
    _apply(qtbot, widget)
    out = viewer.layers["img [gaussian sigma=2.5]"].data
    expected = kernels.apply_named(data, "gaussian", sigma=2.5, mode="constant")
    np.testing.assert_allclose(out, expected)


def test_the_displayed_axes_are_filtered(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    data = _image((5, 6, 7), np.float32)
    widget.layer.value = viewer.add_image(data, name="vol")
    viewer.dims.order = (1, 0, 2)  # rows now show axis 0, columns axis 2
    widget.kernel.value = "sobel_x"
    _apply(qtbot, widget)
    out = viewer.layers["vol [sobel_x]"].data
    np.testing.assert_allclose(out, kernels.apply_named(data, "sobel_x", axes=(0, 2)))


def test_a_dask_layer_stays_lazy(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    data = _image((4, 32, 32), np.float32)
    widget.layer.value = viewer.add_image(da.from_array(data, chunks=(1, 16, 16)))
    widget.kernel.value = "laplacian8"
    _apply(qtbot, widget)
    out = viewer.layers[-1].data
    assert isinstance(out, da.Array)
    np.testing.assert_allclose(out.compute(), kernels.apply_named(data, "laplacian8"))


def test_live_preview_follows_the_plane_and_the_parameters(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    data = _image((3, 16, 18), np.float32)
    widget.layer.value = viewer.add_image(data, name="stack", translate=(10, 0, 0))
    viewer.dims.set_current_step(0, 12)  # world 12 -> plane 2
    widget.live.value = True
    qtbot.waitUntil(lambda: "stack [sobel] preview" in viewer.layers, timeout=10_000)
    preview = viewer.layers["stack [sobel] preview"]
    assert preview.data.shape == (1, 16, 18)
    np.testing.assert_allclose(preview.data[0], kernels.apply_named(data[2], "sobel"))
    assert preview.translate[0] == 12
    widget.kernel.value = "box"  # debounced
    box = "stack [box size=3] preview"
    qtbot.waitUntil(lambda: preview.name == box, timeout=10_000)
    np.testing.assert_allclose(preview.data[0], kernels.apply_named(data[2], "box"))
    assert [layer.name for layer in viewer.layers] == ["stack", preview.name]
    assert widget._image_layers() == [("stack", viewer.layers["stack"])]
    widget.live.value = False
    assert len(viewer.layers) == 1


def test_heat_map_shows_the_weights(viewer_widget):
    _, widget = viewer_widget
    widget.kernel.value = "sobel"
    assert len(widget.grid.tables) == 2
    x = widget.grid.tables[0]
    assert [x.item(1, c).text() for c in range(3)] == ["2", "0", "-2"]
    widget.kernel.value = "custom"
    widget.custom.value = "1 2 3 4"
    assert not widget.grid.tables and "square" in widget.grid.message.text()


def test_custom_kernel_typed_and_normalised(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    data = _image((12, 12), np.uint8)
    widget.layer.value = viewer.add_image(data, name="img")
    widget.kernel.value = "custom"
    widget.custom.value = "1 1 1\n1 1 1\n1 1 1"
    widget.normalise.value = True
    _apply(qtbot, widget)
    out = viewer.layers["img [custom 3x3]"].data
    np.testing.assert_allclose(out, kernels.apply_named(data, "box", size=3), atol=1e-4)


def test_set_custom_kernel_from_a_learned_filter(viewer_widget, qtbot, notes):
    viewer, widget = viewer_widget
    data = _image((12, 12), np.float32)
    widget.layer.value = viewer.add_image(data, name="img")
    learned = np.array([[0.5, -1.0], [0.25, 2.0]])
    widget.set_custom_kernel(learned, name="filter 7")
    assert widget.kernel.value == "custom" and notes[0][0] == "info"
    _apply(qtbot, widget)
    out = viewer.layers["img [filter 7]"].data
    np.testing.assert_allclose(out, kernels.apply_kernel(data, learned), atol=1e-5)
    widget.set_custom_kernel(np.ones((17, 17)))
    assert notes[-1][0] == "error" and "15x15" in notes[-1][1]


def _bad_setups():
    def no_layer(viewer, widget):
        pass

    def labels(viewer, widget):
        viewer.add_labels(np.zeros((8, 8), dtype=np.uint8))
        viewer.add_points(np.zeros((2, 2)))

    def empty(viewer, widget):
        # napari holds a stack of 0 planes (not a 2D image with a 0 side)
        data = np.zeros((0, 8, 8))
        widget.layer.value = viewer.add_image(data, contrast_limits=(0, 1))

    def even(viewer, widget):
        widget.layer.value = viewer.add_image(np.zeros((8, 8)))
        widget.kernel.value = "custom"
        widget.custom.value = "1 0\n0 1"

    def text(viewer, widget):
        widget.layer.value = viewer.add_image(np.zeros((8, 8)))
        widget.kernel.value = "custom"
        widget.custom.value = "1 x 1\n1 1 1\n1 1 1"

    def nan(viewer, widget):
        data = np.zeros((8, 8))
        data[2, 3] = np.nan
        data[4, 4] = np.inf
        widget.layer.value = viewer.add_image(data)

    return {
        "no image layer": (no_layer, "error", "No image layer"),
        "labels and points": (labels, "error", "(Labels)"),
        "empty array": (empty, "error", "empty"),
        "even custom": (even, "error", "odd size"),
        "non-numeric custom": (text, "error", "numbers only"),
        "nan and inf": (nan, "warning", "2 NaN/inf"),
    }


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("case", list(_bad_setups()))
def test_bad_input_is_a_notification_and_changes_nothing(viewer_widget, notes, case):
    viewer, widget = viewer_widget
    setup, kind, text = _bad_setups()[case]
    setup(viewer, widget)
    before = [layer.name for layer in viewer.layers]
    assert widget.apply() is None
    assert [layer.name for layer in viewer.layers] == before
    assert notes and notes[-1][0] == kind and text in notes[-1][1]


def test_docks_from_the_plugin_manifest(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-digits", "portrait")
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Kernels")
    assert isinstance(widget, KernelsWidget)
    assert widget.layer.value is viewer.layers["portrait"]


def test_the_widget_never_imports_tensorflow(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        import napari
        import numpy as np
        from qtpy.QtCore import QThreadPool

        import napari_digits
        from napari_digits._widgets.kernels import KernelsWidget

        viewer = napari.Viewer(show=False)
        widget = KernelsWidget(viewer)
        widget.layer.value = viewer.add_image(np.ones((8, 8)))
        widget.apply()
        QThreadPool.globalInstance().waitForDone()
        viewer.close()
        assert "tensorflow" not in sys.modules, "tensorflow imported"
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


def test_a_deleted_widget_stops_listening_to_the_viewer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    before = len(viewer.dims.events.current_step.callbacks)
    widget = KernelsWidget(viewer)
    assert len(viewer.dims.events.current_step.callbacks) == before + 1
    with qtbot.waitSignal(widget.destroyed):
        widget.deleteLater()
    assert len(viewer.dims.events.current_step.callbacks) == before
    viewer.add_image(np.zeros((3, 8, 8)))
    viewer.dims.set_current_step(0, 2)


CRASH_WORKFLOW = """
import time
import numpy as np
import napari
from qtpy.QtWidgets import QApplication

def pump(seconds, until=lambda: False):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until():
        QApplication.instance().processEvents()
        time.sleep(0.01)

def previewed(name):
    return lambda: (
        widget.preview_worker is None
        and any(l.name.startswith(name) and l.name.endswith("preview")
                for l in viewer.layers)
    )

viewer = napari.Viewer()
_, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Kernels")
widget.live.value = True
for run in range(5):
    # the source alone with its preview, then deleted (issue 9, crash b)
    viewer.open_sample("napari-digits", "portrait")
    widget.layer.value = viewer.layers["portrait"]
    pump(60, previewed("portrait"))
    pump(0.5)
    names = [layer.name for layer in viewer.layers]
    assert names[0] == "portrait" and names[1].endswith("preview"), names
    viewer.layers.remove("portrait")
    pump(60, lambda: len(viewer.layers) == 0)
    assert len(viewer.layers) == 0, [l.name for l in viewer.layers]
    # another image stays: the preview moves to it; a layer below is deleted
    # and the preview is updated after that
    below = viewer.add_image(np.random.random((64, 64)), name="below")
    other = viewer.add_image(np.random.random((96, 80)) * 9, name="other")
    widget.layer.value = other
    pump(60, previewed("other"))
    viewer.layers.remove(below)
    pump(0.5)
    widget.kernel.value = "sharpen" if run % 2 else "gaussian"
    pump(1.0)
    pump(60, previewed("other"))
    pump(0.5)
    assert [l.name for l in viewer.layers][0] == "other"
    assert len(viewer.layers) == 2, [l.name for l in viewer.layers]
    viewer.layers.clear()
    pump(0.5)
viewer.close()
print("survived")
"""


@pytest.mark.slow  # a viewer in a subprocess, five times
def test_deleting_the_source_of_a_live_preview_never_crashes(tmp_path):
    """Five times the workflow that crashed the viewer (run in a subprocess)."""
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", CRASH_WORKFLOW],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    assert done.stdout.strip().endswith("survived")


def test_results_use_percentile_contrast_limits(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    data = _image((64, 64), np.float32)
    data[10, 10] = 500.0  # one outlier would make min..max limits dull
    widget.layer.value = viewer.add_image(data, name="img")
    widget.kernel.value = "sharpen"
    out = _apply(qtbot, widget)
    expected = np.percentile(out.data, [1, 99])
    np.testing.assert_allclose(out.contrast_limits, expected, rtol=1e-5)
    assert out.contrast_limits[1] < out.data.max() / 2
    widget.live.value = True
    qtbot.waitUntil(lambda: widget._preview_layer is not None, timeout=10_000)
    preview = widget._preview_layer
    np.testing.assert_allclose(
        preview.contrast_limits, np.percentile(preview.data, [1, 99]), rtol=1e-5
    )


def test_a_big_plane_is_previewed_strided_at_its_place(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    data = _image((2100, 1000), np.float32)
    widget.layer.value = viewer.add_image(data, name="big", scale=(2, 2))
    widget.live.value = True
    qtbot.waitUntil(lambda: widget._preview_layer is not None, timeout=30_000)
    preview = widget._preview_layer
    assert preview.data.shape == (700, 334)  # every 3rd pixel of the result
    assert preview.scale.tolist() == [6, 6]
    np.testing.assert_allclose(
        preview.data, kernels.apply_named(data, "sobel")[::3, ::3], rtol=1e-5
    )
    assert "1/3" in widget.status.value


def test_an_invalid_custom_kernel_marks_the_preview_stale(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    widget.layer.value = viewer.add_image(_image((20, 20), np.float32), name="img")
    widget.kernel.value = "custom"
    widget.live.value = True
    qtbot.waitUntil(lambda: widget._preview_layer is not None, timeout=10_000)
    widget.custom.value = "1 2\n3 4"  # even: invalid
    assert widget._preview_layer.name.endswith("(stale)")
    assert "stale" in widget.status.value
    widget.custom.value = "0 0 0\n0 1 0\n0 0 0"
    qtbot.waitUntil(
        lambda: not widget._preview_layer.name.endswith("(stale)"), timeout=10_000
    )


def test_the_preview_never_takes_the_selection(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    src = viewer.add_image(_image((20, 20), np.float32), name="img")
    widget.layer.value = src
    widget.live.value = True
    qtbot.waitUntil(lambda: widget._preview_layer is not None, timeout=10_000)
    assert viewer.layers.selection.active is src
    assert set(viewer.layers.selection) == {src}


def test_a_long_status_wraps_and_the_dock_stays_narrow(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1300, 850)
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Kernels")
    qtbot.wait(100)
    before = widget.width()
    widget.status.value = "word " * 100  # 500 characters
    widget.grid.set_message("reason " * 70)
    qtbot.wait(100)
    assert widget.status.native.wordWrap()
    assert widget.width() <= max(before, 450), (before, widget.width())
    assert viewer.window._qt_viewer.canvas.native.width() > 600
