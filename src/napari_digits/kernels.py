"""Classic convolution kernels and applying them to any image.

The pure core of the Kernels capability: numpy, scipy and dask only (no Qt, no
napari, no TensorFlow).

Conventions, the same everywhere in this module:

* **Convolution**, as in :func:`scipy.ndimage.convolve` and scikit-image's
  ``sobel``: the weights are flipped before they slide over the image. The
  weights below are written the textbook way for convolution, so
  ``sobel_x = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]`` responds *positively*
  where brightness increases to the right (``+x``, the last axis) and
  ``sobel_y`` where it increases downwards (``+y``, the second-to-last axis).
  A cross-correlation filter (e.g. a Keras ``Conv2D`` kernel) does the same
  as the convolution kernel ``np.flip(w)``.
* **Weights are not normalised** the way scikit-image does: ``sobel_x`` here
  is ``4 * skimage.filters.sobel(image, axis=1)`` and the magnitude ``sobel``
  is ``4 * sqrt(2) * skimage.filters.sobel(image)`` (Prewitt: ``3`` and
  ``3 * sqrt(2)``, Scharr: ``16`` and ``16 * sqrt(2)``, Roberts: ``sqrt(2)``).
* **Output dtype is float32** for every input dtype (bool, unsigned and signed
  integers, float16/32/64). Computation is done by scipy.ndimage in double
  precision and written as float32. Integer inputs are not rescaled.
* **Plane by plane**: a kernel acts on two spatial axes (the last two by
  default, ``axes=`` picks others) and independently on every plane along the
  remaining axes. With ``rgb=True`` the last axis holds channels: each colour
  channel is filtered, an alpha channel (the 4th) is copied unfiltered.
* **NaN and inf propagate locally**: an output pixel is NaN (or inf) when a
  non-zero weight of the kernel lands on a NaN or inf. :func:`count_nonfinite`
  lets a caller refuse such images, as the widget and the command line do.
* **dask arrays stay lazy**: they are filtered block by block with
  :func:`dask.array.map_overlap`, with just the overlap the kernel needs, and
  the result equals the in-memory result exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "CATALOGUE",
    "MAX_BOX_SIZE",
    "MAX_CUSTOM_SIZE",
    "MAX_SIGMA",
    "MODES",
    "KernelError",
    "KernelSpec",
    "Param",
    "apply_kernel",
    "apply_named",
    "check_custom",
    "check_image",
    "classic_kernels",
    "count_nonfinite",
    "format_kernel",
    "iter_apply_named",
    "kernel_weights",
    "pad_to_odd",
    "parse_kernel",
]

#: border modes, as in :func:`scipy.ndimage.convolve`
MODES = ("reflect", "constant", "nearest", "mirror", "wrap")
#: largest side of a custom kernel
MAX_CUSTOM_SIZE = 15
#: largest Gaussian sigma (and unsharp radius): a kernel of 801 x 801 weights
MAX_SIGMA = 100.0
#: largest box side, the Gaussian's largest side
MAX_BOX_SIZE = 801


class KernelError(ValueError):
    """A kernel or an image that cannot be filtered; the message says why."""


# -- weights -----------------------------------------------------------------

_DIFF = np.array([1.0, 0.0, -1.0])
SOBEL_X = np.outer([1.0, 2.0, 1.0], _DIFF)
SOBEL_Y = SOBEL_X.T.copy()
PREWITT_X = np.outer([1.0, 1.0, 1.0], _DIFF)
PREWITT_Y = PREWITT_X.T.copy()
SCHARR_X = np.outer([3.0, 10.0, 3.0], _DIFF)
SCHARR_Y = SCHARR_X.T.copy()
ROBERTS_1 = np.array([[1.0, 0.0], [0.0, -1.0]])
ROBERTS_2 = np.array([[0.0, 1.0], [-1.0, 0.0]])
LAPLACIAN4 = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
LAPLACIAN8 = np.array([[1.0, 1.0, 1.0], [1.0, -8.0, 1.0], [1.0, 1.0, 1.0]])
SHARPEN = np.array([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]])
EMBOSS = np.array([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])


@dataclass(frozen=True)
class Param:
    """One numeric parameter of a catalogue kernel, with its range for a GUI."""

    name: str
    label: str
    default: float
    minimum: float
    maximum: float
    step: float = 0.1
    integer: bool = False


@dataclass(frozen=True)
class KernelSpec:
    """A catalogue entry: what a kernel is called and which parameters it takes.

    ``magnitude`` kernels combine the responses of their two weight arrays with
    ``hypot`` (gradient magnitude).
    """

    key: str
    name: str
    params: tuple[Param, ...] = ()
    magnitude: bool = False
    description: str = ""

    def defaults(self) -> dict[str, float]:
        """Return the default value of every parameter, by name."""
        return {p.name: p.default for p in self.params}


SIGMA = Param("sigma", "sigma", 1.0, 0.2, 10.0, 0.1)
SIZE = Param("size", "size", 3, 1, 15, 1, integer=True)
RADIUS = Param("radius", "radius", 1.0, 0.2, 10.0, 0.1)
AMOUNT = Param("amount", "amount", 1.0, 0.0, 10.0, 0.1)


def _spec(key: str, name: str, description: str, *params: Param, mag=False):
    return key, KernelSpec(key, name, tuple(params), mag, description)


#: kernel key -> :class:`KernelSpec`, in the order a menu shows them
CATALOGUE: Mapping[str, KernelSpec] = MappingProxyType(
    dict(
        [
            _spec("sobel", "Sobel magnitude", "hypot(sobel_x, sobel_y)", mag=True),
            _spec("sobel_x", "Sobel x", "derivative along x, smoothed along y"),
            _spec("sobel_y", "Sobel y", "derivative along y, smoothed along x"),
            _spec("prewitt", "Prewitt magnitude", "hypot(prewitt_x, y)", mag=True),
            _spec("prewitt_x", "Prewitt x", "derivative along x, box along y"),
            _spec("prewitt_y", "Prewitt y", "derivative along y, box along x"),
            _spec("scharr", "Scharr magnitude", "hypot(scharr_x, y)", mag=True),
            _spec("scharr_x", "Scharr x", "rotation-invariant derivative x"),
            _spec("scharr_y", "Scharr y", "rotation-invariant derivative y"),
            _spec("roberts", "Roberts cross", "hypot of the 2x2 diagonals", mag=True),
            _spec("laplacian4", "Laplacian (4-neighbour)", "second derivative"),
            _spec("laplacian8", "Laplacian (8-neighbour)", "with diagonals"),
            _spec("gaussian", "Gaussian blur", "truncated at 4 sigma", SIGMA),
            _spec("box", "Box blur", "mean over size x size", SIZE),
            _spec("sharpen", "Sharpen", "5 x centre minus 4 neighbours"),
            _spec("emboss", "Emboss", "relief lit from the top left"),
            _spec(
                "unsharp",
                "Unsharp mask",
                "image + amount*(image - blur)",
                RADIUS,
                AMOUNT,
            ),
            _spec("identity", "Identity", "the image itself"),
            _spec("custom", "Custom", "odd size up to 15x15, typed in"),
        ]
    )
)


def _gaussian_1d(sigma: float) -> np.ndarray:
    """Return scipy.ndimage's 1D Gaussian weights (truncated at 4 sigma)."""
    radius = int(4.0 * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 * (x / sigma) ** 2)
    return phi / phi.sum()


