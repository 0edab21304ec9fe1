"""The viewer's responsiveness: event-loop stalls in a real napari viewer.

A QTimer probe fires every 10 ms in a real napari viewer (shown, under Xvfb
when there is no display) while the camera zooms back and forth, as a user
would; every gap between two ticks beyond the 10 ms is time the event loop
was busy. Each scenario is one function ``scenario_<name>(viewer, probe)``
that sets up its own fresh viewer, drives the plugin as a user would while
the probe runs, and returns one row (see :meth:`Probe.row`). The idle viewer
runs first as the baseline of the same run (the machine may be shared: compare
each scenario with it). Target: worst stall <= 50 ms in every scenario.

A watchdog thread looks at the GUI thread whenever the probe is late by more
than :data:`STALL_MS` and records where it is (the innermost frames of the
plugin, napari and vispy): ``stall_at`` names the place seen most often.

Usage::

    .venv/bin/python bench/run.py viewer                      # every scenario
    BENCH_VIEWER=idle,kernels_4096 .venv/bin/python bench/run.py viewer
    BENCH_VIEWER_BEFORE=../old-checkout/src .venv/bin/python bench/run.py viewer

With ``BENCH_VIEWER_BEFORE`` naming another checkout's ``src``, each scenario
runs twice in turn, with that code ("before") and with this one ("after"),
so that both see the same machine load. ``gui_cpu_s`` is the CPU time the
GUI thread itself used during the measure: unlike the gaps, it hardly
depends on what else runs on the machine.

(needs MNIST for the training scenario: MNIST_DIR).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

TICK_MS = 10
BASELINE_S = 8.0
TARGET_MS = 50.0
#: the watchdog samples the GUI thread when the probe is this late (ms)
STALL_MS = 40.0
REPO = Path(__file__).resolve().parents[1]
MARK = "bench-viewer rows: "
#: generous upper bound for one scenario's work (seconds)
LIMIT_S = 300.0


@contextlib.contextmanager
def display():
    """Use the current display, else start a virtual one (Xvfb)."""
    if os.environ.get("DISPLAY"):
        yield
        return
    try:
        from pyvirtualdisplay import Display
    except ImportError:
        Display = None
    if Display is not None:
        with Display(visible=False, size=(1400, 900)):
            yield
        return
    proc = subprocess.Popen(["Xvfb", ":99", "-screen", "0", "1400x900x24"])
    os.environ["DISPLAY"] = ":99"
    try:
        time.sleep(1.0)
        yield
    finally:
        proc.terminate()
        proc.wait()


class Probe:
    """Record the times of a 10 ms QTimer and nudge the camera as a user would."""

    def __init__(self, viewer) -> None:
        from qtpy.QtCore import Qt, QTimer

        self.viewer = viewer
        self.ticks: list[float] = []
        self.stalls: collections.Counter = collections.Counter()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self._gui = threading.get_ident()
        self._watching = False
        self._cpu = 0.0

    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())
        if len(self.ticks) % 5 == 0:  # zoom in and out: the canvas redraws
            phase = len(self.ticks) // 5 % 20
            camera = getattr(self.viewer, "scene", self.viewer).camera
            camera.zoom *= 1.02 if phase < 10 else 1 / 1.02

    def _watch(self) -> None:
        """Sample the GUI thread's stack while the probe is late (a stall)."""
        while self._watching:
            time.sleep(0.01)
            last = self.ticks[-1] if self.ticks else None
            if last is None or (time.perf_counter() - last) * 1000 < STALL_MS:
                continue
            frame = sys._current_frames().get(self._gui)
            if frame is not None:
                self.stalls[_where(frame)] += 1

    def start(self) -> None:
        """Start ticking (and watching) from now on."""
        self.ticks.clear()
        self.stalls.clear()
        self._cpu = time.thread_time()
        self.timer.start()
        self._watching = True
        threading.Thread(target=self._watch, daemon=True).start()

    def stop(self) -> None:
        """Stop ticking."""
        self.timer.stop()
        self._watching = False
        self._cpu = time.thread_time() - self._cpu

    def wait(self, done, limit: float = LIMIT_S) -> bool:
        """Run the event loop (ticking) until ``done()`` or ``limit`` seconds."""
        from qtpy.QtCore import QEventLoop, QTimer

        if done():
            return True
        loop = QEventLoop()
        check = QTimer()
        check.timeout.connect(lambda: done() and loop.quit())
        check.start(20)
        QTimer.singleShot(int(limit * 1000), loop.quit)
        loop.exec_()
        check.stop()
        return bool(done())

    def sleep(self, seconds: float) -> None:
        """Run the event loop for ``seconds``."""
        end = time.monotonic() + seconds
        self.wait(lambda: time.monotonic() >= end, seconds + 1)

    def run_until(self, done, limit: float) -> None:
        """Tick from now until ``done()`` or ``limit`` seconds, then stop."""
        self.start()
        self.wait(done, limit)
        self.stop()

    def row(self, scenario: str, **extra) -> dict:
        """Summarize the gaps between ticks."""
        gaps = np.diff(self.ticks) * 1000.0 if len(self.ticks) > 1 else np.zeros(1)
        where = self.stalls.most_common(1)
        return {
            "scenario": scenario,
            "seconds": round(self.ticks[-1] - self.ticks[0], 1) if self.ticks else 0,
            "ticks": len(self.ticks),
            "max_gap_ms": round(float(gaps.max()), 1),
            "p99_gap_ms": round(float(np.percentile(gaps, 99)), 1),
            "gaps_over_50ms": int((gaps > TARGET_MS).sum()),
            "target_ms": TARGET_MS,
            "gui_cpu_s": round(self._cpu, 2),
            "load_avg_1min": round(os.getloadavg()[0], 2),
            **extra,
            "stall_at": where[0][0] if where else "",
        }


