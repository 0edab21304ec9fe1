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


def two_short_lines() -> np.ndarray:
    """Two lines of two dark rings each, on light paper."""
    page = np.full((300, 260), 0.9, np.float32)
    for top in (40, 180):
        for left in (40, 140):
            page[top : top + 60, left : left + 36] = 0.1
            page[top + 12 : top + 48, left + 10 : left + 26] = 0.9
    return page


def blank_lines(images: np.ndarray) -> np.ndarray:
    """Crops read as 0 at 0.6; lines read as nothing (the cuts' reading stays)."""
    if images.shape[1:] == (28, 28):
        p = np.full((len(images), 10), 0.4 / 9, np.float32)
        p[:, 0] = 0.6
        return p
    out = np.zeros((len(images), 48, 11), np.float32)
    out[:, :, 10] = 1.0
    return out


def test_select_learns_the_lines_looked_at_or_read_with_confidence():
    scan = find_digits(two_short_lines(), classify=blank_lines, fields=True)
    assert len(scan) == 4 and len(scan.lines) == 2
    probs = np.full((4, 10), 0.001, np.float32)
    probs[:2, 3] = 0.991  # the top line read "33" with confidence
    probs[2:, 5] = 0.6  # the bottom one "55", unsure
    rows = build_table(scan, probs, file="page.png")
    chosen = select(scan, rows)
    lines, digits = chosen.line_arrays()
    assert digits.tolist() == [[3, 3]]
    np.testing.assert_array_equal(lines[0], scan.lines[0][1])
    rows[3] = replace(rows[3], corrected=8)  # the user looked at the bottom line
    assert select(scan, rows).line_digits == [[3, 3], [5, 8]]
    # a line with a digit not in the table (left out of it) is not learnt
    assert select(scan, rows[1:]).line_digits == [[5, 8]]
    # ... but one with a digit corrected to "not a digit" is, without it
    rows[2] = replace(rows[2], corrected=-1)
    chosen = select(scan, rows)
    assert chosen.line_digits == [[3, 3], [8]] and chosen.labels == [3, 3, 8]
    nothing = select(scan, rows[:0])
    assert nothing.line_arrays()[0].shape == (0, 32, 192)
    assert (chosen.lines_corrected, nothing.lines_corrected) == (1, 0)


def test_select_learns_a_piece_of_several_digits_only_in_its_line():
    scan = find_digits(two_short_lines(), classify=blank_lines, fields=True)
    probs = np.full((4, 10), 0.001, np.float32)
    probs[:, 3] = 0.991  # both lines read "33" with confidence
    rows = build_table(scan, probs, file="page.png")
    rows[1] = replace(rows[1], corrected="35")  # a 5 touching the 3, not cut
    chosen = select(scan, rows)
    assert chosen.line_digits == [[3, 3, 5], [3, 3]]
    assert chosen.labels == [3, 3, 3] and chosen.n_corrected == 0
    assert chosen.lines_corrected == 1
    # more digits than the field reader's frames can hold: not learnt
    rows[1] = replace(rows[1], corrected="9" * 13)
    rows[0] = replace(rows[0], corrected="9" * 12)
    assert select(scan, rows).line_digits == [[3, 3]]


