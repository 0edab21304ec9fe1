"""``napari-digits read`` in a subprocess (TensorFlow runs there, not here)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from napari_digits.results import CSV_HEADER, read_csv, score
from napari_digits.synthetic import read_truth

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "scanned_page.jpg"


def napari_digits(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "napari_digits", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_reads_a_folder_and_skips_the_unreadable_file(tmp_path):
    from PIL import Image

    pages = tmp_path / "scans"
    (pages / "more").mkdir(parents=True)
    shutil.copy(SAMPLE, pages / "scanned_page.jpg")
    (pages / "broken.png").write_bytes(b"this is not a PNG")
    (pages / "notes.txt").write_text("not an image, not even tried")
    Image.fromarray(np.full((300, 200), 240, np.uint8)).save(pages / "more/blank.png")
    out, annotated = tmp_path / "results.csv", tmp_path / "annotated"

    done = napari_digits(
        "read", str(pages), "--out", str(out), "--annotated", str(annotated)
    )

    assert done.returncode == 0, done.stderr
    assert "skipped" in done.stderr and "broken.png" in done.stderr
    assert "blank.png: no digits found" in done.stderr
    assert "reading pages" in done.stderr  # the progress bar
    with open(out, newline="") as f:
        assert tuple(next(csv.reader(f))) == CSV_HEADER
    rows = read_csv(out)
    truth = read_truth(SAMPLE.with_suffix(".csv"))
    assert {Path(r.file).name for r in rows} == {"scanned_page.jpg"}
    assert score(rows, truth).accuracy >= 0.98
    assert sorted(p.name for p in annotated.iterdir()) == ["scanned_page.png"]
    assert f"read {len(rows)} digits" in done.stdout


def test_a_missing_model_is_a_clear_error(tmp_path):
    done = napari_digits(
        "read", str(SAMPLE), "--out", str(tmp_path / "r.csv"), "--model", "nope.keras"
    )
    assert done.returncode == 1
    assert "nope.keras does not exist" in done.stderr
    assert not (tmp_path / "r.csv").exists()
