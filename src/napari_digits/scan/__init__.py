"""Find the handwritten digits on a scanned page and cut MNIST-style crops.

The pipeline, one small function a step:

1. :func:`to_gray` - any 2D image (grey, RGB, RGBA; uint8, uint16, float)
   to float32 grey in 0..1.
2. :func:`ink_strength` - divide out a large-scale background estimate (a
   median of block means, computed on a downsampled page), detect whether
   the ink is darker or lighter than the paper, and return how much ink each
   pixel holds (0 paper .. 1 full ink), independent of uneven lighting.
3. :func:`binarize` - Otsu (default) or a local threshold on the ink
   strength, never below ``min_contrast`` so that a blank page stays blank.
4. :func:`find_digits` - connected components, then the cleanup rules:

   - *specks*: components smaller than ``min_area`` pixels are dropped;
   - *ruled lines*: horizontal or vertical runs of ink longer than four digit
     heights are erased before labelling (they may cross digits);
   - *fragments*: components that overlap in columns and are separated by a
     small vertical gap are merged when the union still has a digit's size;
   - *stray strokes*: a piece too small to be a digit (the detached bar of
     a 5) joins the digit within 0.2 digit heights of it if the union still
     has a digit's size;
   - *not digits*: components taller than 2.2 digit heights or wider than
     six (lines, borders, long strokes), shorter than 0.45 digit heights
     (printed text, dust, dashes), with too little ink, or solid blobs are
     rejected;
   - *touching digits*: a component wider than 1.3 digit heights (no single
     MNIST digit is) is flagged as ``touching`` and split into
     ``n = round(width / (0.75 digit heights))`` parts (0.75 is the median
     width-to-height ratio of MNIST digits), each cut made at the column
     with the least ink within a third of a part's width of the even split.

5. :func:`normalize_crop` - MNIST's own recipe: bounding box, longest side
   scaled to 20 pixels with the aspect ratio kept and anti-aliasing, placed
   in a 28x28 field by its centre of mass, white ink on black, uint8 0..255.

The digit height that scales every rule is estimated from the page (the
median height of the larger components) unless given.

The stages live in one module each: :mod:`~napari_digits.scan.gray` (1),
:mod:`~napari_digits.scan.ink` (2, 3), :mod:`~napari_digits.scan.components`
and :mod:`~napari_digits.scan.touching` (4), :mod:`~napari_digits.scan.crops`
(5), and :mod:`~napari_digits.scan.page`, which runs them in turn.
"""

from __future__ import annotations

from napari_digits.scan.components import (
    attach_orphans,
    digit_like,
    erase_long_runs,
    estimate_digit_height,
    merge_fragments,
)
from napari_digits.scan.crops import FRINGE, normalize_crop
from napari_digits.scan.gray import to_gray
from napari_digits.scan.ink import background, binarize, detect_ink, ink_strength
from napari_digits.scan.page import find_digits
from napari_digits.scan.regions import (
    BOX,
    FIELD,
    MIN_HEIGHT,
    DigitRegion,
    Progress,
    Scan,
    ScanError,
)
from napari_digits.scan.touching import DIGIT_WIDTH, TOUCHING, split_columns

__all__ = [
    "BOX",
    "DIGIT_WIDTH",
    "FIELD",
    "FRINGE",
    "MIN_HEIGHT",
    "TOUCHING",
    "DigitRegion",
    "Progress",
    "Scan",
    "ScanError",
    "attach_orphans",
    "background",
    "binarize",
    "detect_ink",
    "digit_like",
    "erase_long_runs",
    "estimate_digit_height",
    "find_digits",
    "ink_strength",
    "merge_fragments",
    "normalize_crop",
    "split_columns",
    "to_gray",
]
