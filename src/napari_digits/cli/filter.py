"""``napari-digits filter``: apply a classic kernel to an image file.

Example::

    napari-digits filter photo.png --kernel sobel --out edges.tif
    napari-digits filter stack.tif --kernel gaussian --sigma 2 --out blur.tif
    napari-digits filter in.png --kernel custom --weights "0 -1 0; -1 5 -1; 0 -1 0"
        --out sharp.tif --mode nearest

The result is float32 (see :mod:`napari_digits.kernels`), written as TIFF
(``.tif``/``.tiff``) or a numpy ``.npy`` file. Images with NaN or inf are
refused, as in the viewer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from napari_digits import kernels

OUTPUTS = (".tif", ".tiff", ".npy")


class CommandError(Exception):
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
        help="last axis holds colour channels (auto: 3 or 4 channels last, 3D image)",
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
        image = read_image(args.input)
        rgb = is_rgb(image, args.rgb)
        _refuse_nonfinite(image, args.input)
        result = kernels.apply_named(
            image, args.kernel, mode=args.mode, cval=args.cval, rgb=rgb, **_params(args)
        )
        write_result(result, args.out, rgb=rgb)
    except (CommandError, kernels.KernelError) as exc:
        print(f"napari-digits filter: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {args.kernel} of {args.input.name}, {result.shape} float32")
    return 0


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


def read_image(path: Path) -> np.ndarray:
    """Read an image file into an array.

    Raises
    ------
    CommandError
        If the file is missing or not a readable image.
    """
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path)
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except Exception as exc:  # any reader failure is a bad input file
        raise CommandError(f"{path}: cannot read it as an image ({exc})") from None


def is_rgb(image: np.ndarray, choice: str) -> bool:
    """Decide whether the last axis holds colour channels."""
    if choice != "auto":
        return choice == "yes"
    return image.ndim == 3 and image.shape[-1] in (3, 4)


def _refuse_nonfinite(image: np.ndarray, path: Path) -> None:
    bad = kernels.count_nonfinite(image)
    if bad:
        raise CommandError(
            f"{path} holds {bad} NaN/inf value(s), which a kernel spreads to their "
            "neighbours; replace them first (e.g. numpy.nan_to_num)."
        )


def write_result(result: np.ndarray, path: Path, *, rgb: bool = False) -> None:
    """Write a float32 result as TIFF or ``.npy``.

    Raises
    ------
    CommandError
        For another file extension (PNG/JPEG cannot hold float32).
    """
    suffix = path.suffix.lower()
    if suffix not in OUTPUTS:
        raise CommandError(
            f"{path}: write the float32 result as {' or '.join(OUTPUTS)} "
            "(PNG and JPEG cannot hold float32)"
        )
    if not path.parent.is_dir():
        raise CommandError(f"{path.parent}: no such directory")
    if suffix == ".npy":
        np.save(path, result)
        return
    import tifffile

    photometric = "rgb" if rgb else "minisblack"
    tifffile.imwrite(path, np.ascontiguousarray(result), photometric=photometric)