def _check_sigma(sigma: Any, what: str = "Gaussian sigma") -> float:
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise KernelError(f"{what} must be a number, got {sigma!r}.") from None
    if not 0 < sigma <= MAX_SIGMA:  # NaN and inf fail too
        raise KernelError(
            f"{what} must be positive and at most {MAX_SIGMA:g} "
            f"(a {2 * int(4 * MAX_SIGMA + 0.5) + 1}-pixel kernel), got {sigma}."
        )
    return sigma


def _gaussian(sigma: float, what: str = "Gaussian sigma") -> np.ndarray:
    g = _gaussian_1d(_check_sigma(sigma, what))
    return np.outer(g, g)


def _box(size: int) -> np.ndarray:
    try:
        whole = float(size) == int(size)
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or not 1 <= size <= MAX_BOX_SIZE:
        raise KernelError(
            f"Box size must be a whole number from 1 to {MAX_BOX_SIZE}, got {size}."
        )
    size = int(size)
    return np.full((size, size), 1.0 / size**2)


def _identity(size: int = 3) -> np.ndarray:
    w = np.zeros((size, size))
    w[size // 2, size // 2] = 1.0
    return w


def _unsharp(radius: float, amount: float) -> np.ndarray:
    blur = _gaussian(radius, "Unsharp radius")
    if not np.isfinite(amount):
        raise KernelError(f"Unsharp amount must be a finite number, got {amount}.")
    return (1.0 + amount) * _identity(blur.shape[0]) - amount * blur


_FIXED = {
    "sobel": [SOBEL_X, SOBEL_Y],
    "sobel_x": [SOBEL_X],
    "sobel_y": [SOBEL_Y],
    "prewitt": [PREWITT_X, PREWITT_Y],
    "prewitt_x": [PREWITT_X],
    "prewitt_y": [PREWITT_Y],
    "scharr": [SCHARR_X, SCHARR_Y],
    "scharr_x": [SCHARR_X],
    "scharr_y": [SCHARR_Y],
    "roberts": [ROBERTS_1, ROBERTS_2],
    "laplacian4": [LAPLACIAN4],
    "laplacian8": [LAPLACIAN8],
    "sharpen": [SHARPEN],
    "emboss": [EMBOSS],
    "identity": [_identity()],
}


def parse_kernel(text: str) -> np.ndarray:
    """Parse a kernel typed as rows of numbers.

    Rows are separated by newlines or ``;``, numbers by spaces or commas;
    brackets are ignored, so ``[[1, 0], [0, 1]]`` and ``"1 0; 0 1"`` both work.

    Parameters
    ----------
    text : str
        The kernel as text.

    Returns
    -------
    numpy.ndarray
        The float64 weights, validated by :func:`check_custom`.

    Raises
    ------
    KernelError
        If a value is not a number, rows differ in length, or the kernel is
        empty, even-sized, not square or larger than 15x15.

    Examples
    --------
    >>> parse_kernel("0 -1 0; -1 5 -1; 0 -1 0").shape
    (3, 3)
    """
    text = re.sub(r"\]\s*,\s*\[", ";", text.strip()).replace("[", "").replace("]", "")
    rows = [r for r in re.split(r"[;\n]", text) if r.strip()]
    try:
        values = [[float(v) for v in re.split(r"[,\s]+", r.strip())] for r in rows]
    except ValueError as exc:
        raise KernelError(
            f"The custom kernel must hold numbers only ({exc}); type rows of "
            "numbers, e.g. '0 -1 0; -1 5 -1; 0 -1 0'."
        ) from None
    if not values:
        raise KernelError("The custom kernel is empty: type at least one number.")
    if len({len(r) for r in values}) > 1:
        raise KernelError("Every row of the custom kernel needs the same length.")
    return check_custom(np.array(values, dtype=np.float64))


def format_kernel(weights: np.ndarray) -> str:
    """Write a kernel as text that :func:`parse_kernel` reads back.

    Parameters
    ----------
    weights : numpy.ndarray
        A 2D kernel.

    Returns
    -------
    str
        One line per row, numbers separated by spaces (6 significant digits).

    Examples
    --------
    >>> print(format_kernel(np.array([[0, 1.5], [-2, 0.25]])))
    0 1.5
    -2 0.25
    """
    return "\n".join(" ".join(f"{v:.6g}" for v in row) for row in np.asarray(weights))


def check_custom(weights: Any) -> np.ndarray:
    """Validate a custom kernel: numeric, finite, square, odd side up to 15.

    Parameters
    ----------
    weights : array_like
        The kernel.

    Returns
    -------
    numpy.ndarray
        The weights as float64.

    Raises
    ------
    KernelError
        If the kernel is not valid; the message says how to fix it.
    """
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise KernelError("The custom kernel must hold numbers only.") from None
    if w.size == 0:
        raise KernelError("The custom kernel is empty: type at least one number.")
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise KernelError(f"The custom kernel must be square, got {w.shape}.")
    if w.shape[0] % 2 == 0:
        raise KernelError(
            f"The custom kernel is {w.shape[0]}x{w.shape[1]}: use an odd size "
            "(3x3, 5x5, ...) so that it has a centre pixel."
        )
    if w.shape[0] > MAX_CUSTOM_SIZE:
        raise KernelError(f"The custom kernel is larger than 15x15 ({w.shape}).")
    if not np.isfinite(w).all():
        raise KernelError("The custom kernel holds NaN or inf: use finite numbers.")
    return w


def pad_to_odd(weights: np.ndarray) -> np.ndarray:
    """Pad an even-sized kernel with a zero row/column so its sides are odd.

    The zeros go at the end (bottom, right), which keeps scipy.ndimage's
    centre (index ``size // 2``), so convolving with the padded kernel gives
    exactly the same result as with the original one.

    Parameters
    ----------
    weights : numpy.ndarray
        A 2D kernel.

    Returns
    -------
    numpy.ndarray
        The kernel with odd sides (unchanged if they already are odd).
    """
    w = np.asarray(weights, dtype=np.float64)
    return np.pad(w, [(0, 1 - n % 2) for n in w.shape])


def _custom(weights: Any = None, normalise: bool = False) -> np.ndarray:
    if weights is None:
        weights = _identity()
    w = parse_kernel(weights) if isinstance(weights, str) else check_custom(weights)
    if normalise:
        total = w.sum()
        if abs(total) < 1e-12:
            raise KernelError(
                "Cannot normalise the custom kernel: its weights sum to 0 "
                "(an edge detector); untick 'normalise'."
            )
        w = w / total
    return w


def kernel_weights(name: str, **params: Any) -> list[np.ndarray]:
    """Return the 2D weight arrays a catalogue kernel applies.

    Parameters
    ----------
    name : str
        A key of :data:`CATALOGUE`.
    **params
        The kernel's parameters (see ``CATALOGUE[name].params``); missing ones
        take their default. ``custom`` takes ``weights`` (array or text, see
        :func:`parse_kernel`) and ``normalise`` (divide by the sum).

    Returns
    -------
    list of numpy.ndarray
        One float64 array for a plain kernel, two for a magnitude kernel.

    Raises
    ------
    KernelError
        If the name is unknown or a parameter is invalid.

    Examples
    --------
    >>> kernel_weights("sobel_x")[0]
    array([[ 1.,  0., -1.],
           [ 2.,  0., -2.],
           [ 1.,  0., -1.]])
    """
    spec = _spec_for(name)
    values = {**spec.defaults(), **params}
    if name in _FIXED:
        return [w.copy() for w in _FIXED[name]]
    if name == "gaussian":
        return [_gaussian(values["sigma"])]
    if name == "box":
        return [_box(values["size"])]
    if name == "unsharp":
        return [_unsharp(values["radius"], values["amount"])]
    return [_custom(values.get("weights"), bool(values.get("normalise", False)))]


def _spec_for(name: str) -> KernelSpec:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KernelError(
            f"Unknown kernel {name!r}; choose one of {', '.join(CATALOGUE)}."
        ) from None


def classic_kernels(size: int) -> dict[str, np.ndarray]:
    """Return every fixed-weight classic kernel that is ``size x size``.

    Used to compare learned filters with classic ones. The weights are
    convolution weights (see the module notes); flip them (``np.flip``) to
    compare with cross-correlation filters such as Keras ``Conv2D`` kernels.

    Parameters
    ----------
    size : int
        Side of the kernels wanted (2, 3, 5, ...).

    Returns
    -------
    dict of str to numpy.ndarray
        Name -> float64 weights of shape ``(size, size)``; the Gaussian uses
        ``sigma = size / 4`` (a kernel that reaches its border at 2 sigma).

    Examples
    --------
    >>> sorted(classic_kernels(2))
    ['box', 'identity', 'roberts_1', 'roberts_2']
    """
    size = int(size)
    if size < 1:
        raise KernelError(f"Kernel size must be positive, got {size}.")
    out = {"box": _box(size)}
    if size % 2:
        out["identity"] = _identity(size)
        x = np.arange(size) - size // 2
        g = np.exp(-0.5 * (x / (size / 4)) ** 2)
        out["gaussian"] = np.outer(g, g) / np.outer(g, g).sum()
    if size == 2:
        out.update(roberts_1=ROBERTS_1.copy(), roberts_2=ROBERTS_2.copy())
        out["identity"] = np.array([[0.0, 0.0], [0.0, 1.0]])
    if size == 3:
        for key in (
            "sobel_x",
            "sobel_y",
            "prewitt_x",
            "prewitt_y",
            "scharr_x",
            "scharr_y",
            "laplacian4",
            "laplacian8",
            "sharpen",
            "emboss",
        ):
            out[key] = _FIXED[key][0].copy()
    if size == 5:
        out.update(_classic_5x5())
    return out


def _classic_5x5() -> dict[str, np.ndarray]:
    smooth, diff = np.array([1.0, 4.0, 6.0, 4.0, 1.0]), np.array([1, 2, 0, -2, -1.0])
    x = np.arange(5) - 2
    r2 = (x[:, None] ** 2 + x[None, :] ** 2) / 1.0**2
    log = (r2 - 2.0) * np.exp(-r2 / 2.0)
    return {
        "sobel_x": np.outer(smooth, diff),
        "sobel_y": np.outer(diff, smooth),
        "laplacian_of_gaussian": log - log.mean(),
    }


# -- applying ----------------------------------------------------------------


def count_nonfinite(image: Any) -> int:
    """Return how many NaN or inf values an in-memory image holds (0 for ints).

    Parameters
    ----------
    image : array_like
        The image.

    Returns
    -------
    int
        The number of non-finite values.
    """
    arr = np.asarray(image)
    if not np.issubdtype(arr.dtype, np.inexact):
        return 0
    return int(arr.size - np.count_nonzero(np.isfinite(arr)))


def check_image(
    image: Any, *, rgb: bool = False, axes: tuple[int, int] = (-2, -1)
) -> None:
    """Check that an image can be filtered (without reading its values).

    Parameters
    ----------
    image : numpy.ndarray or dask.array.Array
        The image.
    rgb, axes
        As for :func:`apply_kernel`.

    Raises
    ------
    KernelError
        For a non-numeric dtype, an empty or less-than-2D image, a bad number
        of colour channels or bad axes; the message says what is wrong.
    """
    dtype = np.dtype(image.dtype)
    if dtype.kind not in "biuf":
        raise KernelError(
            f"Cannot filter an image of dtype {dtype}: use a bool, integer or "
            "float image."
        )
    if 0 in image.shape:
        raise KernelError(f"The image is empty (shape {image.shape}).")
    spatial = image.ndim - (1 if rgb else 0)
    if spatial < 2:
        raise KernelError(
            f"A kernel needs a 2D image, got shape {image.shape}"
            + (" with colour channels last" if rgb else "")
            + "."
        )
    if rgb and image.shape[-1] not in (3, 4):
        raise KernelError(f"An RGB(A) image has 3 or 4 channels last: {image.shape}.")
    if len(set(axes)) != 2 or not all(-spatial <= a < spatial for a in axes):
        raise KernelError(f"Bad spatial axes {axes} for image shape {image.shape}.")


def _check_weights(weights: Any) -> np.ndarray:
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise KernelError("Kernel weights must be numbers.") from None
    if w.ndim != 2 or w.size == 0:
        raise KernelError(f"A kernel is a non-empty 2D array, got shape {w.shape}.")
    if not np.isfinite(w).all():
        raise KernelError("Kernel weights must be finite (no NaN or inf).")
    return w


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise KernelError(f"Unknown border mode {mode!r}; use one of {MODES}.")


def _separable_terms(w: np.ndarray, max_terms: int) -> list | None:
    """Split ``w`` into at most ``max_terms`` outer products, exactly, or None.

    Peels rank-1 terms by full pivoting (so integer kernels such as Sobel give
    integer factors and exact results).
    """
    scale = np.abs(w).max()
    if scale == 0:
        return None
    residual, terms = w.copy(), []
    while np.abs(residual).max() > 1e-9 * scale:
        if len(terms) == max_terms:
            return None
        i, j = np.unravel_index(np.argmax(np.abs(residual)), residual.shape)
        col, row = residual[:, j].copy(), residual[i, :] / residual[i, j]
        terms.append((_tidy(col), _tidy(row)))
        residual = residual - np.outer(col, row)
    return terms


def _as_input(arr: np.ndarray) -> np.ndarray:
    """View or convert to a dtype scipy.ndimage reads (it computes in double)."""
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    return arr


def _convolve_plane_axes(arr, w, out, mode, cval) -> None:
    """Convolve over the last two axes of ``arr`` into float32 ``out``."""
    h, wd = w.shape
    terms = _separable_terms(w, max_terms=max(0, (h * wd) // (2 * (h + wd))))
    if terms is None:
        kernel = w.reshape((1,) * (arr.ndim - 2) + w.shape)
        ndi.convolve(arr, kernel, output=out, mode=mode, cval=cval)
        return
    tmp = np.empty(arr.shape[-2:], dtype=np.float32) if len(terms) > 1 else None
    for index in np.ndindex(arr.shape[:-2]):
        _separable_plane(arr[index], terms, out[index], tmp, mode, cval)


def _separable_plane(plane, terms, out, tmp, mode, cval) -> None:
    """Convolve one 2D plane with a sum of outer products ``col x row``.

    The second 1D pass runs in place, as in scipy's own ``gaussian_filter``.
    """
    for k, (col, row) in enumerate(terms):
        target = out if k == 0 else tmp
        ndi.convolve1d(plane, col, axis=0, output=target, mode=mode, cval=cval)
        ndi.convolve1d(
            target, row, axis=1, output=target, mode=mode, cval=cval * col.sum()
        )
        if k:
            out += tmp


def _tidy(v: np.ndarray) -> np.ndarray:
    """Make a 1D factor exactly (anti)symmetric when it is so up to rounding.

    scipy.ndimage takes a faster path for exactly symmetric or antisymmetric
    weights (a Gaussian factor is symmetric only up to rounding otherwise).
    """
    tol = 1e-12 * np.abs(v).max()
    for sign in (1, -1):
        if np.allclose(v, sign * v[::-1], rtol=0, atol=tol):
            return (v + sign * v[::-1]) / 2
    return v


def _filter_last2(arr, weights, mode, cval, rgb) -> np.ndarray:
    """Apply one or two (hypot) kernels over the last two axes of an ndarray.

    With ``rgb`` the channel axis has been moved first.
    """
    arr = _as_input(arr)
    out = np.empty(arr.shape, dtype=np.float32)
    colour = slice(0, 3) if rgb else slice(None)
    src, dst = arr[colour], out[colour]
    _convolve_plane_axes(src, weights[0], dst, mode, cval)
    if len(weights) == 2:
        other = np.empty_like(dst)
        _convolve_plane_axes(src, weights[1], other, mode, cval)
        np.hypot(dst, other, out=dst)
    if rgb and arr.shape[0] == 4:
        out[3] = arr[3]
    return out


def _to_work(image, rgb, axes):
    """Move the spatial axes last (and channels first for RGB)."""
    spatial = image.ndim - (1 if rgb else 0)
    ay, ax = (a % spatial for a in axes)
    xp = _namespace(image)
    if rgb:
        return xp.moveaxis(image, (image.ndim - 1, ay, ax), (0, -2, -1)), (ay, ax)
    return xp.moveaxis(image, (ay, ax), (-2, -1)), (ay, ax)


def _from_work(result, rgb, ay_ax):
    xp = _namespace(result)
    ay, ax = ay_ax
    if rgb:
        return xp.moveaxis(result, (0, -2, -1), (result.ndim - 1, ay, ax))
    return xp.moveaxis(result, (-2, -1), (ay, ax))


def _namespace(arr):
    if _is_dask(arr):
        import dask.array as da

        return da
    return np


def _is_dask(arr: Any) -> bool:
    return type(arr).__module__.startswith("dask.")


def _apply(image, weights, mode, cval, rgb, axes):
    _check_mode(mode)
    weights = [_check_weights(w) for w in weights]
    if not _is_dask(image):
        image = np.asarray(image)
    check_image(image, rgb=rgb, axes=axes)
    work, ay_ax = _to_work(image, rgb, axes)
    if _is_dask(work):
        result = _apply_dask(work, weights, mode, float(cval), rgb)
    else:
        result = _filter_last2(work, weights, mode, float(cval), rgb)
    return _from_work(result, rgb, ay_ax)


def _apply_dask(work, weights, mode, cval, rgb):
    depth = {i: 0 for i in range(work.ndim)}
    depth[work.ndim - 2] = max(w.shape[0] // 2 for w in weights)
    depth[work.ndim - 1] = max(w.shape[1] // 2 for w in weights)
    if rgb:
        work = work.rechunk({0: -1})
    return work.map_overlap(
        _filter_last2,
        depth=depth,
        # at the array's border ndimage's own mode pads the block exactly as it
        # pads the whole array, except 'wrap', which needs the opposite side
        boundary="periodic" if mode == "wrap" else "none",
        dtype=np.float32,
        meta=np.empty((0,) * work.ndim, dtype=np.float32),
        weights=weights,
        mode=mode,
        cval=cval,
        rgb=rgb,
    )


def apply_kernel(
    image: Any,
    weights: Any,
    *,
    mode: str = "reflect",
    cval: float = 0.0,
    rgb: bool = False,
    axes: tuple[int, int] = (-2, -1),
) -> Any:
    """Convolve an image with one 2D kernel, plane by plane.

    Parameters
    ----------
    image : numpy.ndarray or dask.array.Array
        Any numeric or bool image, 2D or nD; with ``rgb`` the last axis holds
        3 (RGB) or 4 (RGBA) channels.
    weights : array_like
        The 2D kernel (convolution weights, see the module notes).
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'}, optional
        How the border is extended, as in :func:`scipy.ndimage.convolve`.
    cval : float, optional
        The value outside the image for ``mode='constant'``.
    rgb : bool, optional
        The last axis holds colour channels: filter R, G, B separately and
        copy alpha unfiltered.
    axes : tuple of int, optional
        The two spatial axes the kernel spans (rows, columns), counted among
        the spatial axes (the channel axis excluded). Default: the last two.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 result of the image's shape; lazy for a dask input.

    Raises
    ------
    KernelError
        For an empty, non-numeric or less-than-2D image, bad weights, a bad
        mode or axes.

    Notes
    -----
    Kernels that are sums of one or two outer products (Sobel, Gaussian, box,
    unsharp mask) are applied as 1D passes, which gives the same result
    (to float32 rounding) in less time.

    Examples
    --------
    >>> image = np.zeros((3, 3), dtype=np.uint8)
    >>> image[1, 1] = 1
    >>> apply_kernel(image, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    array([[ 0.,  1.,  0.],
           [ 1., -4.,  1.],
           [ 0.,  1.,  0.]], dtype=float32)
    """
    return _apply(image, [weights], mode, cval, rgb, tuple(axes))


def apply_named(
    image: Any,
    name: str,
    *,
    mode: str = "reflect",
    cval: float = 0.0,
    rgb: bool = False,
    axes: tuple[int, int] = (-2, -1),
    **params: Any,
) -> Any:
    """Apply a catalogue kernel; magnitude kernels combine with ``hypot``.

    Parameters
    ----------
    image : numpy.ndarray or dask.array.Array
        The image, as for :func:`apply_kernel`.
    name : str
        A key of :data:`CATALOGUE`.
    mode, cval, rgb, axes
        As for :func:`apply_kernel`.
    **params
        The kernel's parameters, as for :func:`kernel_weights`.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 result of the image's shape; lazy for a dask input.

    Examples
    --------
    >>> step = np.repeat([[0, 0, 1, 1]], 3, axis=0)
    >>> apply_named(step, "sobel")[1]
    array([0., 4., 4., 0.], dtype=float32)
    """
    weights = kernel_weights(name, **params)
    return _apply(image, weights, mode, cval, rgb, tuple(axes))


def iter_apply_named(
    image: np.ndarray, name: str, **kwargs: Any
) -> Iterator[tuple[int, int]]:
    """Apply a catalogue kernel in steps, reporting progress.

    An in-memory image is filtered a slab at a time along its first
    non-spatial axis; a dask image is wrapped lazily in one step.

    Parameters
    ----------
    image : numpy.ndarray or dask.array.Array
        The image.
    name : str
        A key of :data:`CATALOGUE`.
    **kwargs
        As for :func:`apply_named`.

    Yields
    ------
    tuple of int
        ``(done, total)`` steps.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        The result (the generator's return value), as :func:`apply_named`.
    """
    rgb, axes = kwargs.get("rgb", False), tuple(kwargs.get("axes", (-2, -1)))
    if not _is_dask(image):
        image = np.asarray(image)
    check_image(image, rgb=rgb, axes=axes)
    spatial = np.ndim(image) - (1 if rgb else 0)
    loop_axes = [a for a in range(spatial) if a not in {x % spatial for x in axes}]
    if _is_dask(image) or not loop_axes:
        result = apply_named(image, name, **kwargs)
        yield 1, 1
        return result
    axis = loop_axes[0]
    sub_axes = tuple(a % spatial - (a % spatial > axis) for a in axes)
    out = np.empty(image.shape, dtype=np.float32)
    n = image.shape[axis]
    for i in range(n):
        plane = np.take(image, i, axis=axis)
        kw = {**kwargs, "axes": sub_axes}
        out[(slice(None),) * axis + (i,)] = apply_named(plane, name, **kw)
        yield i + 1, n
    return out
