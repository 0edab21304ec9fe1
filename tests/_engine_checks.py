"""Exercise napari_digits.engine.models in a TensorFlow process; print JSON.

Run by tests/test_models_cli.py in a subprocess (TensorFlow never enters the
pytest process): ``python tests/_engine_checks.py MODEL TMPDIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from napari_digits.data import load_mnist
from napari_digits.engine import models
from napari_digits.engine.protocol import TrainConfig


def _error(func, *args, **kwargs) -> str:
    try:
        func(*args, **kwargs)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def _inference(model: str, report: dict) -> None:
    mnist = load_mnist()
    images = mnist.x_test[:500]
    probs = models.predict(model, images)
    report["predict_shape"] = list(probs.shape)
    report["predict_dtype"] = str(probs.dtype)
    report["row_sums"] = [float(probs.sum(1).min()), float(probs.sum(1).max())]
    report["accuracy_500"] = float(np.mean(probs.argmax(1) == mnist.y_test[:500]))
    as_float = models.predict(model, images.astype(np.float32) / 255)
    report["uint8_equals_float"] = bool(np.allclose(probs, as_float, atol=1e-5))
    report["empty_shape"] = list(models.predict(model, images[:0]).shape)
    report["cached"] = models.load_model(model) is models.load_model(model)
    w = models.first_layer(model)
    report["first_layer"] = [list(w.kernel.shape), list(w.bias.shape), w.activation]
    page = np.zeros((40, 50), np.float32)
    page[10:30, 20:24] = 1.0
    maps = models.feature_maps(model, page, depth=2)
    report["feature_maps"] = [list(m.shape) for m in maps]
    report["feature_maps_nonneg"] = bool(all((m >= 0).all() for m in maps))
    report["feature_small"] = _error(models.feature_maps, model, np.zeros((1, 1)), 3)
    info = models.describe(model)
    report["describe"] = [list(info.input_shape), info.n_classes, info.params]


def _errors(tmp: Path, report: dict) -> None:
    import keras

    corrupt = tmp / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 this is no model")
    report["corrupt"] = _error(models.predict, str(corrupt), np.zeros((1, 28, 28)))
    text = tmp / "notes.txt"
    text.write_text("hello")
    report["foreign"] = _error(models.evaluate, str(text))
    report["missing"] = _error(models.first_layer, str(tmp / "nowhere.keras"))
    rgb = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten()])
    rgb.save(tmp / "rgb.keras")
    report["wrong_input"] = _error(
        models.predict, str(tmp / "rgb.keras"), np.zeros((1, 28, 28))
    )
    report["devices"] = [d.name for d in models.list_devices()]
    config = TrainConfig(out=str(tmp / "x.keras"), device="GPU:3", train_limit=64)
    report["no_gpu"] = _error(
        models.train, config, on_progress=print, should_stop=bool, log=print
    )


def _stop(tmp: Path, report: dict) -> None:
    events, lines, polls = [], [], []

    def should_stop() -> bool:
        polls.append(1)
        return len(polls) >= 3

    config = TrainConfig(
        out=str(tmp / "stopped.keras"),
        epochs=2,
        batch_size=32,
        train_limit=640,
        test_limit=100,
        mixed_precision=True,
    )
    result = models.train(
        config, on_progress=events.append, should_stop=should_stop, log=lines.append
    )
    report["stop_result"] = [result.stopped, result.epochs_done, len(polls)]
    report["stop_epoch_end"] = [e.epoch_end for e in events][-1]
    report["stop_checkpoint_loads"] = models.describe(result.model_path).n_classes
    report["mixed_on_cpu_logged"] = any("mixed precision" in line for line in lines)
    report["first_layer_event"] = events[-1].first_layer is not None


def main() -> None:
    """Run the checks and print one JSON object."""
    model, tmp = sys.argv[1], Path(sys.argv[2])
    report: dict = {}
    _inference(model, report)
    _errors(tmp, report)
    _stop(tmp, report)
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
