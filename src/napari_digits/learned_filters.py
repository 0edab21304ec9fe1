"""The filters a CNN learned in its first convolution layer, as arrays.

Pure numpy: no Qt, no napari, no TensorFlow. The weights come in as a
:class:`~napari_digits.engine.protocol.ConvWeights` (Keras order: ``kernel`` of
shape ``(height, width, in_channels, filters)``).

Orientation
-----------
A Keras ``Conv2D`` computes a *correlation*: ``out[i, j] = sum x[i + u, j + v]
* w[u, v]``. A classic kernel in :mod:`napari_digits.kernels` is a
*convolution* kernel, applied with :func:`napari_digits.kernels.apply_kernel`
(which flips it, like :func:`scipy.ndimage.convolve`). :func:`as_kernel` turns
learned weights into that convention by rotating them 180 degrees, so that
``apply_kernel(image, as_kernel(...), mode="constant")`` plus the bias, through
the activation, equals the network's layer with ``padding="same"`` exactly,
for odd and even sizes alike (scipy anchors an even kernel where TensorFlow
does). Matching with :func:`closest_classic` works on those
kernels; since it also tries 90-degree rotations, a 180-degree flip never
changes which classic kernel is named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from napari_digits.engine.protocol import ConvWeights

__all__ = [
    "MAX_FEATURE_MAP_BYTES",
    "MAX_TILE_PIXELS",
    "FilterTiles",
    "ImageTooSmallError",
    "Match",
    "NoConvolutionError",
    "TooLargeError",
    "activation_maps",
    "as_kernel",
    "check_feature_maps",
    "check_kernel",
    "classic_catalogue",
    "closest_classic",
    "closest_classics",
    "colour_tiles",
    "current_plane",
    "format_matches",
    "match_filters",
    "match_table",
    "tile_filters",
    "to_grey",
]


class NoConvolutionError(ValueError):
    """The model has no usable convolution layer (or its weights are malformed)."""


class ImageTooSmallError(ValueError):
    """The image is smaller than the filter it should be filtered with."""


class TooLargeError(ValueError):
    """A result would take more memory than its limit; the message says how much."""


#: the most pixels of a tiled-filters image (about 64 MiB as float32)
MAX_TILE_PIXELS = 2**24
#: the most bytes of float32 feature maps computed for one image, all layers
#: together (the sample page, 1754 x 1240, through the shipped model's 20 + 40
#: filters, pooled once, takes 249 MiB)
MAX_FEATURE_MAP_BYTES = 2**29


# --------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------


def check_kernel(kernel: np.ndarray) -> np.ndarray:
    """Return ``kernel`` as float32 after checking it is a Keras conv kernel.

    Parameters
    ----------
    kernel : numpy.ndarray
        Weights of shape ``(height, width, in_channels, filters)``.

    Returns
    -------
    numpy.ndarray
        The same weights as float32.

    Raises
    ------
    NoConvolutionError
        When the array is not 4D or has an empty dimension.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or 0 in kernel.shape:
        raise NoConvolutionError(
            f"expected 2D convolution weights (height, width, in_channels, filters), "
            f"got shape {kernel.shape}: use a model whose first layer is a Conv2D"
        )
    return kernel.astype(np.float32, copy=False)


def as_kernel(kernel: np.ndarray, index: int, *, channel: int = 0) -> np.ndarray:
    """Return one learned filter as a convolution kernel for ``apply_kernel``.

    Parameters
    ----------
    kernel : numpy.ndarray
        Keras weights ``(height, width, in_channels, filters)``.
    index : int
        The filter.
    channel : int, optional
        The input channel whose weights to take.

    Returns
    -------
    numpy.ndarray
        A float64 ``(height, width)`` kernel: the weights rotated 180 degrees,
        since Keras correlates where ``apply_kernel`` convolves.

    Examples
    --------
    >>> w = np.arange(4.0).reshape(2, 2, 1, 1)
    >>> as_kernel(w, 0)
    array([[3., 2.],
           [1., 0.]])
    """
    kernel = check_kernel(kernel)
    return np.asarray(kernel[::-1, ::-1, channel, index], dtype=np.float64)


