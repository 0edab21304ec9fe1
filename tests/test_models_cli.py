"""The engine's model functions and the train/evaluate commands.

Everything that needs TensorFlow runs in a subprocess, so that TensorFlow never
enters the pytest process (see conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from napari_digits.current_model import shipped_model_path

HERE = Path(__file__).resolve().parent


def _run(
    *args: str, mnist_dir: Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    env = {**os.environ, "MNIST_DIR": str(mnist_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def _cli(*args: str, mnist_dir: Path) -> subprocess.CompletedProcess:
    return _run("-m", "napari_digits", *args, mnist_dir=mnist_dir)


def test_shipped_model_scores_at_least_99_3_percent(mnist_dir):
    done = _cli("evaluate", mnist_dir=mnist_dir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("test accuracy: ")
    assert float(lines[-1].split(": ")[1]) >= 0.993
    assert "10000 test images" in done.stdout
    assert lines[-12].startswith("true\\pred")  # the confusion matrix


@pytest.mark.slow  # three TensorFlow processes
def test_train_resume_and_evaluate_a_quick_model(mnist_dir, tmp_path):
    out = tmp_path / "quick.keras"
    quick = ["--train-limit", "1024", "--test-limit", "200", "--batch-size", "64"]
    done = _cli(
        "train", "--out", str(out), "--epochs", "1", *quick, mnist_dir=mnist_dir
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("trained default for 1 epoch(s)")
    assert json.loads(Path(f"{out}.json").read_text())["epochs_done"] == 1

    args = ["train", "--out", str(out), "--epochs", "2", "--resume", *quick]
    done = _cli(*args, mnist_dir=mnist_dir)
    assert done.returncode == 0, done.stderr
    state = json.loads(Path(f"{out}.json").read_text())
    assert state["epochs_done"] == 2
    assert len(state["history"]["test_accuracy"]) == 2
    assert state["history"]["test_accuracy"][-1] > 0.6  # 2 epochs on 1024 digits

    done = _cli("evaluate", str(out), "--limit", "200", mnist_dir=mnist_dir)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.splitlines()[-1].split(": ")[1]) > 0.6
    assert "200 test images" in done.stdout


def test_corrupt_model_is_a_clear_error_without_traceback(mnist_dir, tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"\x00" * 100)
    done = _cli("evaluate", str(bad), mnist_dir=mnist_dir)
    assert done.returncode == 1
    assert "is not a Keras model" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_mnist_is_a_clear_error(tmp_path):
    args = ["train", "--out", str(tmp_path / "m.keras"), "--mnist", str(tmp_path)]
    done = _cli(*args, mnist_dir=tmp_path)
    assert done.returncode == 1
    assert "no MNIST IDX files" in done.stderr
    assert "Traceback" not in done.stderr


def test_engine_functions(mnist_dir, tmp_path):
    script = str(HERE / "_engine_checks.py")
    done = _run(script, str(shipped_model_path()), str(tmp_path), mnist_dir=mnist_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(s for s in done.stdout.splitlines() if s.startswith("REPORT "))
    r = json.loads(line.removeprefix("REPORT "))

    assert r["predict_shape"] == [500, 10] and r["predict_dtype"] == "float32"
    assert r["row_sums"][0] > 0.999 and r["row_sums"][1] < 1.001
    assert r["accuracy_500"] > 0.98
    assert r["uint8_equals_float"] and r["cached"]
    assert r["empty_shape"] == [0, 10]
    kernel, bias, activation = r["first_layer"]
    assert kernel[:3] == [3, 3, 1] and bias == [kernel[3]] and activation == "relu"
    n1, n2 = kernel[3], r["feature_maps"][1][2]
    assert r["feature_maps"] == [[40, 50, n1], [20, 25, n2]]  # "same" padding, pool 2
    assert r["feature_maps_nonneg"]  # after relu
    assert r["feature_small"].startswith("ValueError")
    assert r["describe"][:2] == [[None, 28, 28, 1], 10]

    assert "ModelFileError" in r["corrupt"] and "not a Keras model" in r["corrupt"]
    assert "ModelFileError" in r["foreign"] and ".keras" in r["foreign"]
    assert "ModelFileError" in r["missing"] and "does not exist" in r["missing"]
    assert "ModelFileError" in r["wrong_input"] and "(28, 28, 1)" in r["wrong_input"]
    assert r["devices"][0] == "CPU"
    if len(r["devices"]) < 4:
        assert r["no_gpu"].startswith("DeviceError") and "not available" in r["no_gpu"]

    stopped, epochs_done, polls = r["stop_result"]
    assert stopped and epochs_done == 0 and polls == 3
    assert r["stop_epoch_end"] and r["first_layer_event"]
    assert r["stop_checkpoint_loads"] == 10
    if r["devices"] == ["CPU"]:
        assert r["mixed_on_cpu_logged"]


_STATISTICS = """
import json, sys
import numpy as np
from napari_digits.data import load_mnist
from napari_digits.engine._tf import keras
from napari_digits.engine.training import reestimate_batch_norm
data = load_mnist()
data = type(data)(data.x_train[:5000], data.y_train[:5000], data.x_test, data.y_test)
def stats(scans, seed):
    model = keras.models.load_model(sys.argv[1])
    kernel = model.get_layer("conv1").get_weights()[0].copy()
    reestimate_batch_norm(model, data, seed, scans=scans, passes=40)
    norm = model.get_layer("norm1")
    same = bool(np.array_equal(kernel, model.get_layer("conv1").get_weights()[0]))
    return np.asarray(norm.moving_mean), np.asarray(norm.moving_variance), same
