"""Synthetic scanned pages of handwritten digits, with their ground truth.

Every digit is an image of the MNIST *test* set, so that a model trained on
the MNIST training set never saw it. The page imitates what a flatbed scanner
delivers: paper tone and texture, a printed header and ruled lines, blue
ballpoint ink, a slight rotation, uneven light, blur, noise and JPEG
artefacts. Everything is drawn from one seed.

The shipped sample was made with::

    python -m napari_digits.synthetic --out sample_data/scanned_page.jpg --seed 0
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_digits.io import atomic_open, atomic_path

#: columns of the ground-truth CSV
TRUTH_HEADER = (
    "digit",
    "label",
    "line",
    "position",
    "number",
    "min_row",
    "min_col",
    "max_row",
    "max_col",
    "mnist_index",
)

PAPER = np.array([0.94, 0.92, 0.86], np.float32)
BLUE_INK = np.array([0.10, 0.13, 0.36], np.float32)
PRINT_INK = np.array([0.15, 0.15, 0.15], np.float32)
RULE_INK = np.array([0.55, 0.68, 0.86], np.float32)


@dataclass(frozen=True)
class SyntheticPage:
    """A generated page: ``image`` uint8 RGB ``(H, W, 3)``, ``truth`` one dict a digit.

    Each truth row has the keys of :data:`TRUTH_HEADER`; boxes are in page
    pixels (max exclusive) after the page was rotated.
    """

    image: np.ndarray
    truth: list[dict[str, int]]


def make_page(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    shape: tuple[int, int] = (1754, 1240),
    digit_height: float = 44.0,
    max_digits: int | None = None,
    seed: int = 0,
    jpeg_quality: int | None = 80,
) -> SyntheticPage:
    """Draw a scanned page of handwritten numbers made of MNIST test digits.

    Parameters
    ----------
    images, labels : ndarray
        MNIST test images ``(N, 28, 28)`` uint8 and their labels ``(N,)``.
    shape : (int, int)
        Page size in pixels; the default is A4 at 150 dpi.
    digit_height : float
        Mean height of a written digit in pixels (about 7 mm by default).
    max_digits : int, optional
        Stop after this many digits; by default the page is filled.
    seed : int
        Seed of every random choice.
    jpeg_quality : int, optional
        Pass the page through JPEG at this quality (None: no JPEG).

    Returns
    -------
    SyntheticPage
    """
    rng = np.random.default_rng(seed)
    ink = np.zeros(shape, np.float32)
    ids = np.zeros(shape, np.int32)
    printed, rules = _print_layer(shape, digit_height, seed)
    top = int(5.0 * digit_height)
    placed = _write_numbers(
        images, ink, ids, rng, top=top, height=digit_height, max_digits=max_digits
    )
    page = _paper(shape, rng)
    page *= 1.0 - rules[..., None] * (1.0 - RULE_INK)
    page *= 1.0 - printed[..., None] * (1.0 - PRINT_INK)
    page *= 1.0 - ink[..., None] * (1.0 - BLUE_INK)
    angle = float(rng.uniform(-1.2, 1.2))
    page, ids = _rotate(page, ids, angle)
    page = _scanner(page, rng)
    image = np.round(np.clip(page, 0, 1) * 255).astype(np.uint8)
    if jpeg_quality:
        image = _jpeg(image, jpeg_quality)
    truth = _truth(ids, placed, labels)
    return SyntheticPage(image, truth)


def touching_pair(a: np.ndarray, b: np.ndarray, scale: int = 3) -> np.ndarray:
    """Two digits side by side, moved together until their ink just touches.

    Parameters
    ----------
    a, b : ndarray
        uint8 ``(28, 28)`` MNIST digits, white ink on black; ``a`` on the left.
    scale : int
        Zoom applied to both first (3: about 60 px a digit).

    Returns
    -------
    ndarray
        float ink in 0..1, one connected component (8-connected, above 0.5).

    Raises
    ------
    ValueError
        If the digits never touch, however close.
    """
    big = [
        np.clip(ndi.zoom(d.astype(float) / 255, scale, order=1), 0, 1) for d in (a, b)
    ]
    cols = [np.flatnonzero(x.max(axis=0) > 0.3) for x in big]
    if not cols[0].size or not cols[1].size:
        raise ValueError("a digit without ink")
    left = big[0][:, : cols[0][-1] + 1]
    right = big[1][:, cols[1][0] :]
    for overlap in range(right.shape[1]):
        width = left.shape[1] + right.shape[1] - overlap
        ink = np.zeros((left.shape[0], width))
        ink[:, : left.shape[1]] = left
        region = ink[:, left.shape[1] - overlap :]
        np.maximum(region, right[:, : region.shape[1]], out=region)
        if ndi.label(ink > 0.5, structure=np.ones((3, 3)))[1] == 1:
            return ink
    raise ValueError("the digits never touch")


def one_a_line(
    inks: Sequence[np.ndarray], gap: int, margin: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stack ink images one a line: ``gap`` pixels between and above them.

    Parameters
    ----------
    inks : sequence of ndarray
        float ink in 0..1 (such as :func:`touching_pair` gives).
    gap : int
        Rows above each image and below the last.
    margin : int
        Columns left and right of the widest image.

    Returns
    -------
    ink : ndarray
        float ``(H, W)``, the images placed ``margin`` from the left.
    tops : ndarray
        int ``(len(inks),)``: the first row of each image.
    """
    tops = gap + np.cumsum([0] + [a.shape[0] + gap for a in inks[:-1]])
    height = gap + sum(a.shape[0] + gap for a in inks)
    ink = np.zeros((height, max(a.shape[1] for a in inks) + 2 * margin))
    for top, a in zip(tops, inks, strict=True):
        ink[top : top + a.shape[0], margin : margin + a.shape[1]] = a
    return ink, tops


