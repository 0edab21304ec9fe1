"""``napari-digits filter``: apply a classic kernel to an image file.

Example::

    napari-digits filter photo.png --kernel sobel --out edges.tif
    napari-digits filter stack.tif --kernel gaussian --sigma 2 --out blur.tif
    napari-digits filter in.png --kernel custom --weights "0 -1 0; -1 5 -1; 0 -1 0"
        --out sharp.tif --mode nearest

The result is float32 (see :mod:`napari_digits.kernels`), written as TIFF
(``.tif``/``.tiff``) or a numpy ``.npy`` file, atomically (a temporary file
beside it, then renamed): the file that was there stays whole if the command
is killed or the disk is full. The output may not be the input, and is
checked before any work starts. Images are read with
:func:`napari_digits.io.read_image` (every format a user has; pages larger
than ``--max-pixels`` are refused); images with NaN or inf are refused, as in
the viewer. A colour stack ``(T, H, W, 3)`` is filtered channel by channel and
plane by plane.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from napari_digits import io, kernels
from napari_digits.cli._engine import error

OUTPUTS = (".tif", ".tiff", ".npy")


class CommandError(ValueError):
    """A user error: print the message and exit with status 1."""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``filter`` subcommand to the program's subparsers.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The top-level parser's subparsers.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    parser = sub.add_parser(
        "filter",
        help="apply a classic kernel to an image file (float32 TIFF out)",
        description="Apply a classic kernel to an image file; float32 result.",
    )
    parser.add_argument("input", type=Path, help="image file (PNG, JPEG, TIFF, .npy)")
    parser.add_argument(
        "--kernel",
        required=True,
        choices=list(kernels.CATALOGUE),
        metavar="NAME",
        help=f"one of: {', '.join(kernels.CATALOGUE)}",
    )
    parser.add_argument("--out", required=True, type=Path, help="output .tif or .npy")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=io.MAX_PIXELS,
        help=f"refuse larger images (default {io.MAX_PIXELS:,} pixels)",
    )
    parser.add_argument("--mode", default="reflect", choices=kernels.MODES)
    parser.add_argument(
        "--cval", type=float, default=0.0, help="value for --mode constant"
    )
    parser.add_argument("--sigma", type=float, help="gaussian: sigma in pixels")
    parser.add_argument("--size", type=int, help="box: side in pixels")
    parser.add_argument("--radius", type=float, help="unsharp: blur sigma")
    parser.add_argument("--amount", type=float, help="unsharp: strength")
    parser.add_argument(
        "--weights", help='custom: rows of numbers, "1 0 -1; 2 0 -2; ..."'
    )
    parser.add_argument("--normalise", action="store_true", help="custom: sum to 1")
    parser.add_argument(
        "--rgb",
        choices=("auto", "yes", "no"),
        default="auto",
        help="last axis holds colour channels (auto: 3 or 4 channels last, 3D or more)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Filter ``args.input`` into ``args.out``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        0 on success, 1 with a message on stderr for bad input.
    """
    try:
        params = _params(args)
        kernels.kernel_weights(args.kernel, **params)  # bad values: before work
        _check_out(args)
        image = read_image(args.input, max_pixels=args.max_pixels)
        rgb = is_rgb(image, args.rgb)
        _refuse_nonfinite(image, args.input)
        result = kernels.apply_named(
            image, args.kernel, mode=args.mode, cval=args.cval, rgb=rgb, **params
        )
        del image
        write_result(result, args.out, rgb=rgb)
    except (CommandError, kernels.KernelError, OSError) as exc:
        return error("filter", exc)
    except MemoryError:
        return error("filter", f"not enough memory to filter {args.input}")
    print(f"{args.out}: {args.kernel} of {args.input.name}, {result.shape} float32")
    return 0


def _check_out(args: argparse.Namespace) -> None:
    if not np.isfinite(args.cval):
        raise CommandError(f"--cval must be a finite number, not {args.cval}")
    if args.max_pixels < 1:
        raise CommandError(f"--max-pixels must be positive, not {args.max_pixels}")
    io.check_output(args.out, inputs=[args.input], what="--out")
    _check_suffix(args.out)


def _params(args: argparse.Namespace) -> dict:
    names = {p.name for p in kernels.CATALOGUE[args.kernel].params}
    given = {k: getattr(args, k) for k in ("sigma", "size", "radius", "amount")}
    params = {k: v for k, v in given.items() if v is not None and k in names}
    for k in sorted(k for k, v in given.items() if v is not None and k not in names):
        print(f"note: --{k} does not apply to {args.kernel}; ignored", file=sys.stderr)
    if args.kernel == "custom":
        if not args.weights:
            raise CommandError('--kernel custom needs --weights "a b c; d e f; g h i"')
        params.update(weights=args.weights, normalise=args.normalise)
    return params


def read_image(path: Path, *, max_pixels: int | None = io.MAX_PIXELS) -> np.ndarray:
    """Read an image file into an array with :func:`napari_digits.io.read_image`.

    Raises
    ------
    napari_digits.io.ImageReadError
        If the file is missing, not a readable image, or too large.
    """
    return io.read_image(path, max_pixels=max_pixels)


def is_rgb(image: np.ndarray, choice: str) -> bool:
    """Decide whether the last axis holds colour channels."""
    if choice != "auto":
        return choice == "yes"
    return image.ndim >= 3 and image.shape[-1] in (3, 4)


def _refuse_nonfinite(image: np.ndarray, path: Path) -> None:
    bad = kernels.count_nonfinite(image)
    if bad:
        raise CommandError(
            f"{path} holds {bad} NaN/inf value(s), which a kernel spreads to their "
            "neighbours; replace them first (e.g. numpy.nan_to_num)."
        )


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in OUTPUTS:
        raise CommandError(
            f"{path}: write the float32 result as {' or '.join(OUTPUTS)} "
            "(PNG and JPEG cannot hold float32)"
        )


def write_result(result: np.ndarray, path: Path, *, rgb: bool = False) -> None:
    """Write a float32 result as TIFF or ``.npy``, atomically.

    Raises
    ------
    CommandError
        For another file extension (PNG/JPEG cannot hold float32).
    OSError
        When the file cannot be written (the file that was there is kept).
    """
    _check_suffix(path)
    try:
        with io.atomic_open(path, "wb") as f:
            if path.suffix.lower() == ".npy":
                np.save(f, result)
                return
            import tifffile

            photometric = "rgb" if rgb and result.shape[-1] == 3 else "minisblack"
            tifffile.imwrite(f, np.ascontiguousarray(result), photometric=photometric)
    except OSError as exc:
        raise CommandError(
            f"{path}: could not write it ({exc}); is the disk full? "
            "Nothing was changed there."
        ) from None