clean, scans, again = stats(False, 0), stats(True, 0), stats(True, 0)
print("REPORT " + json.dumps({
    "weights_kept": clean[2] and scans[2],
    "mean_moved": float(np.abs(clean[0] - scans[0]).max()),
    "variance_ratio": float(np.median(scans[1] / clean[1])),
    "repeatable": bool(np.array_equal(scans[0], again[0])),
}))
"""


@pytest.mark.slow  # 120 forward passes of 256 digits
def test_scan_statistics_describe_scan_like_digits(mnist_dir):
    """--scan-statistics re-estimates batch norm on half-augmented batches."""
    done = _run("-c", _STATISTICS, str(shipped_model_path()), mnist_dir=mnist_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(s for s in done.stdout.splitlines() if s.startswith("REPORT "))
    r = json.loads(line.removeprefix("REPORT "))
    assert r["weights_kept"] and r["repeatable"]
    assert r["mean_moved"] > 1e-3  # other statistics than clean MNIST's
    assert r["variance_ratio"] != pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow
def test_tutorial_architecture_trains(mnist_dir, tmp_path):
    out = tmp_path / "tutorial.keras"
    args = ["train", "--model", "tutorial", "--out", str(out), "--epochs", "1"]
    done = _cli(
        *args, "--train-limit", "6400", "--test-limit", "1000", mnist_dir=mnist_dir
    )
    assert done.returncode == 0, done.stderr
    accuracy = float(done.stdout.split("test accuracy ")[1].split(",")[0])
    assert accuracy > 0.8


@pytest.mark.slow  # trains a field reader: 11 s
def test_train_fields_writes_a_reader_that_its_classifier_uses(
    mnist_dir, tmp_path, engine
):
    import numpy as np

    from napari_digits.engine.protocol import Predict
    from napari_digits.scan.fields import FIELD_HEIGHT, FIELD_WIDTH, FRAMES

    model = tmp_path / "mine.keras"
    model.write_bytes(shipped_model_path().read_bytes())
    out = tmp_path / "mine.fields.keras"
    done = _cli(
        "train-fields", "--out", str(out), "--lines", "64", "--steps", "3",
        mnist_dir=mnist_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "trained the field reader for 3 steps" in done.stdout
    record = json.loads(Path(f"{out}.json").read_text())
    assert record["steps"] == 3 and record["lines"] == 64
    assert record["command"].startswith("napari-digits train-fields --out")
    lines = np.zeros((2, FIELD_HEIGHT, FIELD_WIDTH), np.uint8)
    lines[:, 4:28, 10:30] = 255
    untrained = engine.call(Predict(model=str(model), images=lines))
    shipped = engine.call(Predict(model=str(shipped_model_path()), images=lines))
    assert untrained.shape == shipped.shape == (2, FRAMES, 11)
    assert np.allclose(untrained.sum(axis=2), 1, atol=1e-4)
    assert not np.allclose(untrained, shipped, atol=0.05)  # its own reader

    from napari_digits.current_model import reader_path

    done = _cli(
        "train-fields", "--out", str(out), "--lines", "64", "--steps", "2",
        "--from", str(reader_path(shipped_model_path())), "--rate", "1e-7",
        mnist_dir=mnist_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(Path(f"{out}.json").read_text())
    assert record["start_from"].endswith("fields.keras") and record["rate"] == 1e-7
    further = engine.call(Predict(model=str(model), images=lines))
    assert np.allclose(further, shipped, atol=0.05)  # trained on from its weights


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--out", "x.h5"), "must end in .keras"),
        (("--out", "x.keras", "--lines", "0"), "--lines is 1 to"),
        (("--out", "x.keras", "--steps", "0"), "--steps must be"),
        (("--out", "x.keras", "--rate", "0"), "--rate is a learning rate"),
        (("--out", "x.keras", "--from", "none.keras"), "none.keras does not exist"),
        (("--out", "SHIPPED", "--from", "SHIPPED"), "is an input"),
    ],
)
def test_train_fields_refuses_bad_values_in_one_line(
    args, message, tmp_path, mnist_dir
):
    from napari_digits.current_model import reader_path

    shipped = str(reader_path(shipped_model_path()))
    args = [shipped if a == "SHIPPED" else a for a in args]
    done = _cli("train-fields", *args, mnist_dir=mnist_dir)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert "error:" in done.stderr