def _print_layer(shape, height, seed):
    """Draw the printed header text and two ruled lines (coverage in 0..1)."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = shape
    text = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(text)
    size = int(0.5 * height)
    font = ImageFont.load_default(size=size)
    margin = int(2 * height)
    draw.text((margin, int(1.5 * height)), "DIGIT SURVEY - sheet 1", 255, font=font)
    small = ImageFont.load_default(size=int(0.35 * height))
    line = "Write one number per box, dark pen. Reference: MNIST test set."
    draw.text((margin, int(2.4 * height)), line, 255, font=small)
    rules = Image.new("L", (w, h), 0)
    rd = ImageDraw.Draw(rules)
    thick = max(2, int(height / 18))
    for y in (int(3.6 * height), h - int(2.5 * height)):
        rd.rectangle([margin // 2, y, w - margin // 2, y + thick], fill=230)
    return (
        np.asarray(text, np.float32) / 255.0,
        np.asarray(rules, np.float32) / 255.0,
    )


def _write_numbers(images, ink, ids, rng, *, top, height, max_digits):
    """Write lines of numbers into ``ink``/``ids``; return the placements."""
    h, w = ink.shape
    margin = int(2 * height)
    pitch = 2.0 * height
    order = rng.permutation(len(images))
    placed: list[dict[str, int]] = []
    y = top + height
    line = 0
    while y + height < h - 3.2 * height:
        line += 1
        x = margin + rng.uniform(0, height)
        position = 0
        while True:
            n = int(rng.integers(1, 7))
            digits = [
                _digit(images[order[len(placed) + k]], height, rng) for k in range(n)
            ]
            gaps = rng.uniform(0.12, 0.3, n) * height
            width = sum(d.shape[1] for d in digits) + gaps[:-1].sum()
            if x + width > w - margin or (max_digits and len(placed) + n > max_digits):
                break
            number = 1 + (placed[-1]["number"] if placed else 0)
            for d, gap in zip(digits, gaps, strict=True):
                position += 1
                row = int(y - d.shape[0] / 2 + rng.normal(0, 0.05) * height)
                _paste(ink, ids, d, row, int(x), len(placed) + 1)
                placed.append(
                    {
                        "line": line,
                        "position": position,
                        "number": number,
                        "mnist_index": int(order[len(placed)]),
                    }
                )
                x += d.shape[1] + gap
            x += rng.uniform(0.9, 2.0) * height
        if max_digits and len(placed) >= max_digits:
            break
        y += pitch * rng.uniform(0.95, 1.05)
    return placed


def _digit(image: np.ndarray, height: float, rng) -> np.ndarray:
    """Cut an MNIST digit to its ink box; scale its longest side to ``height``.

    MNIST fitted every digit's longest side into 20 pixels; scaling that side
    keeps flat digits flat, as they were written.
    """
    from skimage.transform import resize

    rows = np.flatnonzero(image.max(axis=1) > 64)  # faint specks do not count
    cols = np.flatnonzero(image.max(axis=0) > 64)
    cut = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] / 255.0
    scale = height * rng.uniform(0.88, 1.12) / max(cut.shape)
    size = (max(1, round(cut.shape[0] * scale)), max(1, round(cut.shape[1] * scale)))
    pressure = rng.uniform(0.85, 1.0)
    return (resize(cut, size, order=1, mode="edge") * pressure).astype(np.float32)


def _paste(ink, ids, digit, row, col, ident):
    h, w = digit.shape
    row = min(max(row, 0), ink.shape[0] - h)
    col = min(max(col, 0), ink.shape[1] - w)
    area = (slice(row, row + h), slice(col, col + w))
    np.maximum(ink[area], digit, out=ink[area])
    ids[area][digit > 0.3] = ident


def _paper(shape, rng) -> np.ndarray:
    """Paper tone, fibre texture and grain."""
    h, w = shape
    coarse = ndi.gaussian_filter(rng.normal(size=(h // 8 + 1, w // 8 + 1)), 3)
    coarse = ndi.zoom(coarse, 8, order=1)[:h, :w]
    coarse /= max(float(np.abs(coarse).max()), 1e-6)
    grain = ndi.gaussian_filter(rng.normal(size=shape), 0.8)
    tone = 1.0 + 0.03 * coarse + 0.02 * grain
    return (tone[..., None] * PAPER).astype(np.float32)


def _rotate(page, ids, angle):
    from skimage.transform import rotate

    fill = [float(np.median(page[..., c])) for c in range(3)]
    out = np.stack(
        [rotate(page[..., c], angle, order=1, cval=fill[c]) for c in range(3)], -1
    )
    return out.astype(np.float32), rotate(
        ids, angle, order=0, preserve_range=True
    ).astype(np.int32)


def _scanner(page, rng) -> np.ndarray:
    """Uneven light (a gradient and a falloff), blur and sensor noise."""
    h, w = page.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    falloff = ((yy - cy) ** 2 + (xx - cx) ** 2) / (h**2 + w**2)
    light = 1.0 - 0.35 * falloff - 0.08 * xx / w
    page = page * light[..., None]
    page = ndi.gaussian_filter(page, sigma=(0.8, 0.8, 0))
    return page + rng.normal(0, 0.015, page.shape).astype(np.float32)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _truth(ids, placed, labels) -> list[dict[str, int]]:
    slices = ndi.find_objects(ids)
    rows = []
    for k, where in enumerate(placed, start=1):
        s = slices[k - 1] if k - 1 < len(slices) else None
        if s is None:
            continue
        rows.append(
            {
                "digit": k,
                "label": int(labels[where["mnist_index"]]),
                "line": where["line"],
                "position": where["position"],
                "number": where["number"],
                "min_row": s[0].start,
                "min_col": s[1].start,
                "max_row": s[0].stop,
                "max_col": s[1].stop,
                "mnist_index": where["mnist_index"],
            }
        )
    return rows


def write_truth(rows: Sequence[dict[str, int]], path: str | Path) -> None:
    """Write ground-truth rows (see :data:`TRUTH_HEADER`) to a CSV file."""
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TRUTH_HEADER)
        writer.writeheader()
        writer.writerows(rows)


def read_truth(path: str | Path) -> list[dict[str, int]]:
    """Read a ground-truth CSV written by :func:`write_truth`."""
    with open(path, newline="") as f:
        return [{k: int(v) for k, v in row.items()} for row in csv.DictReader(f)]


def main(argv: Sequence[str] | None = None) -> int:
    """Write a synthetic page and its ground-truth CSV (same name, ``.csv``)."""
    parser = argparse.ArgumentParser(
        prog="python -m napari_digits.synthetic", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, type=Path, help=".jpg or .png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", type=int, nargs=2, default=(1754, 1240))
    parser.add_argument("--digit-height", type=float, default=44.0)
    parser.add_argument("--max-digits", type=int, default=None)
    parser.add_argument("--mnist", default=None, help="MNIST path (default: MNIST_DIR)")
    args = parser.parse_args(argv)
    from PIL import Image

    from napari_digits.data import load_mnist

    mnist = load_mnist(args.mnist)
    jpeg = args.out.suffix.lower() in (".jpg", ".jpeg")
    page = make_page(
        mnist.x_test,
        mnist.y_test,
        shape=tuple(args.shape),
        digit_height=args.digit_height,
        max_digits=args.max_digits,
        seed=args.seed,
        jpeg_quality=None if jpeg else 80,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        Image.fromarray(page.image).save(tmp, **({"quality": 80} if jpeg else {}))
    write_truth(page.truth, args.out.with_suffix(".csv"))
    print(
        f"wrote {args.out} and {args.out.with_suffix('.csv').name}: "
        f"{len(page.truth)} digits"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