# --------------------------------------------------------------------------
# tiles
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterTiles:
    """Every filter of a layer laid out in one image.

    ``image`` is 2D float32; ``boxes`` is ``(n, 4)`` with each tile's
    ``(row0, col0, row1, col1)`` in ``image`` pixels (end exclusive);
    ``filters`` and ``channels`` give each tile's filter and input channel;
    ``zoom`` is the number of pixels per weight; ``limit`` the largest absolute
    weight (use ``(-limit, limit)`` as contrast limits, centred on zero).
    """

    image: np.ndarray
    boxes: np.ndarray
    filters: np.ndarray
    channels: np.ndarray
    zoom: int
    limit: float

    @property
    def mask(self) -> np.ndarray:
        """Boolean image, True on tile pixels and False in the gaps."""
        mask = np.zeros(self.image.shape, dtype=bool)
        for r0, c0, r1, c1 in self.boxes:
            mask[r0:r1, c0:c1] = True
        return mask


def default_zoom(height: int, width: int) -> int:
    """Return pixels per weight so that a tile is about 30 pixels wide."""
    return max(2, 30 // max(height, width, 1))


def grid_shape(n_filters: int, n_channels: int) -> tuple[int, int]:
    """Return ``(rows, columns)`` of tiles.

    One input channel: a landscape grid about twice as wide as tall. Several
    input channels: one row per input channel, one column per filter.
    """
    if n_channels > 1:
        return n_channels, n_filters
    columns = max(1, min(n_filters, math.ceil(math.sqrt(2 * n_filters))))
    return math.ceil(n_filters / columns), columns


def tiled_shape(
    kernel_shape: tuple[int, ...], zoom: int, gap: int | None, label_space: int = 0
) -> tuple[int, int]:
    """Return the shape of :func:`tile_filters`' image, refusing a too large one.

    Raises
    ------
    ValueError
        When ``zoom`` is not a whole number of at least 1 or ``gap`` negative.
    TooLargeError
        When the image would have more than :data:`MAX_TILE_PIXELS` pixels;
        the message names the largest zoom allowed.
    """
    if int(zoom) != zoom or zoom < 1 or (gap is not None and gap < 0):
        raise ValueError(
            f"zoom must be a whole number >= 1 and gap >= 0: {zoom}, {gap}"
        )
    height, width, n_channels, n_filters = kernel_shape
    rows, columns = grid_shape(n_filters, n_channels)

    def shape(z: int) -> tuple[int, int]:
        g = max(1, z // 3) if gap is None else gap
        row = label_space + height * z + g
        return rows * row - g, columns * width * z + (columns - 1) * g

    size = shape(zoom)
    if size[0] * size[1] > MAX_TILE_PIXELS:
        best, too_big = 0, int(zoom)  # the image grows with the zoom: bisect
        while too_big - best > 1:
            mid = (best + too_big) // 2
            fits = math.prod(shape(mid)) <= MAX_TILE_PIXELS
            best, too_big = (mid, too_big) if fits else (best, mid)
        raise TooLargeError(
            f"zoom {zoom} makes a {size[0]}x{size[1]} image, more than "
            f"{MAX_TILE_PIXELS:,} pixels; use a zoom of at most {best}"
        )
    return size


def tile_filters(
    kernel: np.ndarray,
    *,
    zoom: int | None = None,
    gap: int | None = None,
    fill: float = 0.0,
    label_space: int = 0,
) -> FilterTiles:
    """Lay out every filter of a conv layer as tiles of one image.

    Each weight becomes a ``zoom`` x ``zoom`` square (nearest-neighbour
    upsampling, no smoothing); tiles are ``gap`` pixels apart, and every row
    of tiles has ``label_space`` more pixels above it. With one input
    channel the filters fill a grid row by row; with several, row ``c`` holds
    every filter's weights for input channel ``c``.

    Parameters
    ----------
    kernel : numpy.ndarray
        Keras weights ``(height, width, in_channels, filters)``.
    zoom : int, optional
        Pixels per weight; about 30 pixels per tile by default.
    gap : int, optional
        Pixels between tiles; ``max(1, zoom // 3)`` by default.
    fill : float, optional
        The value of the gaps (0, the centre of a diverging colormap).
    label_space : int, optional
        Extra pixels above every row of tiles, room for a label.

    Returns
    -------
    FilterTiles
        The image and where each filter lies in it.

    Examples
    --------
    >>> tiles = tile_filters(np.ones((3, 3, 1, 4)), zoom=2, gap=1)
    >>> tiles.image.shape, tiles.filters.tolist()
    ((6, 27), [0, 1, 2, 3])
    """
    kernel = check_kernel(kernel)
    height, width, n_channels, n_filters = kernel.shape
    zoom = default_zoom(height, width) if zoom is None else zoom
    shape = tiled_shape(kernel.shape, zoom, gap, label_space)
    gap = max(1, zoom // 3) if gap is None else gap
    _, columns = grid_shape(n_filters, n_channels)
    th, tw = height * zoom, width * zoom
    row_height = label_space + th + gap
    image = np.full(shape, fill, dtype=np.float32)
    boxes, filters, channels = [], [], []
    for channel in range(n_channels):
        for index in range(n_filters):
            row, col = (channel, index) if n_channels > 1 else divmod(index, columns)
            r0, c0 = row * row_height + label_space, col * (tw + gap)
            tile = np.kron(kernel[:, :, channel, index], np.ones((zoom, zoom)))
            image[r0 : r0 + th, c0 : c0 + tw] = tile
            boxes.append((r0, c0, r0 + th, c0 + tw))
            filters.append(index)
            channels.append(channel)
    return FilterTiles(
        image=image,
        boxes=np.asarray(boxes, dtype=int),
        filters=np.asarray(filters, dtype=int),
        channels=np.asarray(channels, dtype=int),
        zoom=zoom,
        limit=float(np.abs(kernel).max()) or 1.0,
    )


# --------------------------------------------------------------------------
# activation maps: a numpy reference of the first layer
# --------------------------------------------------------------------------

_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "softplus": lambda x: np.logaddexp(0, x),
    "swish": lambda x: x / (1 + np.exp(-x)),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "relu6": lambda x: np.clip(x, 0, 6),
}


def activate(x: np.ndarray, name: str | None) -> np.ndarray:
    """Apply the Keras activation called ``name`` (None means linear).

    Raises
    ------
    ValueError
        For an activation this reference does not implement.
    """
    try:
        return _ACTIVATIONS[(name or "linear").lower()](x)
    except KeyError:
        known = ", ".join(sorted(_ACTIVATIONS))
        raise ValueError(
            f"activation {name!r} is not supported; known: {known}"
        ) from None


def activation_maps(
    image: np.ndarray, conv: ConvWeights, *, padding: str = "valid"
) -> np.ndarray:
    """Compute a conv layer's output in numpy, exactly as Keras does.

    ``out[i, j, f] = act(bias[f] + sum_{u, v, c} x[i + u, j + v, c] * w[u, v, c, f])``
    (a correlation, stride 1, no dilation).

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, in_channels)`` float image.
    conv : ConvWeights
        The layer's kernel, bias and activation.
    padding : {"valid", "same"}, optional
        Keras padding: ``"same"`` zero-pads like TensorFlow (the extra row and
        column of an even kernel go after).

    Returns
    -------
    numpy.ndarray
        float32 ``(H', W', filters)``.

    Raises
    ------
    ImageTooSmallError
        When a ``"valid"`` layer's filter is larger than the image.
    ValueError
        When the image's channels do not match the weights'.
    """
    kernel = check_kernel(conv.kernel).astype(np.float64)
    height, width, n_channels, _ = kernel.shape
    x = np.asarray(image, dtype=np.float64)
    x = x[..., None] if x.ndim == 2 else x
    if x.shape[-1] != n_channels:
        raise ValueError(
            f"image has {x.shape[-1]} channels, layer expects {n_channels}"
        )
    if padding == "same":
        pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in (height, width)]
        x = np.pad(x, [*pads, (0, 0)])
    check_image_size(x.shape[:2], (height, width))
    check_feature_maps(x.shape[:2], [(*x.shape[:2], kernel.shape[-1])])
    windows = np.lib.stride_tricks.sliding_window_view(x, (height, width), axis=(0, 1))
    out = np.empty((*windows.shape[:2], kernel.shape[-1]), dtype=np.float32)
    rows = max(1, 2**22 // (windows.shape[1] * kernel.shape[-1]))  # 32 MiB strips
    for r in range(0, len(out), rows):
        strip = np.einsum("ijcuv,uvcf->ijf", windows[r : r + rows], kernel)
        out[r : r + rows] = activate(strip + np.asarray(conv.bias), conv.activation)
    return out


def check_feature_maps(
    image_shape: tuple[int, ...],
    map_shapes: list[tuple[int, ...]],
    *,
    limit: int = MAX_FEATURE_MAP_BYTES,
) -> None:
    """Refuse an image whose float32 feature maps would pass ``limit`` bytes.

    Parameters
    ----------
    image_shape : tuple of int
        The image's (height, width).
    map_shapes : list of tuple of int
        The shape of each layer's maps, ``(height', width', filters)``.
    limit : int
        The most bytes allowed.

    Raises
    ------
    TooLargeError
        Naming the size of image that fits.
    """
    need = sum(4 * math.prod(int(n) for n in shape) for shape in map_shapes)
    if need > limit:
        scale = math.sqrt(limit / need)
        h, w = (int(n * scale) for n in image_shape[:2])
        raise TooLargeError(
            f"the feature maps of a {image_shape[0]}x{image_shape[1]} image take "
            f"{need / 2**20:,.0f} MiB, more than the limit of {limit / 2**20:,.0f} "
            f"MiB: crop or downscale the image (to about {h}x{w})"
        )


def check_image_size(shape: tuple[int, ...], kernel_shape: tuple[int, int]) -> None:
    """Raise :class:`ImageTooSmallError` when the image is smaller than the filter."""
    if shape[0] < kernel_shape[0] or shape[1] < kernel_shape[1]:
        raise ImageTooSmallError(
            f"the image ({shape[0]}x{shape[1]}) is smaller than the filter "
            f"({kernel_shape[0]}x{kernel_shape[1]}): pick a larger image"
        )


def current_plane(
    data: np.ndarray, step: tuple[int, ...] = (), *, rgb: bool = False
) -> np.ndarray:
    """Return the 2D plane (or RGB plane) of an nD image at a dims position.

    Parameters
    ----------
    data : array_like
        ``(..., H, W)``, or ``(..., H, W, C)`` with ``rgb``; dask arrays are
        computed for that plane only.
    step : tuple of int, optional
        The viewer's ``dims.current_step``: its last ``ndim`` entries are the
        layer's axes (napari aligns layers on the right); index 0 along every
        leading axis when it is shorter.
    rgb : bool, optional
        Whether the last axis holds colour channels.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` or ``(H, W, C)``.
    """
    ndim = np.ndim(data) - (1 if rgb else 0)  # napari aligns layers on the right
    step = tuple(step)[-ndim:] if len(step) >= ndim else (0,) * ndim
    shape = np.shape(data)[: ndim - 2]
    index = tuple(min(int(i), n - 1) for i, n in zip(step, shape, strict=False))
    return np.asarray(data[index])


def to_grey(image: np.ndarray, *, rgb: bool) -> np.ndarray:
    """Return a 2D float image in 0..1 for a 1-channel network.

    Integers are divided by their type's maximum; floats already within 0..1
    are kept, other floats are rescaled from their min..max; NaN and inf are
    replaced by the median of the other values (so that they do not turn every
    map NaN); RGB(A) is turned into luminance with
    :func:`skimage.color.rgb2gray` (alpha dropped).

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or, with ``rgb``, ``(H, W, 3|4)``.
    rgb : bool
        Whether the last axis holds colour channels.

    Returns
    -------
    numpy.ndarray
        float32 ``(H, W)`` in 0..1.
    """
    x = np.asarray(image)
    if np.issubdtype(x.dtype, np.integer):
        x = x / np.iinfo(x.dtype).max
    elif x.dtype == bool:
        x = x.astype(np.float64)
    x = np.asarray(x, dtype=np.float64)
    if rgb:
        from skimage.color import rgb2gray

        x = rgb2gray(x[..., :3])
    if x.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {x.shape}: pick one plane")
    bad = ~np.isfinite(x)
    if bad.all():
        raise ValueError("no pixel of the image is a finite number (all NaN or inf)")
    if bad.any():
        x = np.where(bad, np.median(x[~bad]), x)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        x = (x / 2 - lo / 2) / (hi / 2 - lo / 2) if hi > lo else np.zeros_like(x)
    return np.clip(x, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------
# the closest classic kernel
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """The classic kernel closest to one learned filter.

    ``name`` is the catalogue's name (None when the catalogue has nothing at
    that size or the filter is flat); ``r`` the normalised correlation
    (Pearson, in -1..1; the best over the variants, so >= 0); ``rotation`` the
    quarter turns applied to the classic kernel (0..3); ``negated`` whether its
    sign was flipped.
    """

    filter: int
    channel: int
    name: str | None
    r: float
    rotation: int = 0
    negated: bool = False

    @property
    def variant(self) -> str:
        """A short description of the transform, '' for the kernel itself."""
        parts = [f"rotated {90 * self.rotation}°"] if self.rotation else []
        return ", ".join([*parts, "negated"] if self.negated else parts)

    def __str__(self) -> str:
        if self.name is None:
            return f"filter {self.filter} ~ (no classic kernel)"
        variant = f" ({self.variant})" if self.variant else ""
        channel = f" [channel {self.channel}]" if self.channel else ""
        return f"filter {self.filter}{channel} ~ {self.name}{variant}, r = {self.r:.2f}"


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Return the Pearson correlation of two same-shape arrays (nan if flat)."""
    a = np.ravel(a) - np.mean(a)
    b = np.ravel(b) - np.mean(b)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.clip(a @ b / norm, -1, 1)) if norm > 1e-12 else float("nan")


def variants(kernel: np.ndarray):
    """Yield ``(rotation, negated, array)`` for the 8 variants, identity first."""
    for negated in (False, True):
        for rotation in range(4):
            rotated = np.rot90(kernel, rotation)
            yield rotation, negated, -rotated if negated else rotated


def _unit_rows(arrays: np.ndarray) -> np.ndarray:
    """Centre and normalise each row; flat rows become NaN."""
    rows = arrays.reshape(len(arrays), -1).astype(np.float64)
    rows = rows - rows.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 1e-12, rows / norms, np.nan)


def _variant_table(
    catalogue: Mapping[str, np.ndarray], shape: tuple[int, ...]
) -> tuple[list[tuple[str, int, bool]], np.ndarray]:
    """Return every variant of the same-shape, non-flat kernels, as unit rows."""
    meta, arrays = [], []
    for name, classic in catalogue.items():
        classic = np.asarray(classic, dtype=np.float64)
        if classic.shape != shape or shape[0] != shape[1] or np.ptp(classic) == 0:
            continue
        for rotation, negated, variant in variants(classic):
            meta.append((name, rotation, negated))
            arrays.append(variant)
    size = int(np.prod(shape))
    table = _unit_rows(np.asarray(arrays)) if arrays else np.empty((0, size))
    return meta, table


def closest_classics(
    weights: np.ndarray,
    catalogue: Mapping[str, np.ndarray],
    *,
    filters: list[int] | None = None,
    channels: list[int] | None = None,
) -> list[Match]:
    """Name the classic kernel that each 2D filter of a stack resembles most.

    Every same-shape kernel of ``catalogue`` is tried in its 4 rotations
    (90-degree steps) and with both signs; the score is the Pearson
    correlation. Ties go to the plainest variant (no rotation, then no
    negation), then to the catalogue's order, so a Sobel y filter is named
    "Sobel y" rather than a rotated Sobel x. Flat kernels (a box blur) have
    no shape to correlate and are skipped; a flat filter matches nothing.

    Parameters
    ----------
    weights : numpy.ndarray
        ``(n, height, width)`` filters (see :func:`as_kernel`).
    catalogue : mapping of str to numpy.ndarray
        Classic kernels by name, e.g. :func:`classic_catalogue`.
    filters, channels : list of int, optional
        Carried into the results (``range(n)`` and zeros by default).

    Returns
    -------
    list of Match
        One per filter; ``name`` is None where nothing could be compared.
    """
    weights = np.asarray(weights, dtype=np.float64)
    n = len(weights)
    filters = list(range(n)) if filters is None else filters
    channels = [0] * n if channels is None else channels
    meta, table = _variant_table(catalogue, weights.shape[1:])
    if not meta:
        return [
            Match(f, c, None, float("nan"))
            for f, c in zip(filters, channels, strict=True)
        ]
    r = np.clip(_unit_rows(weights) @ table.T, -1, 1)  # (n, variants)
    cost = np.array([2 * (rot > 0) + neg for _, rot, neg in meta])
    best = np.argmax(np.nan_to_num(np.round(r, 6), nan=-9) - 1e-8 * cost, axis=1)
    matches = []
    for row, (f, c, k) in enumerate(zip(filters, channels, best, strict=True)):
        if np.isnan(r[row, k]):
            matches.append(Match(f, c, None, float("nan")))
        else:
            name, rotation, negated = meta[k]
            matches.append(Match(f, c, name, float(r[row, k]), rotation, negated))
    return matches


def closest_classic(
    weights: np.ndarray,
    catalogue: Mapping[str, np.ndarray],
    *,
    filter: int = 0,
    channel: int = 0,
) -> Match:
    """Name the classic kernel that one 2D filter resembles most.

    See :func:`closest_classics` for the rules.

    Parameters
    ----------
    weights : numpy.ndarray
        A 2D filter (see :func:`as_kernel`).
    catalogue : mapping of str to numpy.ndarray
        Classic kernels by name, e.g. :func:`classic_catalogue`.
    filter, channel : int, optional
        Carried into the result.

    Returns
    -------
    Match
        The best match; ``name`` is None when nothing could be compared.
    """
    weights = np.asarray(weights, dtype=np.float64)[None]
    return closest_classics(weights, catalogue, filters=[filter], channels=[channel])[0]


def classic_catalogue(size: int) -> dict[str, np.ndarray]:
    """Return the Kernels capability's fixed classic kernels of one size.

    Parameters
    ----------
    size : int
        The side of the kernels.

    Returns
    -------
    dict of str to numpy.ndarray
        Display name (``"Sobel x"``) -> convolution weights, from
        :func:`napari_digits.kernels.classic_kernels`.
    """
    from napari_digits import kernels

    def display(key: str) -> str:
        spec = kernels.CATALOGUE.get(key)
        return spec.name if spec is not None else key.replace("_", " ").capitalize()

    return {display(k): w for k, w in kernels.classic_kernels(size).items()}


def match_filters(
    kernel: np.ndarray, catalogue: Mapping[str, np.ndarray] | None = None
) -> list[Match]:
    """Match every (filter, input channel) of a layer to a classic kernel.

    Parameters
    ----------
    kernel : numpy.ndarray
        Keras weights ``(height, width, in_channels, filters)``.
    catalogue : mapping, optional
        Classic kernels by name; :func:`classic_catalogue` of the filters' size
        by default (square filters only; a non-square filter matches nothing).

    Returns
    -------
    list of Match
        In the order of :func:`tile_filters`' tiles (channel-major).
    """
    kernel = check_kernel(kernel)
    height, width, n_channels, n_filters = kernel.shape
    if catalogue is None:
        catalogue = classic_catalogue(height) if height == width else {}
    pairs = [(f, c) for c in range(n_channels) for f in range(n_filters)]
    stack = np.stack([as_kernel(kernel, f, channel=c) for f, c in pairs])
    return closest_classics(
        stack, catalogue, filters=[f for f, _ in pairs], channels=[c for _, c in pairs]
    )


def closest_name(match: Match) -> str:
    """Return the classic kernel's name with its variant ('' when unmatched)."""
    if match.name is None:
        return ""
    return f"{match.name} ({match.variant})" if match.variant else match.name


def match_table(matches: list[Match]) -> dict[str, np.ndarray]:
    """Return the matches as columns (for a table or a layer's ``features``).

    Returns
    -------
    dict of str to numpy.ndarray
        ``filter``, ``channel``, ``closest`` (name with its variant, or ''),
        ``r`` (float, nan when unmatched) and ``label`` (the sentence).
    """
    return {
        "filter": np.array([m.filter for m in matches], dtype=int),
        "channel": np.array([m.channel for m in matches], dtype=int),
        "closest": np.array(
            [
                f"{m.name} ({m.variant})" if m.variant else (m.name or "")
                for m in matches
            ],
            dtype=object,
        ),
        "r": np.array([m.r for m in matches], dtype=float),
        "label": np.array([str(m) for m in matches], dtype=object),
    }


def format_matches(matches: list[Match]) -> str:
    """Return the matches as a plain-text table, one filter per line.

    Parameters
    ----------
    matches : list of Match
        From :func:`match_filters`.

    Returns
    -------
    str
        Columns ``filter``, ``channel``, ``closest classic kernel`` and ``r``.
    """
    table = match_table(matches)
    width = max([len("closest classic kernel"), *map(len, table["closest"])])
    lines = [f"{'filter':>6}  {'channel':>7}  {'closest classic kernel':<{width}}  r"]
    for f, c, name, r in zip(
        table["filter"], table["channel"], table["closest"], table["r"], strict=True
    ):
        score = "-" if math.isnan(r) else f"{r:.2f}"
        lines.append(f"{f:>6}  {c:>7}  {name or '(none)':<{width}}  {score}")
    return "\n".join(lines)


def colour_tiles(
    tiles: FilterTiles,
    *,
    colormap: str = "RdBu_r",
    gap_colour: tuple[float, float, float] = (0.55, 0.55, 0.55),
) -> np.ndarray:
    """Colour the tiles with a diverging colormap centred on zero.

    Parameters
    ----------
    tiles : FilterTiles
        From :func:`tile_filters`.
    colormap : str, optional
        A matplotlib colormap name; ``-limit`` maps to its first colour, 0 to
        its middle and ``+limit`` to its last.
    gap_colour : tuple of float, optional
        RGB in 0..1 of the gaps between tiles.

    Returns
    -------
    numpy.ndarray
        uint8 RGB image ``(H, W, 3)``, ready to be written as a PNG.
    """
    import matplotlib

    cmap = matplotlib.colormaps[colormap]
    lut = np.round(cmap(np.arange(cmap.N))[:, :3] * 255).astype(np.uint8)
    # the index matplotlib itself takes for a float in 0..1, 3 bytes a pixel out
    scaled = np.clip(
        (tiles.image / np.float32(tiles.limit) + 1) * (cmap.N / 2), 0, None
    )
    index = np.minimum(scaled, cmap.N - 1, out=scaled)
    rgb = lut[index.astype(np.uint8 if cmap.N <= 256 else np.intp)]
    rgb[~tiles.mask] = np.round(np.asarray(gap_colour) * 255).astype(np.uint8)
    return rgb
