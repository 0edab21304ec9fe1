"""``napari-digits filters``: a model's first-layer filters as a PNG, and their names.

Reads the first convolution layer with :func:`napari_digits.engine.models.
first_layer` in this process (a command line has no Qt, so TensorFlow may load
here, see DESIGN.md), tiles it like the Learned filters widget and prints the
closest classic kernel of every filter.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_digits import io
from napari_digits import learned_filters as lf
from napari_digits.cli._engine import engine_models, error
from napari_digits.current_model import shipped_model_path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``filters`` subcommand to ``sub``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the top-level parser.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    parser = sub.add_parser(
        "filters",
        help="draw a model's first-layer filters and name the classic kernels",
        description="Print, for every filter of a .keras model's first convolution "
        "layer, the closest classic kernel (normalised correlation over the "
        "Kernels catalogue, rotations and sign flips included); with --out, also "
        "write the filters tiled into one colour-mapped PNG (blue < 0 < red, "
        "tiles row by row; several input channels: one row per channel).",
    )
    parser.add_argument("model", nargs="?", help="a .keras file (default: shipped)")
    parser.add_argument(
        "--out", type=Path, help="PNG file to write the tiled filters to"
    )
    parser.add_argument(
        "--zoom",
        type=int,
        default=None,
        help="pixels per weight, 1 or more (default: ~30/tile); the image may "
        f"have at most {lf.MAX_TILE_PIXELS:,} pixels",
    )
    parser.set_defaults(run=run)
    return parser


def describe_layer(conv: object) -> str:
    """Return a one-line description of a conv layer's weights."""
    height, width, channels, filters = conv.kernel.shape
    name = f"{conv.layer_name}: " if conv.layer_name else ""
    return (
        f"first layer: {name}{filters} filters of {height}x{width}, "
        f"{channels} input channel(s), activation {conv.activation}"
    )


def write_png(path: str | Path, tiles: lf.FilterTiles) -> None:
    """Write the colour-mapped tiles to ``path`` as a PNG, atomically."""
    import imageio.v3 as iio

    try:
        with io.atomic_open(path, "wb") as f:
            iio.imwrite(f, lf.colour_tiles(tiles), extension=".png")
    except OSError as exc:
        raise OSError(
            f"{path}: could not write it ({exc}); is the disk full? "
            "Nothing was changed there."
        ) from None


def run(args: argparse.Namespace) -> int:
    """Print the closest-kernel table and write the PNG.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments.

    Returns
    -------
    int
        0 on success, 1 on a user error (message on stderr).
    """
    path = args.model or str(shipped_model_path())
    try:
        if args.zoom is not None and args.zoom < 1:
            raise ValueError(f"--zoom must be 1 or more, not {args.zoom}")
        if args.out:
            io.check_output(args.out, inputs=[path], what="--out")
        models = engine_models(path)
        conv = models.first_layer(path)
        tiles = lf.tile_filters(conv.kernel, zoom=args.zoom)
        if args.out:
            write_png(args.out, tiles)
    except (OSError, ValueError) as exc:  # ModelFileError, NoConvolutionError
        return error("filters", exc)
    except MemoryError:
        return error("filters", "not enough memory")
    print(f"model: {path}")
    print(describe_layer(conv))
    print(lf.format_matches(lf.match_filters(conv.kernel)))
    if args.out:
        rows, columns = lf.grid_shape(*conv.kernel.shape[:1:-1])
        print(f"wrote {args.out}: {rows}x{columns} tiles, {tiles.zoom} px per weight")
    return 0
