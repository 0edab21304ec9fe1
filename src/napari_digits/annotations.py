"""What is drawn over a read page, and the glyph text of other results.

Box outlines, readings and status codes of a read page; the same glyphs
write the tile indices of Learned filters and the confusion counts.

Pure numpy (and Pillow for the glyphs): the Read digits widget builds these
arrays in its worker thread, so that the viewer only hands them to layers.

Why not napari Shapes and text: a Shapes layer of thousands of rectangles
takes seconds to triangulate and its text positions cost O(N²) on every zoom
step, and on Mesa llvmpipe a layer that draws text (Shapes, Points with text)
crashes the viewer when one is removed and another drawn (README, Known
issues). Boxes are therefore line segments (a Vectors layer: four a box) and
readings are glyphs written into a small label image (one texture that the
GPU scales with the zoom, so each digit's reading stays the size of its box).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from napari_digits.results import DigitRow

#: status codes (values of the readings image; 0 is transparent)
OK, REVIEW, CORRECTED = 1, 2, 3
#: colour of each status code: confident, to review, corrected
STATUS_COLOURS = {OK: "lime", REVIEW: "orangered", CORRECTED: "cyan"}
#: height of a reading's glyph in texels of the readings image
GLYPH_TEXELS = 14
#: a reading's height as a fraction of the page's digit height
READING_HEIGHT = 0.45


def status(rows: Sequence[DigitRow], threshold: float) -> np.ndarray:
    """Status code of each row: corrected, to review (below ``threshold``), ok.

    Examples
    --------
    >>> from dataclasses import replace
    >>> row = DigitRow("", 1, 1, 1, 1, 0, 0, 9, 6, 4.0, 3.0, 7, 0.5, 1, 0.4)
    >>> status([row, replace(row, probability=0.99), replace(row, corrected=1)], 0.8)
    array([2, 1, 3], dtype=uint8)
    """
    out = np.full(len(rows), OK, np.uint8)
    for k, row in enumerate(rows):
        if row.corrected is not None:
            out[k] = CORRECTED
        elif row.needs_review(threshold):
            out[k] = REVIEW
    return out


def box_segments(rows: Sequence[DigitRow]) -> np.ndarray:
    """Four segments a box, as napari vectors ``(4N, 2, 2)``: start, offset.

    Boxes are drawn on the pixel edges around each digit (rows, cols).
    """
    b = np.array(
        [[r.min_row, r.min_col, r.max_row, r.max_col] for r in rows], float
    ).reshape(-1, 4)
    b -= 0.5
    r0, c0, r1, c1 = b.T
    corners = np.stack(
        [np.c_[r0, c0], np.c_[r0, c1], np.c_[r1, c1], np.c_[r1, c0]], axis=1
    )
    offsets = np.roll(corners, -1, axis=1) - corners
    return np.stack([corners, offsets], axis=2).reshape(-1, 2, 2)


def segment_colours(codes: np.ndarray, highlight: int | None = None) -> np.ndarray:
    """RGBA colour of each box segment, from its row's status code.

    The segments of row ``highlight`` (the selected digit) are white.
    """
    from napari.utils.colormaps.standardize_color import transform_color

    palette = np.zeros((4, 4), np.float32)
    for code, name in STATUS_COLOURS.items():
        palette[code] = transform_color(name)[0]
    colours = np.repeat(palette[np.asarray(codes, int)], 4, axis=0)
    if highlight is not None and 0 <= highlight < len(codes):
        colours[4 * highlight : 4 * highlight + 4] = (1, 1, 1, 1)
    return colours


#: the characters :func:`glyphs` draws besides the digits
SIGNS = " >%"


@lru_cache(maxsize=8)
def glyphs(height: int = GLYPH_TEXELS) -> dict[str, np.ndarray]:
    """Boolean masks of the digits 0-9 and of :data:`SIGNS`, Pillow's default font.

    A digit's mask is cropped to its ink; a sign's columns are cropped to its
    ink and its rows to the digits' band, so that it sits on their baseline.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=height * 1.35)
    inked = {}
    for char in "0123456789" + SIGNS:
        canvas = Image.new("L", (height * 2, height * 2))
        ImageDraw.Draw(canvas).text((0, 0), char, fill=255, font=font)
        inked[char] = np.asarray(canvas) > 96
    band = np.flatnonzero(np.any([inked[c].any(1) for c in "0123456789"], axis=0))
    out = {}
    for char, mask in inked.items():
        rows = np.flatnonzero(mask.any(1)) if char.isdigit() else band
        cols = np.flatnonzero(mask.any(0))
        if not len(cols):  # a space: blank, a third of the height wide
            out[char] = np.zeros((len(band), max(1, height // 3)), bool)
            continue
        out[char] = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return out


def text_width(text: str, height: int = GLYPH_TEXELS) -> int:
    """Return the width of ``text`` written by :func:`write_text`, in texels."""
    masks = glyphs(height)
    gap = max(1, height // 7)
    return sum(masks[c].shape[1] for c in text) + gap * max(len(text) - 1, 0)


def write_text(
    image: np.ndarray,
    text: str,
    bottom: int,
    left: int,
    code: int,
    height: int = GLYPH_TEXELS,
) -> None:
    """Write ``text`` (digits and :data:`SIGNS`) with value ``code`` into ``image``.

    The glyphs stand on row ``bottom`` (exclusive) from column ``left``;
    what falls outside ``image`` is clipped.
    """
    masks = glyphs(height)
    gap = max(1, height // 7)
    for char in text:
        mask = masks[char]
        h, w = mask.shape
        r0, c0 = bottom - h, left
        rs, cs = max(r0, 0), max(c0, 0)
        target = image[rs : r0 + h, cs : c0 + w]
        clipped = mask[rs - r0 : rs - r0 + target.shape[0], cs - c0 :][
            :, : target.shape[1]
        ]
        target[clipped] = code
        left += w + gap


def readings_scale(digit_height: float) -> float:
    """Page pixels per texel of the readings image of a page."""
    return max(1.0, READING_HEIGHT * float(digit_height) / GLYPH_TEXELS)


def readings_image(
    rows: Sequence[DigitRow],
    codes: np.ndarray,
    page_shape: tuple[int, int],
    scale: float,
) -> np.ndarray:
    """Write each row's reading above its box, coloured by its status code.

    Parameters
    ----------
    rows : sequence of DigitRow
        The table.
    codes : ndarray
        Status code of each row (:func:`status`).
    page_shape : (int, int)
        The page's rows and columns.
    scale : float
        Page pixels per texel (:func:`readings_scale`).

    Returns
    -------
    ndarray
        uint8 ``ceil(page_shape / scale)``: 0 transparent, else a status code.
    """
    shape = tuple(int(np.ceil(s / scale)) for s in page_shape)
    image = np.zeros(shape, np.uint8)
    for row, code in zip(rows, codes, strict=True):
        write_reading(image, row, int(code), scale)
    return image


def write_reading(
    image: np.ndarray, row: DigitRow, code: int, scale: float, before: str = ""
) -> None:
    """Write (or rewrite) one row's reading above its box in the readings image.

    ``before`` is the reading written there earlier, erased first (one digit
    wide at least).
    """
    bottom = max(int(row.min_row / scale) - 1, 0)
    left = int(row.min_col / scale)
    cell = glyph_cell()
    top = max(bottom - cell[0], 0)
    width = max(cell[1], text_width(before))
    # an earlier reading of this digit (at the top edge: written below it)
    image[top : max(bottom, cell[0]), left : left + width] = 0
    if row.digits:  # else a mark (prediction -1): no reading
        # at the top edge: below the edge rather than lost
        write_text(image, row.digits, max(bottom, cell[0]), left, code)


def box_labels(
    boxes: np.ndarray, texts: Sequence[str], shape: tuple[int, int], texels: int
) -> np.ndarray:
    """Outline each box and write its text above it; box ``k`` is value ``k + 1``.

    Parameters
    ----------
    boxes : ndarray
        ``(n, 4)`` ``(row0, col0, row1, col1)`` in pixels (end exclusive).
    texts : sequence of str
        What is written above each box (digits and :data:`SIGNS`).
    shape : (int, int)
        The pixels' image's shape.
    texels : int
        Texels per pixel: the result is ``shape * texels``, and one texel
        wide outlines hug the boxes.

    Returns
    -------
    ndarray
        uint16 label image, 0 transparent.
    """
    out = np.zeros([s * texels for s in shape], np.uint16)
    for k, ((r0, c0, r1, c1), text) in enumerate(zip(boxes, texts, strict=True)):
        r0, c0, r1, c1 = (int(v) * texels for v in (r0, c0, r1, c1))
        top, left = max(r0 - 1, 0), max(c0 - 1, 0)  # outside the box, clipped
        out[r1 : r1 + 1, left : c1 + 1] = out[top : r1 + 1, c1 : c1 + 1] = k + 1
        if r0 > 0:
            out[top, left : c1 + 1] = k + 1
        if c0 > 0:
            out[top : r1 + 1, left] = k + 1
        write_text(out, text, r0 - 2, c0, k + 1)
    return out


def cell_texts(
    texts: np.ndarray,
    texels: int,
    codes: np.ndarray | None = None,
    height: int = GLYPH_TEXELS,
) -> np.ndarray:
    """Write each ``texts[i, j]`` centred in cell ``(i, j)`` of ``texels`` texels.

    Returns a uint8 image ``texts.shape * texels``: 0 transparent, else the
    cell's code (``codes[i, j]``, 1 by default).
    """
    rows, cols = texts.shape
    codes = np.ones(texts.shape, np.uint8) if codes is None else codes
    out = np.zeros((rows * texels, cols * texels), np.uint8)
    for (i, j), text in np.ndenumerate(texts):
        left = j * texels + (texels - text_width(text, height)) // 2
        bottom = i * texels + (texels + height) // 2
        write_text(out, text, bottom, left, int(codes[i, j]), height)
    return out


def glyph_cell() -> tuple[int, int]:
    """Return the largest glyph's height and width, in texels."""
    shapes = np.array([glyphs()[c].shape for c in "0123456789"])
    return int(shapes[:, 0].max()), int(shapes[:, 1].max())


def pyramid(image: np.ndarray, min_size: int = 1024) -> list[np.ndarray]:
    """Strided views, each half the last, down to ``min_size`` (no copies).

    A multiscale layer draws only the level and the part in view, so a
    page-sized result never sends the whole page to the GPU at once.
    """
    levels = [image]
    while max(levels[-1].shape) > min_size:
        step = 2 ** len(levels)
        levels.append(image[::step, ::step])
    return levels
