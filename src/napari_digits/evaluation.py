"""What a model gets wrong on the test set: the misclassified digits, sorted.

Pure numpy (no Qt, no TensorFlow): the engine computes the class
probabilities of every test digit (an ``Evaluate`` request with
``predictions=True``); this module turns them into the gallery of mistakes
that the viewer shows, most confident mistakes first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mistakes:
    """The misclassified test digits, most confident first.

    Every field is an array of the same length: ``index`` into the test set,
    the ``true`` and ``predicted`` digits, and ``confidence``, the
    probability the model gave its (wrong) prediction.
    """

    index: np.ndarray
    true: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def table(self) -> dict[str, np.ndarray]:
        """Return the columns as a dict (napari layer features)."""
        return {
            "index": self.index,
            "true": self.true,
            "predicted": self.predicted,
            "confidence": self.confidence,
        }


def find_mistakes(labels: np.ndarray, probabilities: np.ndarray) -> Mistakes:
    """Return the test digits whose most probable class is not their label.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(N,)`` true digits.
    probabilities : numpy.ndarray
        ``(N, 10)`` class probabilities.

    Returns
    -------
    Mistakes
        Sorted by decreasing confidence (ties by test-set index).

    Examples
    --------
    >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> find_mistakes(np.array([0, 0, 1]), p).index.tolist()
    [1, 2]
    """
    labels = np.asarray(labels).astype(np.int64)
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(
            f"expected (N, classes) probabilities for {len(labels)} labels, "
            f"got shape {probabilities.shape}"
        )
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]].astype(np.float32)
    order = np.lexsort((wrong, -confidence))
    return Mistakes(
        index=wrong[order],
        true=labels[wrong][order],
        predicted=predicted[wrong][order],
        confidence=confidence[order],
    )