def _where(frame) -> str:
    """Name the innermost plugin, napari or vispy frames of a stack."""
    names = []
    for entry in traceback.extract_stack(frame)[::-1]:
        path = entry.filename
        for package in ("napari_digits", "napari", "vispy", "matplotlib", "numpy"):
            if f"/{package}/" in path:
                short = path.split(f"/{package}/", 1)[1]
                names.append(f"{package}/{short}:{entry.lineno} {entry.name}")
                break
        if len(names) == 3:
            break
    return " < ".join(names)


# -- helpers shared by the scenarios ------------------------------------------


def new_viewer():
    """Return a fresh, shown viewer of a fixed size."""
    import napari

    viewer = napari.Viewer(title="bench viewer")
    viewer.window._qt_window.resize(1300, 850)
    return viewer


def dock(viewer, name: str):
    """Dock one of the plugin's widgets; return it."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", name)
    return widget


def settle(probe: Probe, seconds: float = 1.0) -> None:
    """Let a fresh viewer draw itself before measuring."""
    probe.sleep(seconds)


def mnist_dir() -> str:
    """Where the full MNIST is."""
    return os.environ.get("MNIST_DIR") or str(REPO.parent / "shared/data/mnist")


def _engine_idle(role: str):
    from napari_digits.engine.client import get_engine

    engine = get_engine(role)
    return lambda: engine.alive and not engine.busy


# -- scenarios ------------------------------------------------------------------


def scenario_idle(viewer, probe: Probe) -> dict:
    """The baseline: a viewer with an image, nothing running."""
    viewer.open_sample("napari-digits", "portrait")
    settle(probe)
    probe.run_until(lambda: False, BASELINE_S)
    return probe.row("idle viewer (baseline)")


def scenario_plain_layers(viewer, probe: Probe) -> dict:
    """No plugin: add a 64x64 Labels and a 64x64 Image layer to a plain viewer.

    What napari itself costs the event loop for one small layer: the floor
    under every scenario that shows a result as a new layer.
    """
    import pandas  # noqa: F401  (napari imports it for the first Labels layer)

    viewer.open_sample("napari-digits", "portrait")
    settle(probe)
    probe.start()
    probe.sleep(0.5)
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="labels")
    probe.sleep(1.0)
    viewer.add_image(np.zeros((64, 64), np.float32), name="image")
    probe.sleep(1.0)
    probe.stop()
    return probe.row("plain napari, no plugin: add a 64x64 Labels, then Image layer")


def scenario_open_docks(viewer, probe: Probe) -> dict:
    """Open the Kernels, Learned filters and Training docks, one by one."""
    viewer.open_sample("napari-digits", "portrait")
    settle(probe)
    probe.start()
    for name in ("Kernels", "Learned filters", "Training"):
        dock(viewer, name)
        probe.sleep(1.0)
    probe.sleep(2.0)
    probe.stop()
    return probe.row("opening the Kernels, Learned filters and Training docks")


def scenario_first_filters(viewer, probe: Probe) -> dict:
    """Open Learned filters and show the filters at once (engine starts)."""
    viewer.open_sample("napari-digits", "portrait")
    settle(probe)
    probe.start()
    start = time.perf_counter()
    widget = dock(viewer, "Learned filters")
    widget.show_current_model()
    probe.wait(lambda: "learned filters" in viewer.layers and not widget.busy)
    wait_s = time.perf_counter() - start
    probe.sleep(1.0)
    probe.stop()
    return probe.row("Learned filters: first Show (engine start)", wait_s=wait_s)


def scenario_training_follow(viewer, probe: Probe) -> dict:
    """Train 2 short epochs with the Learned filters dock following."""
    from napari_digits.engine import protocol as p

    viewer.open_sample("napari-digits", "portrait")
    filters = dock(viewer, "Learned filters")
    training = dock(viewer, "Training")
    probe.wait(_engine_idle("training"), 120)  # devices listed
    filters.follow.value = True
    out = Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    config = p.TrainConfig(
        out=str(out / "model.keras"),
        epochs=2,
        train_limit=6000,
        test_limit=1000,
        mnist=mnist_dir(),
    )
    settle(probe)
    handlers = _timed(training, "_on_events")
    probe.start()
    training.start(config)
    probe.wait(lambda: not training.running)
    probe.sleep(1.0)  # the end-of-training handlers and redraws
    probe.stop()
    shutil.rmtree(out, ignore_errors=True)
    return probe.row(
        "training (6k images, 2 epochs), Learned filters following",
        max_handler_ms=round(max(handlers, default=0.0), 1),
    )


def _preview_scenario(viewer, probe: Probe, data, name: str, steps) -> list:
    """Live-preview kernels on ``data``; each step changes one thing.

    Returns the durations (ms) of the handler that shows each preview.
    """
    viewer.add_image(data, name=name)
    widget = dock(viewer, "Kernels")
    handlers = _timed(widget, "_show_preview")
    widget.layer.value = viewer.layers[name]
    settle(probe)
    probe.start()
    widget.live.value = True
    probe.wait(lambda: widget._preview_layer is not None)
    for step in steps:
        step(viewer, widget)
        probe.sleep(0.4)  # past the debounce
        probe.wait(lambda: _preview_idle(widget))
    probe.sleep(1.0)
    probe.stop()
    return handlers


def _preview_idle(widget) -> bool:
    worker = widget.preview_worker
    return worker is None or not worker.is_running


def _kernel(key: str):
    def step(viewer, widget):
        widget.kernel.value = key

    return step


def _plane(index: int):
    def step(viewer, widget):
        viewer.dims.set_current_step(0, index)

    return step


def scenario_kernels_4096(viewer, probe: Probe) -> dict:
    """Live preview of four kernels on a 4096x4096 float32 image."""
    data = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
    steps = [_kernel(k) for k in ("sharpen", "gaussian", "laplacian8", "sobel")]
    shown = _preview_scenario(viewer, probe, data, "big", steps)
    return probe.row(
        "Kernels live preview, 4096x4096 float32, 4 kernels",
        max_handler_ms=round(max(shown, default=0.0), 1),
    )


def scenario_kernels_stack(viewer, probe: Probe) -> dict:
    """Live preview on a 30-plane 2048x2048 uint8 stack while the plane moves."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (30, 2048, 2048), dtype=np.uint8)
    steps = [_plane(i) for i in (5, 10, 20, 29)] + [_kernel("sharpen")]
    shown = _preview_scenario(viewer, probe, data, "stack", steps)
    return probe.row(
        "Kernels live preview, 30x2048x2048 uint8, plane moves",
        max_handler_ms=round(max(shown, default=0.0), 1),
    )


