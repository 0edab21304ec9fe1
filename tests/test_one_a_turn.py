"""Results are added a layer a turn of the event loop (issue 9: each layer
costs napari 60-250 ms here; four in one handler froze the viewer ~0.9 s)."""

from __future__ import annotations

import numpy as np

from napari_digits._widgets import OneATurn
from napari_digits._widgets._teaching import evaluation_steps
from napari_digits.evaluation import find_mistakes


def test_steps_run_one_a_turn_and_a_new_run_drops_the_old_steps(qtbot):
    done: list[str] = []
    turns = OneATurn()
    turns.run([lambda: done.append("a1"), lambda: done.append("a2")])
    assert done == ["a1"] and not turns.done  # the first now, the rest later
    turns.run([lambda: done.append("b1"), lambda: done.append("b2")])
    qtbot.waitUntil(lambda: turns.done, timeout=2000)
    assert done == ["a1", "b1", "b2"]


def test_the_teaching_layers_come_one_a_turn(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    mine = viewer.add_image(np.zeros((50, 50)), name="mine")
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 200)
    probabilities = rng.random((200, 10))
    mistakes = find_mistakes(truth, probabilities)
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (truth, probabilities.argmax(1)), 1)
    images = rng.integers(0, 255, (200, 28, 28), dtype=np.uint8)
    turns = OneATurn()
    added = []
    viewer.layers.events.inserted.connect(lambda e: added.append(e.value.name))
    turns.run(evaluation_steps(viewer, confusion, mistakes, images))
    assert added == ["confusion matrix"]
    qtbot.waitUntil(lambda: turns.done, timeout=5000)
    assert added == [
        "confusion matrix",
        "confusion matrix: counts",
        "misclassified",
        "misclassified: labels",
    ]
    assert list(viewer.layers.selection) == [mine]  # the user's selection kept
