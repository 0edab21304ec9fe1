"""Learning from corrections: the selection (pure) and ``napari-digits finetune``.

The command runs in a subprocess (TensorFlow runs there, not here), on the
shipped sample page read by ``napari-digits read`` and corrected in its CSV.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from napari_digits.corrections import select
from napari_digits.results import build_table
from napari_digits.scan import find_digits

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "scanned_page.jpg"


def napari_digits(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "napari_digits", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_select_keeps_corrected_and_confident_digits_with_their_crops():
    from napari_digits.io import read_image

    scan = find_digits(read_image(SAMPLE))
    probs = np.full((len(scan), 10), 0.001, np.float32)
    probs[:, 3] = 0.991  # every digit read as 3 with confidence...
    probs[:5, 3], probs[:5, 4] = 0.5, 0.491  # ...but five
    rows = build_table(scan, probs, file="page.png")
    rows[0] = replace(rows[0], corrected=7)
    chosen = select(scan, rows, confident=0.99)
    images, labels, corrected = chosen.arrays()
    uncertain = sum(r.probability < 0.99 for r in rows)
    assert len(labels) == len(rows) - uncertain + (rows[0].probability < 0.99)
    assert corrected.sum() == 1 and labels[corrected][0] == 7
    k = next(i for i, r in enumerate(scan.regions) if r.label == rows[0].label)
    np.testing.assert_array_equal(images[corrected][0], scan.crops[k])
    assert chosen.files == ["page.png"]


def test_finetune_refuses_bad_arguments_in_one_line(tmp_path):
    table = tmp_path / "r.csv"
    table.write_text("file\n")
    for args, words in [
        ((str(tmp_path / "none.csv"), "--out", str(tmp_path / "m.keras")), "no table"),
        ((str(table), "--out", str(tmp_path / "m.h5")), ".keras"),
        (
            (str(table), "--out", str(tmp_path / "m.keras"), "--time-budget", "0"),
            "budget",
        ),
    ]:
        done = napari_digits("finetune", *args)
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("napari-digits finetune: error:")
        assert words in lines[0]
        assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_finetune_learns_the_corrections_of_a_read_table(tmp_path):
    table = tmp_path / "read.csv"
    done = napari_digits("read", str(SAMPLE), "--out", str(table))
    assert done.returncode == 0, done.stderr
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows[:3]:  # the user says these three are one more than read
        r["corrected"] = str((int(r["prediction"]) + 1) % 10)
    corrected = tmp_path / "corrected.csv"
    with open(corrected, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "mine.keras"
    done = napari_digits(
        "finetune", str(corrected), "--out", str(out), "--time-budget", "10"
    )
    assert done.returncode == 0, done.stderr
    assert out.is_file() and "MNIST test accuracy" in done.stdout
    record = json.loads(Path(str(out) + ".json").read_text())
    assert record["corrected"] == 3 and record["digits"] > 200
    assert record["provenance"]["files"] == [str(SAMPLE)]
    assert record["mnist_test_accuracy"] > 0.98
    # the new model is a model the reader can use
    again = tmp_path / "again.csv"
    done = napari_digits("read", str(SAMPLE), "--out", str(again), "--model", str(out))
    assert done.returncode == 0, done.stderr