def scenario_feature_maps(viewer, probe: Probe) -> dict:
    """Feature maps of an MNIST digit, then of the portrait (both layers)."""
    viewer.open_sample("napari-digits", "portrait")
    widget = dock(viewer, "Learned filters")
    widget.show_current_model()  # the engine starts, outside the measure
    probe.wait(lambda: not widget.busy, 180)
    settle(probe)
    probe.start()
    for source in ("MNIST test digit", "portrait"):
        widget.source.value = source
        widget.second.value = True
        widget.show_feature_maps()
        probe.wait(lambda: not widget.busy)
        probe.sleep(1.0)
    probe.stop()
    return probe.row("feature maps: MNIST digit, then the 512x512 portrait")


#: the Read digits pages: (rows, cols), digit height, tiles of a made page
PAGES = {"a4": ((3508, 2480), 64, 1), "8000": ((2000, 2000), 48, 4)}


def _page(key: str) -> np.ndarray:
    """A synthetic scanned page (cached: drawing one takes a while).

    ``a4``: A4 at 300 dpi, about 500 digits; ``8000``: 8000x8000, about 7,000
    digits (a 2000x2000 page tiled 4x4).
    """
    shape, height, tiles = PAGES[key]
    cache = Path(tempfile.gettempdir(), "napari-digits-bench", f"page-{key}.npy")
    if cache.exists():
        return np.load(cache)
    from napari_digits.data import load_mnist
    from napari_digits.synthetic import make_page

    mnist = load_mnist()
    page = make_page(
        mnist.x_test, mnist.y_test, shape=shape, digit_height=height, seed=1
    ).image
    page = np.tile(page, (tiles, tiles, 1))
    cache.parent.mkdir(exist_ok=True)
    np.save(cache, page)
    return page


