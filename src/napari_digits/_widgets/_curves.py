"""Live training curves for the Training dock: a small matplotlib canvas.

Training loss (every few batches, against fractional epochs) on top, test
accuracy (one point per epoch) below. Points are cheap to add; the canvas is
redrawn at most every :data:`REDRAW_MS` milliseconds, so a fast stream of
progress events never floods the viewer's event loop.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy

#: the shortest time between two redraws of the canvas (a draw costs ~30 ms)
REDRAW_MS = 1000


class TrainingCurves(FigureCanvasQTAgg):
    """Training-loss and test-accuracy curves, redrawn at a throttled rate."""

    def __init__(self) -> None:
        figure = Figure(figsize=(3.6, 3.4))
        # fixed margins: a layout engine would cost more than the drawing
        figure.subplots_adjust(left=0.2, right=0.96, top=0.97, bottom=0.13)
        super().__init__(figure)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(240, 220)
        self._loss_ax, self._acc_ax = figure.subplots(2, 1, sharex=True)
        (self.loss_line,) = self._loss_ax.plot([], [], lw=1.2)
        (self.accuracy_line,) = self._acc_ax.plot([], [], "o-", ms=4, lw=1.2)
        self._loss_ax.set_ylabel("training loss")
        self._acc_ax.set_ylabel("test accuracy")
        self._acc_ax.set_xlabel("epoch")
        self._loss: list[tuple[float, float]] = []
        self._accuracy: list[tuple[float, float]] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.redraw)

    # -- data -------------------------------------------------------------

    @property
    def loss_data(self) -> np.ndarray:
        """The loss points ``(n, 2)``: fractional epoch, loss."""
        return np.asarray(self._loss, dtype=float).reshape(-1, 2)

    @property
    def accuracy_data(self) -> np.ndarray:
        """The test-accuracy points ``(n, 2)``: epoch, accuracy in 0..1."""
        return np.asarray(self._accuracy, dtype=float).reshape(-1, 2)

    def add_loss(self, epoch: float, loss: float) -> None:
        """Add a training-loss point at fractional ``epoch``."""
        self._loss.append((float(epoch), float(loss)))
        self._schedule()

    def add_accuracy(self, epoch: float, accuracy: float) -> None:
        """Add a test-accuracy point (0..1) at the end of ``epoch``."""
        self._accuracy.append((float(epoch), float(accuracy)))
        self._schedule()

    def clear(self) -> None:
        """Forget every point (a new training starts)."""
        self._loss.clear()
        self._accuracy.clear()
        self.redraw()

    # -- drawing ----------------------------------------------------------

    def set_colors(self, background: str, foreground: str, accent: str) -> None:
        """Match the viewer's theme (colours as matplotlib understands them)."""
        self.figure.set_facecolor(background)
        for ax in (self._loss_ax, self._acc_ax):
            ax.set_facecolor(background)
            ax.tick_params(colors=foreground, labelsize=8)
            ax.yaxis.label.set_color(foreground)
            ax.xaxis.label.set_color(foreground)
            ax.yaxis.label.set_fontsize(9)
            ax.xaxis.label.set_fontsize(9)
            for spine in ax.spines.values():
                spine.set_color(foreground)
        self.loss_line.set_color(accent)
        self.accuracy_line.set_color(accent)
        self.redraw()

    def _schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def redraw(self) -> None:
        """Put the current points on the axes and repaint when Qt is idle."""
        loss, accuracy = self.loss_data, self.accuracy_data
        self.loss_line.set_data(loss[:, 0], loss[:, 1])
        self.accuracy_line.set_data(accuracy[:, 0], accuracy[:, 1])
        for ax in (self._loss_ax, self._acc_ax):
            ax.relim()
            ax.autoscale_view()
        self.draw_idle()
