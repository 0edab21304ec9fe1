"""Live training curves for the Training dock: a small matplotlib canvas.

Training loss (every few batches, against fractional epochs) on top, test
accuracy (one point per epoch) below. Points are cheap to add; the canvas is
refreshed at most every :data:`REDRAW_MS` milliseconds, and a refresh only
blits the two lines onto a cached background (a few milliseconds) unless a
point falls outside the axes' limits, which then grow in coarse steps and
take one full draw (tens of milliseconds). So a stream of progress events
never stalls the viewer's event loop for long.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy

#: the shortest time between two refreshes of the canvas
REDRAW_MS = 500


def loss_top(losses: np.ndarray) -> float:
    """Return the loss axis's upper limit: the largest loss, rounded up coarsely.

    Examples
    --------
    >>> loss_top(np.array([2.31, 0.4]))
    2.5
    """
    peak = float(np.nanmax(losses)) if losses.size else 1.0
    if not math.isfinite(peak) or peak <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(peak)) / 2
    return math.ceil(peak / step) * step


def accuracy_bottom(accuracies: np.ndarray) -> float:
    """Return the accuracy axis's lower limit: the lowest accuracy, in 5% steps.

    Examples
    --------
    >>> accuracy_bottom(np.array([0.971, 0.985]))
    0.95
    """
    low = float(np.nanmin(accuracies)) if accuracies.size else 0.95
    return max(0.0, math.floor(low * 20 - 1e-9) / 20)


class TrainingCurves(FigureCanvasQTAgg):
    """Training-loss and test-accuracy curves, refreshed at a throttled rate."""

    def __init__(self) -> None:
        figure = Figure(figsize=(3.6, 3.4))
        # fixed margins: a layout engine would cost more than the drawing
        figure.subplots_adjust(left=0.2, right=0.96, top=0.97, bottom=0.13)
        super().__init__(figure)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(240, 220)
        self._loss_ax, self._acc_ax = figure.subplots(2, 1, sharex=True)
        (self.loss_line,) = self._loss_ax.plot([], [], lw=1.2, animated=True)
        (self.accuracy_line,) = self._acc_ax.plot(
            [], [], "o-", ms=4, lw=1.2, animated=True
        )
        self._axes = (self._loss_ax, self._acc_ax)
        self._lines = (self.loss_line, self.accuracy_line)
        self._loss_ax.set_ylabel("training loss")
        self._acc_ax.set_ylabel("test accuracy")
        self._acc_ax.set_xlabel("epoch")
        self._loss: list[tuple[float, float]] = []
        self._accuracy: list[tuple[float, float]] = []
        self._epochs = 1.0
        #: the checkpoint these curves belong to (the Training dock sets it)
        self.source = ""
        self._backgrounds = None
        self.mpl_connect("draw_event", self._on_draw)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.redraw)
        self._set_limits()

    # -- data -------------------------------------------------------------

    @property
    def loss_data(self) -> np.ndarray:
        """The loss points ``(n, 2)``: fractional epoch, loss."""
        return np.asarray(self._loss, dtype=float).reshape(-1, 2)

    @property
    def accuracy_data(self) -> np.ndarray:
        """The test-accuracy points ``(n, 2)``: epoch, accuracy in 0..1."""
        return np.asarray(self._accuracy, dtype=float).reshape(-1, 2)

    def start(self, epochs: float) -> None:
        """Forget every point and span the epoch axis over ``epochs``."""
        self._loss.clear()
        self._accuracy.clear()
        self._epochs = max(float(epochs), 1.0)
        self.redraw()

    def set_epochs(self, epochs: float) -> None:
        """Span the epoch axis over ``epochs``, keeping every point."""
        self._epochs = max(float(epochs), 1.0)
        self.redraw()

    def load_history(self, history: dict) -> None:
        """Add one point per finished epoch from a checkpoint's ``history``.

        ``history`` maps ``"loss"`` and ``"test_accuracy"`` to per-epoch lists
        (as the engine writes them in a checkpoint's sidecar).
        """
        for key, add in (("loss", self.add_loss), ("test_accuracy", self.add_accuracy)):
            for epoch, value in enumerate(history.get(key, []), start=1):
                add(epoch, value)

    def trim(self, after: float) -> None:
        """Forget the points past epoch ``after`` (an epoch to be trained again)."""
        self._loss[:] = [pt for pt in self._loss if pt[0] <= after]
        self._accuracy[:] = [pt for pt in self._accuracy if pt[0] <= after]
        self._schedule()

    def add_loss(self, epoch: float, loss: float) -> None:
        """Add a training-loss point at fractional ``epoch``."""
        self._loss.append((float(epoch), float(loss)))
        self._schedule()

    def add_accuracy(self, epoch: float, accuracy: float) -> None:
        """Add a test-accuracy point (0..1) at ``epoch``."""
        self._accuracy.append((float(epoch), float(accuracy)))
        self._schedule()

    def clear(self) -> None:
        """Forget every point (a new training starts)."""
        self.start(self._epochs)

    # -- drawing ----------------------------------------------------------

    def set_colors(self, background: str, foreground: str, accent: str) -> None:
        """Match the viewer's theme (colours as matplotlib understands them)."""
        self.figure.set_facecolor(background)
        for ax in self._axes:
            ax.set_facecolor(background)
            ax.tick_params(colors=foreground, labelsize=8)
            for label in (ax.yaxis.label, ax.xaxis.label):
                label.set_color(foreground)
                label.set_fontsize(9)
            for spine in ax.spines.values():
                spine.set_color(foreground)
        self.loss_line.set_color(accent)
        self.accuracy_line.set_color(accent)
        self.draw_idle()

    def _schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def redraw(self) -> None:
        """Show the current points: blit the lines, or redraw all on new limits."""
        loss, accuracy = self.loss_data, self.accuracy_data
        self.loss_line.set_data(loss[:, 0], loss[:, 1])
        self.accuracy_line.set_data(accuracy[:, 0], accuracy[:, 1])
        if self._set_limits() or self._backgrounds is None:
            self.draw_idle()  # the draw event caches the backgrounds, then blits
        else:
            self._blit()

    def _set_limits(self) -> bool:
        """Grow the axes to hold every point; return whether they changed."""
        loss, accuracy = self.loss_data, self.accuracy_data
        epochs = max(self._epochs, *(loss[:, 0]), *(accuracy[:, 0]), 1.0)
        wanted = (
            (0.0, epochs * 1.03),  # room for the last epoch's marker
            (0.0, loss_top(loss[:, 1])),
            (accuracy_bottom(accuracy[:, 1]), 1.0),
        )
        current = (
            self._acc_ax.get_xlim(),
            self._loss_ax.get_ylim(),
            self._acc_ax.get_ylim(),
        )
        if np.allclose(wanted, current):
            return False
        self._acc_ax.set_xlim(*wanted[0])  # shared with the loss axes
        self._loss_ax.set_ylim(*wanted[1])
        self._acc_ax.set_ylim(*wanted[2])
        return True

    def _on_draw(self, event=None) -> None:
        """After a full draw: cache the empty axes, then draw the lines on."""
        self._backgrounds = [self.copy_from_bbox(ax.bbox) for ax in self._axes]
        for ax, line in zip(self._axes, self._lines, strict=True):
            ax.draw_artist(line)  # painted with the rest of this draw

    def _blit(self) -> None:
        """Repaint only the lines, over the cached backgrounds."""
        for ax, line, background in zip(
            self._axes, self._lines, self._backgrounds, strict=True
        ):
            self.restore_region(background)
            ax.draw_artist(line)
            self.blit(ax.bbox)
