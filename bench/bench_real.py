"""Real-documents benchmark: real handwriting, printed digits, MNIST, sample page.

Run with ``.venv/bin/python bench/run.py real``. One row a set, read with
:func:`napari_digits.results.read_page` (what ``napari-digits read`` and the
Read digits widget do) and the model in ``BENCH_MODEL`` (default: the shipped
model), TensorFlow in this process as in the command line:

- ORAND-CAR-A ``val`` (``$REAL_DIR/orand-car-a``, 128 cheque amounts, 562
  digits), read as amounts (``--amounts``: each line's first digit weighed
  by the first-digit law), and again without (the baseline): predicted
  boxes are matched to the labelled boxes (IoU >= 0.3, see
  :func:`napari_digits.results.score`); *found* and *correct* are fractions of
  the labelled digits, *spurious* the fraction of the predicted digits that
  match no labelled digit (marks, specks, pieces), *amounts exact* the
  fraction of images whose digits read left to right equal the label
  (punctuation ignored: marks read as ``-1`` are left out);
- Semeion and optdigits (all digits), laid out as pages: dark ink on light
  paper, 48 px a digit, 24 px between digits, 20 a line;
- printed digits: 0-9 rendered from every DejaVu, Liberation and FreeFont
  file that ``fc-list`` knows, 48 px tall, one line a font;
- MNIST test accuracy of the model (the 10,000 test crops, no page);
- the shipped sample page (``sample_data/scanned_page.jpg``);
- MNIST test digits stretched 1.6 times (:func:`wide_row`): how often a
  wide digit is cut into pieces read as digits (*spurious*);
- touching pairs of MNIST test digits (:func:`pairs_row`): how often two
  digits that touch are read as those two digits ("11" and "00" that stay
  one digit);
- the baseline of the field reader (:func:`without_fields`): ORAND, the
  wide digits one a line and the touching pairs read digit by digit;
- the correction benchmark (:func:`corrections_rows`; skip it with
  ``BENCH_CORRECTIONS=0``): ORAND ``val`` and MNIST after fine-tuning on the
  corrected first 300 digits of ORAND ``train``.

The real sets are read from ``REAL_DIR`` (default ``shared/data/real``
beside the repository, ``../shared/data/real``); a set that is not
there is reported as missing. ``BENCH_ORAND_SPLIT`` picks another ORAND
split (``val`` by default). Times are wall seconds for the whole set.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIGIT_PX = 48
GAP_PX = 24
PER_LINE = 20
PER_PAGE = 200


def real_dir() -> Path:
    """Where the real sets are (``REAL_DIR``, else ``../shared/data/real``)."""
    return Path(os.environ.get("REAL_DIR") or REPO.parent / "shared/data/real")


def row(name, n, found=None, correct=None, spurious=None, exact=None, s=0.0, note=""):
    """One table row; fractions as floats, missing values empty."""
    return {
        "set": name,
        "digits": n,
        "found": found,
        "correct": correct,
        "spurious": spurious,
        "amounts exact": exact,
        "seconds": round(s, 1),
        "note": note,
    }


# --------------------------------------------------------------------------
# ORAND-CAR-A
# --------------------------------------------------------------------------


def orand_items(root: Path, split: str) -> list[dict]:
    """The labelled images of one ORAND split: path, digit string, true boxes."""
    items = []
    with open(root / "labels.csv", newline="") as f:
        for rec in csv.DictReader(f):
            if rec["split"] != split:
                continue
            truth = []
            for part in filter(None, rec["boxes_xywh_label"].split(";")):
                x, y, w, h, label = (int(v) for v in part.split())
                truth.append(
                    {
                        "min_row": y,
                        "min_col": x,
                        "max_row": y + h,
                        "max_col": x + w,
                        "label": label,
                    }
                )
            path, digits = root / rec["file"], rec["digit_string"]
            items.append({"path": path, "digits": digits, "truth": truth})
    return items


def digits_read(rows) -> str:
    """The digits of a table left to right; marks (value < 0) left out."""
    keep = sorted((r for r in rows if r.digits), key=lambda r: r.min_col)
    return "".join(r.digits for r in keep)


def orand(predict: Callable, split: str = "val", read=None) -> dict:
    """Read every image of an ORAND split and score it (see the module doc).

    ``read(image, predict)`` gives the rows; by default as ``napari-digits
    read --marks --amounts`` does (cheque amounts).
    """
    from napari_digits.io import read_image
    from napari_digits.results import score

    read = read or partial(_read_page, amounts=True)
    root = real_dir() / "orand-car-a"
    if not (root / "labels.csv").is_file():
        return row(f"ORAND-CAR-A {split}", 0, note=f"missing: {root}")
    items = orand_items(root, split)
    t = time.perf_counter()
    truth = found = correct = extra = predicted = exact = marks = 0
    for item in items:
        image = read_image(item["path"])
        rows = read(image, predict)
        marks += sum(r.value < 0 for r in rows)
        rows = [r for r in rows if r.value >= 0]
        s = score(rows, item["truth"])
        truth += s.truth
        found += s.found
        correct += s.correct
        extra += s.extra
        predicted += len(rows)
        exact += digits_read(rows) == item["digits"]
    return row(
        f"ORAND-CAR-A {split}",
        truth,
        found / truth,
        correct / truth,
        extra / max(predicted, 1),
        exact / len(items),
        time.perf_counter() - t,
        f"{len(items)} amounts, {predicted} digits and {marks} marks read",
    )


def _read_page(image, predict, *, amounts: bool = False):
    """Read as ``napari-digits read --marks`` does (marks are rows of -1)."""
    from napari_digits.results import read_page

    return read_page(image, predict, marks=True, amounts=amounts)[1]


# --------------------------------------------------------------------------
# digits laid out as pages
# --------------------------------------------------------------------------


def layout(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int = 0,
    per_line: int = PER_LINE,
    per_page: int = PER_PAGE,
) -> list[tuple[np.ndarray, list[dict]]]:
    """Lay ink images (255 = ink) out as pages of dark ink on light paper.

    Each image is scaled (bilinear) so that it is ``DIGIT_PX`` tall and
    placed ``GAP_PX`` from its neighbours, ``per_line`` a line; the paper has
    a little noise. Returns ``(page uint8, truth rows)`` per page.
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    zoom = DIGIT_PX / images.shape[1]
    cell = DIGIT_PX + GAP_PX
    cell_w = round(images.shape[2] * zoom) + GAP_PX
    pages = []
    for start in range(0, len(images), per_page):
        chunk = images[start : start + per_page]
        lines = -(-len(chunk) // per_line)
        shape = (lines * cell + GAP_PX, per_line * cell_w + GAP_PX)
        ink = np.zeros(shape, np.float32)
        truth = []
        for k, image in enumerate(chunk):
            big = np.clip(ndi.zoom(image.astype(np.float32) / 255, zoom, order=1), 0, 1)
            r = GAP_PX + (k // per_line) * cell
            c = GAP_PX + (k % per_line) * cell_w
            ink[r : r + big.shape[0], c : c + big.shape[1]] = big
            rows, cols = np.nonzero(big > 0.5)
            if rows.size == 0:
                continue
            truth.append(
                {
                    "min_row": r + int(rows.min()),
                    "min_col": c + int(cols.min()),
                    "max_row": r + int(rows.max()) + 1,
                    "max_col": c + int(cols.max()) + 1,
                    "label": int(labels[start + k]),
                }
            )
        paper = 0.9 + 0.02 * rng.standard_normal(shape)
        page = paper * (1 - ink) + 0.12 * ink
        pages.append((np.clip(page * 255, 0, 255).astype(np.uint8), truth))
    return pages


def pages_row(name: str, pages, predict, read=None) -> dict:
    """Read laid-out pages and score them against their truth."""
    from napari_digits.results import score

    read = read or _read_page
    t = time.perf_counter()
    truth = found = correct = extra = predicted = 0
    for page, rows_true in pages:
        rows = [r for r in read(page, predict) if r.value >= 0]
        s = score(rows, rows_true)
        truth += s.truth
        found += s.found
        correct += s.correct
        extra += s.extra
        predicted += len(rows)
    return row(
        name,
        truth,
        found / max(truth, 1),
        correct / max(truth, 1),
        extra / max(predicted, 1),
        None,
        time.perf_counter() - t,
        f"{len(pages)} pages",
    )


def uci_row(name: str, file: str, predict, read=None) -> dict:
    """Semeion or optdigits, all digits, as pages."""
    path = real_dir() / file
    if not path.is_file():
        return row(name, 0, note=f"missing: {path}")
    with np.load(path) as data:
        images, labels = data["images"], data["labels"]
    return pages_row(name, layout(images, labels), predict, read)


# --------------------------------------------------------------------------
# wide digits and touching pairs: cutting too much and too little
# --------------------------------------------------------------------------

WIDE_DIGITS = 2000
WIDE_ALONE = 600
#: how much wider the wide digits are made
WIDER = 1.6


def wide_row(predict, read=None, *, alone: bool = False) -> dict:
    """The first ``WIDE_DIGITS`` MNIST test digits stretched ``WIDER`` times.

    Wide handwriting: every piece of a wide digit is a candidate to be read
    as a digit of its own, so this row shows over-cutting (*spurious*) as the
    touching pairs show cuts not made. Laid out 12 a page, one line, so that
    the reader's rule for forms of square digits stays off; ``alone``: the
    first ``WIDE_ALONE`` of them, one a line, as the field reader reads them.
    """
    from scipy import ndimage as ndi

    from napari_digits.data import load_mnist

    mnist = load_mnist()
    x, y = mnist.x_test[:WIDE_DIGITS], mnist.y_test[:WIDE_DIGITS]
    width = round(28 * WIDER)
    wide = np.zeros((len(x), 28, width), np.uint8)
    for i, d in enumerate(x):
        stretched = ndi.zoom(d.astype(np.float32), (1, WIDER), order=1)
        wide[i, :, : stretched.shape[1]] = np.clip(stretched, 0, 255)[:, :width]
    if alone:
        pages = layout(wide[:WIDE_ALONE], y, per_line=1, per_page=PAIRS_PER_PAGE)
        name = f"MNIST test, {WIDER:g}x wide, one a line"
        return pages_row(name, pages, predict, read)
    pages = layout(wide, y, per_line=PAIRS_PER_PAGE, per_page=PAIRS_PER_PAGE)
    return pages_row(f"MNIST test, {WIDER:g}x wide", pages, predict, read)


TOUCHING_PAIRS = 200
#: pairs a page, one a line: fewer than the reader's ``MANY_DIGITS``, so that
#: its rule for forms of square digits stays off, as on a cheque
PAIRS_PER_PAGE = 12
#: touching pairs of one digit ("11", "00"): the first test digits of the class
SAME_PAIRS = 20


def pairs_row(predict, read=None, *, digit: int | None = None) -> dict:
    """MNIST test digits in touching pairs: are they cut into their two digits?

    ``TOUCHING_PAIRS`` pairs of two random MNIST test digits (seed 0), moved
    together until their ink touches (:func:`napari_digits.synthetic.
    touching_pair`), one a line, dark ink on light paper. *found* is the
    fraction of pairs read as two digits, *amounts exact* the fraction read as
    their two digits in order. With ``digit``, ``SAME_PAIRS`` pairs of that
    digit instead: the first and second test digits of its class, the third
    and fourth... ("11" and "00" are the hardest to cut: each half is a whole
    digit of the same class).
    """
    from napari_digits.data import load_mnist
    from napari_digits.synthetic import one_a_line, touching_pair

    mnist = load_mnist()
    if digit is None:
        order = np.random.default_rng(0).permutation(len(mnist.y_test))
        name, count = "MNIST touching pairs", TOUCHING_PAIRS
    else:
        order = np.flatnonzero(mnist.y_test == digit)
        name, count = f"MNIST touching {digit}{digit}s", SAME_PAIRS
    pairs, truth = [], []
    for a, b in zip(order[0::2], order[1::2], strict=True):
        if len(pairs) == count:
            break
        try:
            pairs.append(touching_pair(mnist.x_test[a], mnist.x_test[b]))
        except ValueError:
            continue
        truth.append([int(mnist.y_test[a]), int(mnist.y_test[b])])
    read = read or _read_page
    t = time.perf_counter()
    got: list[list[int]] = []
    for start in range(0, len(pairs), PAIRS_PER_PAGE):
        chunk = pairs[start : start + PAIRS_PER_PAGE]
        ink, tops = one_a_line(chunk, GAP_PX, GAP_PX)
        page = np.clip((0.9 - 0.8 * ink) * 255, 0, 255).astype(np.uint8)
        lines: list[list] = [[] for _ in chunk]
        for r in read(page, predict):
            k = int(np.searchsorted(tops, (r.min_row + r.max_row) / 2, "right")) - 1
            if r.value >= 0 and 0 <= k < len(chunk):
                lines[k].append((r.min_col, r.value))
        got += [[v for _, v in sorted(line)] for line in lines]
    seconds = time.perf_counter() - t
    one = sum(len(g) == 1 for g in got)
    two = sum(len(g) == 2 for g in got)
    exact = sum(g == t for g, t in zip(got, truth, strict=True))
    n = len(pairs)
    note = f"{n} pairs: {one} read as one digit, {two - exact} misread, "
    note += f"{n - one - two} in more or no pieces"
    return row(name, 2 * n, two / n, None, None, exact / n, seconds, note)


# --------------------------------------------------------------------------
# printed digits
# --------------------------------------------------------------------------


def printed_pages(fonts: list[Path]) -> list[tuple[np.ndarray, list[dict]]]:
    """Digits 0-9 of each font, one line a font, ``DIGIT_PX`` tall, spaced."""
    from PIL import Image, ImageDraw

    cell = DIGIT_PX + GAP_PX
    shape = (len(fonts) * (DIGIT_PX * 2) + GAP_PX * 2, 10 * cell + GAP_PX * 2)
    page = Image.new("L", (shape[1], shape[0]), 235)
    draw = ImageDraw.Draw(page)
    truth = []
    for i, path in enumerate(fonts):
        font = _font_for_height(path, DIGIT_PX)
        top = GAP_PX + i * DIGIT_PX * 2
        for d in range(10):
            x = GAP_PX + d * cell
            left, upper, right, lower = draw.textbbox((x, top), str(d), font=font)
            draw.text((x, top), str(d), font=font, fill=20)
            truth.append(
                {
                    "min_row": upper,
                    "min_col": left,
                    "max_row": lower,
                    "max_col": right,
                    "label": d,
                }
            )
    return [(np.asarray(page), truth)]


def _font_for_height(path: Path, height: int):
    """The font at the size whose digit "0" is ``height`` pixels tall."""
    from PIL import ImageFont

    probe = ImageFont.truetype(str(path), 100)
    _, top, _, bottom = probe.getbbox("0")
    return ImageFont.truetype(str(path), max(8, round(100 * height / (bottom - top))))


def printed_row(predict, read=None) -> dict:
    """Printed digits of the system fonts, read as a page."""
    from napari_digits.augment import font_files

    fonts = font_files()  # the fonts the shipped model was trained with
    if not fonts:
        return row("printed (system fonts)", 0, note="no DejaVu/Liberation/FreeFont")
    r = pages_row("printed (system fonts)", printed_pages(fonts), predict, read)
    r["note"] = f"{len(fonts)} fonts"
    return r


# --------------------------------------------------------------------------
# MNIST and the sample page
# --------------------------------------------------------------------------


def mnist_row(predict) -> dict:
    """Accuracy on the 10,000 MNIST test crops."""
    from napari_digits.data import load_mnist

    mnist = load_mnist()
    t = time.perf_counter()
    probs = predict(mnist.x_test)
    acc = float((np.argmax(probs[:, :10], axis=1) == mnist.y_test).mean())
    return row("MNIST test", len(mnist.y_test), None, acc, s=time.perf_counter() - t)


def sample_row(predict, read=None) -> dict:
    """The shipped sample page and its truth."""
    from PIL import Image

    from napari_digits.synthetic import read_truth

    sample = REPO / "sample_data" / "scanned_page.jpg"
    image = np.asarray(Image.open(sample))
    return pages_row(
        "sample page", [(image, read_truth(sample.with_suffix(".csv")))], predict, read
    )


# --------------------------------------------------------------------------
# learning from corrections
# --------------------------------------------------------------------------

CORRECTED_DIGITS = 300


def corrections_rows(predict, path: str) -> list[dict]:
    """The correction benchmark: correct, fine-tune, measure again.

    The images of ORAND ``train`` (file order) that hold its first
    ``CORRECTED_DIGITS`` labelled digits are read and every piece is
    corrected from the labels, as a user would in the table: each labelled
    digit belongs to the piece that overlaps it most; a piece holding one
    digit read wrongly gets that digit, a piece holding several (touching
    digits not cut apart) gets them all, left to right (``"65"``), a digit
    no piece overlaps (missed) is typed with the nearest piece's digits,
    and a piece that holds no labelled digit (a speck, a stroke cut off a
    neighbour) is "not a digit" (``NOT_A_DIGIT``). The model is fine-tuned
    on the corrected digits and the confident ones, and the field reader on
    their lines (:func:`napari_digits.corrections.select`), MNIST replayed,
    in the engine's default budget; ORAND ``val``, MNIST and the touching
    pairs are measured again.
    """
    from napari_digits.corrections import LearningSet, select
    from napari_digits.engine import models
    from napari_digits.io import read_image
    from napari_digits.results import NOT_A_DIGIT, box_iou, correct, read_page

    root = real_dir() / "orand-car-a"
    if not (root / "labels.csv").is_file():
        return [row("after corrections", 0, note=f"missing: {root}")]
    learning, seen = LearningSet(), 0
    counts = {"one": 0, "several": 0, "missed": 0, "marked": 0}
    keys = ("min_row", "min_col", "max_row", "max_col")
    for item in orand_items(root, "train"):
        if seen >= CORRECTED_DIGITS:
            break
        truth = sorted(item["truth"], key=lambda t: t["min_col"])
        seen += len(truth)
        scan, rows, _ = read_page(read_image(item["path"]), predict, amounts=True)
        if not rows:
            continue
        fb = np.array([[getattr(r, k) for k in keys] for r in rows], float)
        iou = box_iou(np.array([[t[k] for k in keys] for t in truth], float), fb)
        centres = (fb[:, 1] + fb[:, 3]) / 2
        held: dict[int, list[int]] = {}  # row -> the labelled digits it holds
        for i, t in enumerate(truth):
            j = int(iou[i].argmax())
            if iou[i, j] == 0:  # missed: typed with its nearest neighbour
                j = int(np.abs(centres - (t["min_col"] + t["max_col"]) / 2).argmin())
                counts["missed"] += 1
            held.setdefault(j, []).append(i)
        for j, r in enumerate(rows):
            text = "".join(str(truth[i]["label"]) for i in held.get(j, []))
            if text == r.digits:
                continue
            rows = correct(rows, j, text or NOT_A_DIGIT)
            kind = "marked" if not text else "one" if len(text) == 1 else "several"
            counts[kind] += 1
        learning.add(select(scan, rows))
    out = REPO / "bench" / "results" / "corrected.keras"
    out.parent.mkdir(exist_ok=True)
    config = learning.finetune_config(
        path,
        out,
        provenance={"benchmark": f"ORAND train, first {CORRECTED_DIGITS} digits"},
    )
    t = time.perf_counter()
    result = models.finetune(config)
    seconds = time.perf_counter() - t

    def tuned(crops):
        return models.predict(str(out), crops)

    val = orand(tuned, "val")
    val["set"] += ", after corrections"
    mnist = mnist_row(tuned)
    mnist["set"] += ", after corrections"
    pairs = pairs_row(tuned)
    pairs["set"] += ", after corrections"
    record = json.loads(Path(f"{out}.json").read_text())["field_reader"] or {}
    note = (
        f"{counts['one']} corrected + {counts['several']} to several digits "
        f"({counts['missed']} missed digits typed with a neighbour) + "
        f"{counts['marked']} not a digit + "
        f"{len(config.labels) - counts['one']} confident "
        f"of the first {seen} train digits, "
        f"{len(config.lines)} of their lines; "
        f"fine-tuned in {seconds:.0f} s ({result.steps} batches, field reader "
        f"{record.get('steps', 0)})"
    )
    val["note"] = note
    return [val, mnist, pairs]


def _digit_by_digit(image, predict, *, amounts: bool = False):
    """Read as ``_read_page`` does, without the field reader."""
    from napari_digits.results import read_page

    return read_page(image, predict, marks=True, fields=False, amounts=amounts)[1]


def without_fields(predict, split: str) -> list[dict]:
    """The rows the field reader changes, read digit by digit: the baseline."""
    rows = [
        orand(predict, split, partial(_digit_by_digit, amounts=True)),
        wide_row(predict, _digit_by_digit, alone=True),
        pairs_row(predict, _digit_by_digit),
        pairs_row(predict, _digit_by_digit, digit=1),
        pairs_row(predict, _digit_by_digit, digit=0),
    ]
    for r in rows:
        r["set"] += ", digit by digit"
    return rows


def model_path() -> str:
    """``BENCH_MODEL`` or the shipped model."""
    from napari_digits.current_model import shipped_model_path

    return os.environ.get("BENCH_MODEL") or str(shipped_model_path())


def run() -> list[dict]:
    """Every set, one row each (see the module's docstring)."""
    from napari_digits.engine import models

    path = model_path()

    def predict(crops):
        return models.predict(path, crops)

    predict(np.zeros((1, 28, 28), np.uint8))  # load the model once
    split = os.environ.get("BENCH_ORAND_SPLIT", "val")
    plain = orand(predict, split, _read_page)
    plain["set"] += ", not as amounts"
    out = [
        orand(predict, split),
        plain,
        uci_row("Semeion (pages)", "semeion.npz", predict),
        uci_row("optdigits (pages)", "optdigits.npz", predict),
        printed_row(predict),
        mnist_row(predict),
        sample_row(predict),
        wide_row(predict),
        wide_row(predict, alone=True),
        pairs_row(predict),
        pairs_row(predict, digit=1),
        pairs_row(predict, digit=0),
        *without_fields(predict, split),
    ]
    if os.environ.get("BENCH_CORRECTIONS", "1") != "0":
        out += corrections_rows(predict, path)
    for r in out:
        r["model"] = Path(path).name
    return out