def _read_scenario(viewer, probe: Probe, key: str) -> dict:
    """Read a page with the Read digits dock, the engine warm."""
    from napari_digits.current_model import current_model
    from napari_digits.engine.client import get_engine
    from napari_digits.engine.protocol import Predict

    page = viewer.add_image(_page(key), name=f"page {key}", rgb=True)
    widget = dock(viewer, "Read digits")
    engine = get_engine()
    engine.call(Predict(model=str(current_model.path), images=np.zeros((1, 28, 28))))
    settle(probe, 2.0)
    widget.layer.value = page
    probe.start()
    start = time.perf_counter()
    worker = widget.start()
    probe.wait(
        lambda: (
            not worker.is_running
            and widget.run_button.enabled
            and getattr(widget, "layers_ready", True)
        )
    )
    wait_s = time.perf_counter() - start
    probe.sleep(3.0)  # the results drawn while the camera zooms
    probe.stop()
    shape = "x".join(str(n) for n in page.data.shape[:2])
    return probe.row(
        f"Read digits: {shape} page, {len(widget.rows)} digits",
        wait_s=round(wait_s, 1),
    )


def scenario_read_a4(viewer, probe: Probe) -> dict:
    """Find and classify the digits of an A4 page at 300 dpi (about 500)."""
    return _read_scenario(viewer, probe, "a4")


def scenario_read_8000(viewer, probe: Probe) -> dict:
    """Find and classify the digits of an 8000x8000 page (about 7,000)."""
    return _read_scenario(viewer, probe, "8000")


def _timed(owner, name: str) -> list[float]:
    """Time every call of ``owner.name`` (ms) into the returned list."""
    method, times = getattr(owner, name), []

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            times.append((time.perf_counter() - start) * 1000.0)

    setattr(owner, name, timed)
    return times


#: every scenario, in the order they run (the baseline first)
SCENARIOS = {
    name.removeprefix("scenario_"): func
    for name, func in list(globals().items())
    if name.startswith("scenario_")
}


def measure(names: list[str]) -> list[dict]:
    """Run the named scenarios, each in a fresh viewer; return their rows."""
    from napari_digits.engine.client import shutdown_all

    os.environ.setdefault("MNIST_DIR", mnist_dir())
    rows = []
    for name in names:
        viewer = new_viewer()
        probe = Probe(viewer)
        try:
            rows.append(SCENARIOS[name](viewer, probe))
        except Exception as exc:  # one broken scenario must not hide the others
            rows.append({"scenario": name, "error": f"{type(exc).__name__}: {exc}"})
            traceback.print_exc()
        finally:
            probe.stop()
            viewer.close()
            shutdown_all()  # each scenario starts its engines cold
    return rows


def selected() -> list[str]:
    """The scenarios named in BENCH_VIEWER (all by default), baseline first."""
    wanted = os.environ.get("BENCH_VIEWER", "")
    names = [n.strip() for n in wanted.split(",") if n.strip()] or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s) {sorted(unknown)}: {list(SCENARIOS)}")
    return ["idle", *(n for n in names if n != "idle")]


def run() -> list[dict]:
    """Run each selected scenario in its own child process, with a display.

    The viewer lives in a child process so that its Qt application ends
    before the virtual display it drew on, and so that a scenario that
    crashes the viewer (a segfault) is reported as its own row instead of
    ending the benchmark.
    """
    before = os.environ.get("BENCH_VIEWER_BEFORE")
    codes = {"before": before, "after": str(REPO / "src")} if before else {"": None}
    rows = []
    with display():
        for name in selected():
            for code, src in codes.items():
                row = _run_child(name, src)
                rows.append({"code": code, **row} if code else row)
    return rows


def _run_child(name: str, src: str | None = None) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    child = subprocess.run(
        [sys.executable, __file__, name],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    for line in child.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line.removeprefix(MARK))[0]
    tail = child.stderr.strip().splitlines()[-1:] or [""]
    how = f"crashed (exit {child.returncode})"
    return {"scenario": name, "error": f"{how}: {tail[0][:200]}"}


if __name__ == "__main__":
    print(MARK + json.dumps(measure(sys.argv[1:] or selected())), flush=True)
