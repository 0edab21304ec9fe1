"""``napari-digits read`` in a subprocess (TensorFlow runs there, not here)."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

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


def tiny_pages(folder: Path, count: int) -> list[Path]:
    """Write ``count`` small generated pages (a few digits each) as PNGs."""
    from PIL import Image

    from napari_digits.data import load_mnist
    from napari_digits.synthetic import make_page

    mnist = load_mnist()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        page = make_page(
            mnist.x_test,
            mnist.y_test,
            shape=(400, 300),
            digit_height=30,
            max_digits=10,
            seed=seed,
        )
        paths.append(folder / f"page{seed:03d}.png")
        Image.fromarray(page.image).save(paths[-1])
    return paths


def test_nothing_read_keeps_the_previous_table(tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("a good table\n")
    done = napari_digits("read", str(tmp_path / "no_such_folder"), "--out", str(out))
    assert done.returncode == 1
    assert (
        done.stderr.startswith("napari-digits read: error: nothing to read")
        and "Traceback" not in done.stderr
    )
    assert out.read_text() == "a good table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_annotations_never_go_over_the_scans(tmp_path, mnist_dir):
    scans = tmp_path / "scans"
    tiny_pages(scans, 2)
    before = {p.name: p.read_bytes() for p in scans.iterdir()}
    for annotated in (scans, scans / "annotated"):
        done = napari_digits(
            "read",
            str(scans),
            "--out",
            str(tmp_path / "r.csv"),
            "--annotated",
            str(annotated),
        )
        assert done.returncode == 1
        assert "inside the input folder" in done.stderr
        assert done.stderr.count("\n") == 1  # one line
    assert {p.name: p.read_bytes() for p in scans.iterdir()} == before
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.slow
def test_a_kill_keeps_the_previous_table_and_resume_reads_only_the_rest(
    tmp_path, mnist_dir, monkeypatch
):
    system_tmp = tmp_path / "tmp"  # the commands' temporary folder
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    scans, out = tmp_path / "scans", tmp_path / "r.csv"
    tiny_pages(scans, 16)
    reference = tmp_path / "reference.csv"
    assert napari_digits("read", str(scans), "--out", str(reference)).returncode == 0
    out.write_text("the previous table\n")
    journal = tmp_path / "r.csv.partial"
    run = subprocess.Popen(
        [sys.executable, "-m", "napari_digits", "read", str(scans), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None:
            if journal.exists() and journal.read_bytes().count(b"\n") >= 4:
                break
            time.sleep(0.02)
        run.send_signal(signal.SIGKILL)
    finally:
        run.wait()
    assert out.read_text() == "the previous table\n"
    [left] = system_tmp.iterdir()  # TensorFlow's files: nothing could remove them
    assert left.name.startswith("napari-digits-command-")
    kept = journal.read_bytes().count(b"\n") - 1
    assert 3 <= kept < 16, "the kill came too late to test anything"

    again = napari_digits("read", str(scans), "--out", str(out))
    assert again.returncode == 1 and "--resume" in again.stderr  # never silently lost
    resumed = napari_digits("read", str(scans), "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (
        f"resuming: {kept} file(s) already read, {16 - kept} to read" in resumed.stderr
    )
    assert out.read_text() == reference.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "r.csv",
        "reference.csv",
        "scans",
        "tmp",
    ]
    assert list(system_tmp.iterdir()) == []  # the next command swept it


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--workers", "0", "--workers is 1.."),
        ("--workers", "100000", "--workers is 1.."),
        ("--review", "2", "--review is a probability"),
        ("--digit-height", "-5", "--digit-height is"),
    ],
)
def test_bad_values_are_refused_before_work(tmp_path, option, value, message):
    done = napari_digits(
        "read", str(SAMPLE), "--out", str(tmp_path / "r.csv"), option, value
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"napari-digits read: error: {message}")
    assert done.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir())
