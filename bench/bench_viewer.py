"""The viewer's responsiveness while a training runs in the engine process.

A QTimer probe fires every 10 ms in a real napari viewer (shown, under Xvfb
when there is no display) while the camera zooms back and forth, as a user
would; every gap between two ticks beyond the 10 ms is time the event loop
was busy. Measured twice in one run: with the viewer idle (baseline), and
while the Training dock drives a short training in the engine (progress
bar, curves, notifications). Target: worst stall <= 50 ms.

Usage: ``.venv/bin/python bench/run.py viewer`` (needs MNIST: MNIST_DIR).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TICK_MS = 10
BASELINE_S = 10.0
TARGET_MS = 50.0
REPO = Path(__file__).resolve().parents[1]
MARK = "bench-viewer rows: "


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
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())
        if len(self.ticks) % 5 == 0:  # zoom in and out: the canvas redraws
            phase = len(self.ticks) // 5 % 20
            self.viewer.camera.zoom *= 1.02 if phase < 10 else 1 / 1.02

    def run_until(self, done, limit: float) -> None:
        """Run the event loop until ``done()`` or ``limit`` seconds."""
        from qtpy.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        check = QTimer()
        check.timeout.connect(lambda: done() and loop.quit())
        check.start(50)
        QTimer.singleShot(int(limit * 1000), loop.quit)
        self.ticks.clear()
        self.timer.start()
        loop.exec_()
        self.timer.stop()
        check.stop()

    def row(self, scenario: str) -> dict:
        """Summarize the gaps between ticks."""
        gaps = np.diff(self.ticks) * 1000.0
        return {
            "scenario": scenario,
            "seconds": round(self.ticks[-1] - self.ticks[0], 1),
            "ticks": len(self.ticks),
            "max_gap_ms": float(gaps.max()),
            "p99_gap_ms": float(np.percentile(gaps, 99)),
            "gaps_over_50ms": int((gaps > TARGET_MS).sum()),
            "target_ms": TARGET_MS,
        }


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


def _wait(app, done, limit: float) -> None:
    end = time.monotonic() + limit
    while not done() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def measure() -> list[dict]:
    """Measure the stall with the viewer idle, then while a training runs."""
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_digits.engine import protocol as p
    from napari_digits.engine.client import get_engine

    mnist = os.environ.get("MNIST_DIR") or str(REPO.parent / "shared/data/mnist")
    viewer = napari.Viewer(title="bench viewer")
    viewer.open_sample("napari-digits", "portrait")
    viewer.window._qt_window.resize(1300, 850)
    _, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Training")
    app = QApplication.instance()
    engine = get_engine("training")
    _wait(app, lambda: engine.alive and not engine.busy, 120)  # devices listed
    probe = Probe(viewer)
    probe.run_until(lambda: False, BASELINE_S)
    rows = [probe.row("idle viewer (baseline)")]
    rows[0]["load_avg_1min"] = os.getloadavg()[0]
    out = Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    config = p.TrainConfig(
        out=str(out / "model.keras"),
        epochs=1,
        train_limit=30000,
        test_limit=2000,
        mnist=mnist,
    )
    handlers, draws = _timed(widget, "_on_events"), _timed(widget.curves, "draw")
    widget.start(config)
    probe.run_until(lambda: not widget.running, 300)
    row = probe.row("training in the engine (default, 30k images, 1 epoch)")
    row["load_avg_1min"] = os.getloadavg()[0]
    row["curve_points"] = len(widget.curves.loss_data)
    row["max_handler_ms"] = max(handlers, default=0.0)
    row["max_curve_draw_ms"] = max(draws, default=0.0)
    rows.append(row)
    viewer.close()
    shutil.rmtree(out, ignore_errors=True)
    return rows


def run() -> list[dict]:
    """Run the viewer-stall benchmark in a child process with a display.

    The viewer lives in its own process so that its Qt application ends
    before the virtual display it drew on.
    """
    with display():
        child = subprocess.run(
            [sys.executable, __file__], capture_output=True, text=True, check=False
        )
    for line in child.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line.removeprefix(MARK))
    raise RuntimeError(f"the viewer benchmark failed:\n{child.stderr[-3000:]}")


if __name__ == "__main__":
    print(MARK + json.dumps(measure()), flush=True)
