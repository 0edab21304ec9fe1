"""The mistakes of a model, sorted for the teaching view (pure numpy)."""

import numpy as np
import pytest

from napari_digits.evaluation import find_mistakes


def test_mistakes_are_the_wrong_predictions_most_confident_first():
    labels = np.array([3, 1, 4, 1, 5])
    probabilities = np.full((5, 10), 0.01)
    probabilities[0, 3] = 0.9  # right
    probabilities[1, 7] = 0.6  # wrong, 0.6
    probabilities[2, 2] = 0.95  # wrong, 0.95
    probabilities[3, 1] = 0.5  # right
    probabilities[4, 0] = 0.6  # wrong, 0.6 (tie: by index)
    mistakes = find_mistakes(labels, probabilities)
    assert mistakes.index.tolist() == [2, 1, 4]
    assert mistakes.true.tolist() == [4, 1, 5]
    assert mistakes.predicted.tolist() == [2, 7, 0]
    np.testing.assert_allclose(mistakes.confidence, [0.95, 0.6, 0.6])
    assert len(mistakes) == 3 and set(mistakes.table()) == {
        "index",
        "true",
        "predicted",
        "confidence",
    }


def test_no_mistakes_and_bad_shapes():
    assert len(find_mistakes(np.array([0]), np.eye(10)[[0]])) == 0
    with pytest.raises(ValueError, match="probabilities"):
        find_mistakes(np.array([0, 1]), np.zeros((3, 10)))
