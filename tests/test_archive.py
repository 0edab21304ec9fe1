"""The archive's pure core: jobs, the journal, reading a file; no TensorFlow."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from napari_digits.archive.journal import Journal, JournalError, journal_path
from napari_digits.archive.pages import (
    PageJob,
    ReadOptions,
    check_annotated,
    find_pages,
    plan_jobs,
    read_job,
)
from napari_digits.io import OutputError
from napari_digits.results import DigitRow, read_csv, write_csv

SETTINGS = {"model": "m.keras", "ink": "auto"}


def row(file, digit, page=1):
    return DigitRow(
        file, digit, 1, digit, 1, 0, 0, 9, 9, 4.5, 4.5, 3, 0.9, 5, 0.1, page=page
    )


def test_journal_keeps_finished_files_through_a_cut_line_and_finalises_in_order(
    tmp_path,
):
    out = tmp_path / "r.csv"
    journal = Journal.open(out, settings=SETTINGS)
    journal.append("b.png", 1, [row("b.png", 1), row("b.png", 2)])
    journal.append("a.png", 2, [row("a.png", 1, page=1), row("a.png", 1, page=2)])
    journal.close()
    with open(journal_path(out), "ab") as f:  # a kill in the middle of a line
        f.write(b'{"file": "c.png", "pages": 1, "ro')

    with pytest.raises(JournalError, match="--resume"):
        Journal.open(out, settings=SETTINGS)
    journal = Journal.open(out, settings=SETTINGS, resume=True)
    assert journal.done == {"b.png": 1, "a.png": 2} and journal.pages == 3
    journal.append("c.png", 1, [row("c.png", 1)])
    order = {"a.png": 0, "b.png": 1, "c.png": 2}
    assert journal.finalise(out, order.get) == 5

    rows = read_csv(out)
    assert [(r.file, r.page, r.digit) for r in rows] == [
        ("a.png", 1, 1),
        ("a.png", 2, 1),
        ("b.png", 1, 1),
        ("b.png", 1, 2),
        ("c.png", 1, 1),
    ]
    assert not journal_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_resume_refuses_other_settings_and_takes_the_output_rows(tmp_path):
    out = tmp_path / "r.parquet"
    write_csv([row("old.png", 1), row("old.png", 2)], out)
    journal = Journal.open(out, settings=SETTINGS, resume=True)
    assert journal.done == {"old.png": 1} and journal.imported == 1
    journal.append("new.png", 1, [row("new.png", 1)])
    journal.close()
    with pytest.raises(JournalError, match="ink: 'auto' then, 'dark' now"):
        Journal.open(out, settings={**SETTINGS, "ink": "dark"}, resume=True)
    journal = Journal.open(out, settings=SETTINGS, resume=True)
    journal.finalise(out, lambda file: {"new.png": 0}.get(file, -1))
    # files no longer given come first, as they were
    assert [r.file for r in read_csv(out)] == ["old.png"] * 2 + ["new.png"]


def test_a_journal_line_is_json_with_the_rows(tmp_path):
    journal = Journal.open(tmp_path / "r.csv", settings=SETTINGS)
    journal.append("a.png", 1, [row("a.png", 1)])
    lines = journal_path(tmp_path / "r.csv").read_text().splitlines()
    journal.discard()
    assert json.loads(lines[0]) == {"journal": 1, "settings": SETTINGS}
    assert json.loads(lines[1])["file"] == "a.png"
    assert not journal_path(tmp_path / "r.csv").exists()


def test_annotated_names_are_unique_in_file_order_and_never_in_an_input(tmp_path):
    (tmp_path / "scans" / "b").mkdir(parents=True)
    for name in ("a.png", "b/a.png", "c.jpg"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "scans" / name)
    pages = find_pages([tmp_path / "scans", tmp_path / "scans" / "c.jpg"])
    assert [p.name for p in pages] == ["a.png", "a.png", "c.jpg"]
    jobs = plan_jobs(pages, tmp_path / "out")
    assert [j.order for j in jobs] == [0, 1, 2]
    names = [j.annotated.rsplit("/", 1)[1] for j in jobs]
    assert names == ["a.png", "a-2.png", "c.png"]
    for folder in (tmp_path / "scans", tmp_path / "scans" / "b" / "ann"):
        with pytest.raises(OutputError, match="inside the input folder"):
            check_annotated(folder, [tmp_path / "scans"])
    assert check_annotated(tmp_path / "ann", [tmp_path / "scans"]).is_dir()


def uniform(crops):
    """Every digit a 3 at 55%; lines (the field reader's input) read as blank."""
    if crops.shape[1:] != (28, 28):
        frames = np.zeros((len(crops), 48, 11), np.float32)
        frames[:, :, 10] = 1.0
        return frames
    p = np.full((len(crops), 10), 0.05, np.float32)
    p[:, 3] = 0.55
    return p


def test_read_job_reads_a_page_and_reports_an_unreadable_file(tmp_path, mnist_dir):
    from napari_digits.data import load_mnist
    from napari_digits.synthetic import make_page

    mnist = load_mnist()
    page = make_page(
        mnist.x_test,
        mnist.y_test,
        shape=(400, 300),
        digit_height=30,
        max_digits=6,
        seed=3,
    )
    Image.fromarray(page.image).save(tmp_path / "p.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    ann = tmp_path / "ann"
    ann.mkdir()

    done = read_job(
        PageJob(4, str(tmp_path / "p.png"), str(ann / "p.png")), uniform, ReadOptions()
    )
    assert done.error is None and done.order == 4 and done.pages == 1
    assert len(done.rows) >= len(page.truth) > 0  # the tiny header has marks too
    assert {(r.file, r.page, r.prediction) for r in done.rows} == {
        (str(tmp_path / "p.png"), 1, 3)
    }
    assert (ann / "p.png").is_file()
    bad = read_job(PageJob(5, str(tmp_path / "bad.png")), uniform, ReadOptions())
    assert bad.error and "bad.png" in bad.error and not bad.rows


def four_or_one(crops):
    """Every digit a 4 at 60% or a 1 at 35%; lines read as blank."""
    if crops.shape[1:] != (28, 28):
        return uniform(crops)
    p = np.full((len(crops), 10), 0.05 / 8, np.float32)
    p[:, 4], p[:, 1] = 0.6, 0.35
    return p


def test_read_as_amounts_reads_an_unsure_first_digit_of_a_line_as_a_1(
    tmp_path, mnist_dir
):
    from napari_digits.cli import build_parser
    from napari_digits.cli.read import _options, _settings
    from napari_digits.data import load_mnist
    from napari_digits.synthetic import make_page

    mnist = load_mnist()
    page = make_page(mnist.x_test, mnist.y_test, shape=(500, 400), seed=5)
    Image.fromarray(page.image).save(tmp_path / "p.png")
    args = build_parser().parse_args(["read", "p.png", "--out", "r.csv", "--amounts"])
    job = PageJob(0, str(tmp_path / "p.png"))
    rows = read_job(job, four_or_one, _options(args)).rows
    lines = {r.line for r in rows}
    assert len(lines) > 1
    firsts = [
        min((r for r in rows if r.line == n), key=lambda r: r.position) for n in lines
    ]
    assert all(r.prediction == 1 and r.runner_up == 4 for r in firsts)
    assert sum(r.prediction == 4 for r in rows) == len(rows) - len(lines)
    assert {r.prediction for r in read_job(job, four_or_one, ReadOptions()).rows} == {4}
    # a resume must read as amounts too; older journals (no such key) still resume
    assert _settings(args, "m.keras")["amounts"] is True
    plain = build_parser().parse_args(["read", "p.png", "--out", "r.csv"])
    assert "amounts" not in _settings(plain, "m.keras")


def test_each_page_of_a_multi_page_tiff_is_a_page(tmp_path, mnist_dir):
    import tifffile

    from napari_digits.data import load_mnist
    from napari_digits.synthetic import make_page

    mnist = load_mnist()
    pages = [
        make_page(
            mnist.x_test,
            mnist.y_test,
            shape=(400, 300),
            digit_height=30,
            max_digits=6,
            seed=seed,
        ).image
        for seed in (1, 2)
    ]
    tifffile.imwrite(tmp_path / "book.tif", np.stack(pages), photometric="rgb")
    ann = tmp_path / "ann"
    ann.mkdir()
    done = read_job(
        PageJob(0, str(tmp_path / "book.tif"), str(ann / "book.png")),
        uniform,
        ReadOptions(),
    )
    assert done.error is None and done.pages == 2
    assert {r.page for r in done.rows} == {1, 2}
    assert [r.page for r in done.rows] == sorted(r.page for r in done.rows)
    assert sorted(p.name for p in ann.iterdir()) == ["book-p2.png", "book.png"]


def test_a_page_that_raises_is_skipped_and_the_others_are_read(
    tmp_path, mnist_dir, monkeypatch
):
    from napari_digits import results
    from napari_digits.archive.pages import read_jobs
    from napari_digits.data import load_mnist
    from napari_digits.synthetic import make_page

    mnist = load_mnist()
    page = make_page(
        mnist.x_test,
        mnist.y_test,
        shape=(400, 300),
        digit_height=30,
        max_digits=6,
        seed=3,
    )
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(page.image).save(tmp_path / name)
    read_page = results.read_page

    def short_of_memory_on_b(image, predict, *, file, **options):
        if file.endswith("b.png"):
            raise MemoryError("no room for this page")
        return read_page(image, predict, file=file, **options)

    monkeypatch.setattr(results, "read_page", short_of_memory_on_b)
    jobs = plan_jobs(find_pages([tmp_path]))
    done = list(read_jobs(jobs, uniform, ReadOptions()))
    assert [d.error for d in done] == [None, "MemoryError: no room for this page", None]
    assert done[0].rows and done[2].rows