def test_finetune_refuses_bad_arguments_in_one_line(tmp_path):
    table = tmp_path / "r.csv"
    table.write_text("file\n")
    part = tmp_path / "part.csv"
    part.write_text("file,page,digit\np.png,,3\n")
    for args, words in [
        ((str(tmp_path / "none.csv"), "--out", str(tmp_path / "m.keras")), "no table"),
        ((str(table), "--out", str(tmp_path / "m.h5")), ".keras"),
        (
            (str(table), "--out", str(tmp_path / "m.keras"), "--time-budget", "0"),
            "budget",
        ),
        ((str(table), "--out", str(tmp_path / "m.keras"), "--batches", "0"), "batches"),
        (  # a table of another program: named, and refused before TensorFlow
            (str(part), "--out", str(tmp_path / "m.keras")),
            "line 2: no value in column 'page'",
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
    done = napari_digits("read", str(SAMPLE), "--out", str(table), "--amounts")
    assert done.returncode == 0, done.stderr
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows[:3]:  # the user says these three are one more than read
        r["corrected"] = str((int(r["prediction"]) + 1) % 10)
    rows[3]["corrected"] = "05"  # and that this one holds two digits
    corrected = tmp_path / "corrected.csv"
    with open(corrected, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "mine.keras"
    done = napari_digits(
        "finetune",
        str(corrected),
        "--out",
        str(out),
        "--batches",
        "200",  # the same run on a slow machine
        "--amounts",
    )
    assert done.returncode == 0, done.stderr
    assert out.is_file() and "MNIST test accuracy" in done.stdout
    record = json.loads(Path(str(out) + ".json").read_text())
    # the "05" piece is no digit to learn alone (the page's lines are too long
    # for the field reader)
    assert record["corrected"] == 3 and record["digits"] > 200
    assert record["steps"] == record["batches"] == 200
    assert record["provenance"]["files"] == [str(SAMPLE)]
    assert record["mnist_test_accuracy"] > 0.98
    # the new model is a model the reader can use
    again = tmp_path / "again.csv"
    done = napari_digits("read", str(SAMPLE), "--out", str(again), "--model", str(out))
    assert done.returncode == 0, done.stderr


@pytest.mark.slow  # the longest default test (20 s); the widget's Learn tests stay
def test_finetune_learns_the_lines_and_the_new_model_keeps_its_reader(
    tmp_path, mnist_dir, engine
):
    """In the engine: the field reader learns the lines of a user's narrow
    writing and reads them better when the page is read again (12 -> 20 of
    24 here, in 80 batches: a number of batches, not of seconds, so that a
    slow machine runs the same test; it learns them varied, so more slowly
    than their pixels: 30 batches gave 13); a model fine-tuned again without lines
    keeps its base's reader; one made from the shipped model without lines
    has none of its own (an older one of that name goes)."""
    from scipy import ndimage as ndi

    from napari_digits.current_model import shipped_model_path
    from napari_digits.data import load_mnist
    from napari_digits.engine.protocol import Finetune, FinetuneConfig, Predict
    from napari_digits.scan.fields import decode
    from napari_digits.synthetic_fields import (
        VARY_SLANT,
        VARY_WIDTH,
        digit_pool,
        make_fields,
    )

    mnist = load_mnist(mnist_dir)
    rng = np.random.default_rng(0)
    pool, classes = digit_pool(mnist.x_test[:600], mnist.y_test[:600], rng)
    lines, digits, lengths = make_fields(pool, classes, 24, seed=0)
    narrow = np.zeros_like(lines)  # the user writes at 45% of the width
    for k, line in enumerate(lines):
        squeezed = ndi.zoom(line, (1, 0.45), order=1)
        narrow[k, :, : squeezed.shape[1]] = squeezed
    truth = [list(d[:n]) for d, n in zip(digits, lengths, strict=True)]

    def right(model: str) -> int:
        frames = engine.call(Predict(model=model, images=narrow))
        read = [[d for d, _, _ in decode(f)] for f in np.asarray(frames)]
        return sum(r == t for r, t in zip(read, truth, strict=True))

    shipped = str(shipped_model_path())
    a, b = tmp_path / "a.keras", tmp_path / "b.keras"

    def finetune(base, out, **more):
        config = FinetuneConfig(
            base=str(base),
            out=str(out),
            images=mnist.x_test[:20],
            labels=mnist.y_test[:20],
            corrected=np.ones(20, bool),
            mnist=str(mnist_dir),
            **more,
        )
        return engine.call(Finetune(config))

    before = right(shipped)
    batches = 80  # batches, not seconds: the same run on a slow machine
    result = finetune(shipped, a, batches=batches, lines=narrow, line_digits=digits)
    sidecar = json.loads(Path(f"{a}.json").read_text())
    record = sidecar["field_reader"]
    assert result.lines == record["lines"] == 24
    assert record["user_lines_varied"] == {"width": VARY_WIDTH, "slant": VARY_SLANT}
    assert result.steps == record["steps"] == sidecar["batches"] == batches
    after = right(str(a))  # a.keras reads lines with its own a.fields.keras
    assert (tmp_path / "a.fields.keras").is_file()
    assert after >= before + 3, (before, after)

    finetune(a, b, batches=5)
    own = (tmp_path / "b.fields.keras").read_bytes()
    assert own == (tmp_path / "a.fields.keras").read_bytes()
    finetune(shipped, a, batches=5)
    assert not (tmp_path / "a.fields.keras").exists()
    assert json.loads(Path(f"{a}.json").read_text())["field_reader"] is None


def test_finetune_refuses_a_line_longer_than_the_reader_can_read(tmp_path, engine):
    """Refused before loading anything, as a ValueError the command line turns
    into one error line (TensorFlow's CTC loss would fail mid-run)."""
    from napari_digits.current_model import shipped_model_path
    from napari_digits.engine.client import EngineError
    from napari_digits.engine.protocol import Finetune, FinetuneConfig

    def config(count: int) -> FinetuneConfig:
        return FinetuneConfig(
            base=str(shipped_model_path()),
            out=str(tmp_path / "long.keras"),
            images=np.zeros((1, 28, 28), np.uint8),
            labels=np.zeros(1, np.int64),
            corrected=np.ones(1, bool),
            lines=np.zeros((1, 32, 192), np.uint8),
            line_digits=np.arange(count, dtype=np.int32)[None] % 10,
            time_budget=1.0,
        )

    with pytest.raises(EngineError, match="at most 24 digits"):
        engine.call(Finetune(config(25)))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(EngineError, match="batches"):
            engine.call(Finetune(replace(config(3), batches=bad)))
    assert not (tmp_path / "long.keras").exists()
