"""Texture: Haralick's 13 features of the grey-level co-occurrence matrix (CellProfiler's
MeasureTexture, as cp_measure 0.3.0 computes it with mahotas).

Columns are ``<Feature>_<Channel>_<scale>_<direction>_<levels>``, e.g.
``AngularSecondMoment_DNA_3_00_256`` (the registry adds ``<Compartment>_Texture_``), for every
feature, channel, scale (``scales``, default ``[3]``) and 2-D direction ``00`` (0, 1), ``01``
(1, 1), ``02`` (1, 0), ``03`` (1, -1) (row, column offsets, times the scale).

**Quantisation** is one fixed mapping of the whole image, as CellProfiler >= 4.2.8 and
cp_measure: ``q = rint(255 * clip(x, 0, 1))`` (scikit-image's ``img_as_ubyte``), then for
``gray_levels`` L != 256 scikit-image's ``rescale_intensity`` from (0, 255) to (0, L - 1),
truncated to an integer. No per-object stretching. (cp_measure raises on values outside
[-1, 1]; we clip.)

**Co-occurrence.** For each object and direction, the pairs (a, a + offset) with both pixels
in the object and both levels > 0 (level 0 is ignored, as mahotas' ``ignore_zeros``), counted
symmetrically (C + C^T) and normalised to p. An object with no such pair in *any* direction
of a scale gets NaN for all that scale's features; an object without pixels gets NaN.

**Features** (mahotas' definitions; ``k = |i - j|``, ``px = py`` as p is symmetric, log2):
AngularSecondMoment sum p^2; Contrast sum k^2 p_{x-y}(k); Correlation (E[ij] - ux uy) /
(sx sy), 1 where sx = 0; Variance vx; InverseDifferenceMoment sum p / (1 + (i - j)^2);
SumAverage, SumVariance, SumEntropy of p_{x+y}; Entropy -sum p log p; DifferenceVariance the
(population) variance of the *vector* p_{x-y}(0 .. m-1), m = the object's highest level + 1
(mahotas' default, not the variance of |i - j|); DifferenceEntropy of p_{x-y}; InfoMeas1
(HXY - HXY1) / max(HX, HY); InfoMeas2 sqrt(1 - exp(-2 (HXY2 - HXY))), with HXY1 = HXY2 =
HX + HY (equal to mahotas' sums mathematically; they differ only by rounding).

**How.** No (N, L, L) matrix is built, and all objects are done at once
(:mod:`plateflow.features.texture_glcm`): per direction, the pixel pairs come from one
comparison of the flat row image with itself shifted by the offset; per channel, three
per-object histograms of the pairs (``p_x``, ``p_{x+y}``, ``p_{x-y}``; ``np.bincount``) give
every feature but AngularSecondMoment and Entropy, which come from one sort of the packed pair
codes ``row << 16 | min(i, j) << 8 | max(i, j)`` (each run is a cell, summed per object with
``reduceat``). The quantised planes are computed once per site (``images.cache``). Where
HXY2 - HXY (the mutual information) is below 1e-12 it is 0: an independent matrix's rounding
noise would otherwise reach InfoMeas2 as ~1e-8 through the square root.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from plateflow.features.registry import Images, Objects, register_family
from plateflow.features.texture_glcm import haralick, xlogx_table

__all__ = ["DIRECTIONS", "TEXTURE_DEFAULTS", "TEXTURE_FEATURES", "texture"]

TEXTURE_FEATURES = (
    "AngularSecondMoment",
    "Contrast",
    "Correlation",
    "Variance",
    "InverseDifferenceMoment",
    "SumAverage",
    "SumVariance",
    "SumEntropy",
    "Entropy",
    "DifferenceVariance",
    "DifferenceEntropy",
    "InfoMeas1",
    "InfoMeas2",
)

#: CellProfiler's 2-D directions (row, column), in the order of the ``_00`` .. ``_03`` suffix.
DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1))

TEXTURE_DEFAULTS = {"scales": [3], "gray_levels": 256}


def _settings(params: Mapping) -> tuple[list[int], int]:
    scales = [int(s) for s in params.get("scales", TEXTURE_DEFAULTS["scales"])]
    levels = int(params.get("gray_levels", TEXTURE_DEFAULTS["gray_levels"]))
    if not scales or min(scales) < 1:
        raise ValueError(f"features.Texture.scales must be integers >= 1, got {scales}")
    if not 2 <= levels <= 256:
        raise ValueError(f"features.Texture.gray_levels must be in 2..256, got {levels}")
    return scales, levels


def _columns(channels: Sequence[str], params: Mapping) -> list[str]:
    scales, levels = _settings(params)
    return [
        f"{feature}_{ch}_{scale}_{d:02d}_{levels}"
        for feature in TEXTURE_FEATURES
        for ch in channels
        for scale in scales
        for d in range(len(DIRECTIONS))
    ]


@register_family("Texture", columns=_columns, order=40,
                 defaults=TEXTURE_DEFAULTS)
def texture(objects: Objects, images: Images, params: Mapping) -> dict[str, np.ndarray]:
    """Haralick features of each object of one compartment, per channel, scale and direction.

    Parameters
    ----------
    objects : Objects
        (Y, X) labels and the N object numbers (rows).
    images : Images
        (C, Y, X) float64 pixels (0..1) and the channel names.
    params : mapping
        ``features.Texture``: ``scales`` (list of int >= 1), ``gray_levels`` (2..256).

    Returns
    -------
    dict of str to (N,) float64 ndarray
    """
    scales, levels = _settings(params)
    n = objects.n
    out = {name: np.full(n, np.nan) for name in _columns(images.channels, params)}
    labels = objects.labels
    if n == 0 or not labels.any():
        return out
    pad = max(scales)
    h, w = labels.shape
    # row + 1 of each pixel (0: background or not a row), padded on the right with `pad`
    # zero columns so that a flat offset never pairs pixels across the image's side
    row_image = np.zeros((h, w + pad), dtype=np.int32)
    inside = labels > 0
    row_image[:, :w][inside] = objects.rows(labels[inside]) + 1
    row_image = row_image.ravel()
    pixels = np.flatnonzero(row_image)
    if pixels.size == 0:
        return out
    pixel_rows = (row_image[pixels] - 1).astype(np.intp)
    quantised = [_quantised(images, c, levels, pad) for c in range(len(images.channels))]
    # mahotas sizes each object's matrix by its highest level: DifferenceVariance uses it
    widths = [_max_level(pixel_rows, q[pixels], n) + 1.0 for q in quantised]
    table = xlogx_table(2 * int(np.bincount(pixel_rows).max()))  # counts <= 2 x pairs of a row
    feats = {}  # (channel, scale, direction) -> the 13 features
    for s in scales:
        for d in range(len(DIRECTIONS)):
            offset, first, base, code = _pairs(row_image, h, w, s, d, levels)
            for c, q in enumerate(quantised):
                qa, qb = q[first], q[offset:][first]
                feats[c, s, d] = haralick(base, code, qa, qb, n, levels, widths[c], table)
    for c, ch in enumerate(images.channels):
        for s in scales:
            # mahotas raises (-> NaN for the whole scale) if any direction has no pair
            empty = np.zeros(n, dtype=bool)
            for d in range(len(DIRECTIONS)):
                empty |= np.isnan(feats[c, s, d][0])
            for d in range(len(DIRECTIONS)):
                for feature, value in zip(TEXTURE_FEATURES, feats[c, s, d], strict=True):
                    out[f"{feature}_{ch}_{s}_{d:02d}_{levels}"] = np.where(empty, np.nan, value)
    return out


def _level_lut(levels: int) -> np.ndarray:
    """uint8 value -> level, as skimage's ``rescale_intensity((0, 255) -> (0, L-1))``."""
    values = np.arange(256, dtype=np.float64)
    if levels == 256:
        return values.astype(np.uint8)
    return np.asarray(values / 255.0 * (levels - 1)).astype(np.uint8)


def _quantised(images: Images, channel: int, levels: int, pad: int) -> np.ndarray:
    """Flat uint8 levels of one channel, padded like the row image; once per site.

    scikit-image's ``img_as_ubyte`` of the plane clipped to 0..1 (``rint(255 x)``, in the
    plane's float precision), then :func:`_level_lut`.
    """
    key = ("Texture", "levels", channel, levels, pad)
    if key not in images.cache:
        plane = np.asarray(images.pixels[channel])
        dtype = plane.dtype if plane.dtype in (np.float32, np.float64) else np.float64
        scaled = np.clip(plane, 0, 1).astype(dtype, copy=False)
        scaled *= 255
        np.rint(scaled, out=scaled)
        q = np.zeros((plane.shape[0], plane.shape[1] + pad), dtype=np.uint8)
        q[:, : plane.shape[1]] = scaled
        if levels != 256:
            q = _level_lut(levels)[q]
        images.cache[key] = q.ravel()
    return images.cache[key]


def _max_level(rows: np.ndarray, q: np.ndarray, n: int) -> np.ndarray:
    """Each row's highest level among its pixels (0 for a row without pixels)."""
    seen = np.bincount(rows * 256 + q, minlength=n * 256).reshape(n, 256) > 0
    return 255 - np.argmax(seen[:, ::-1], axis=1)


def _pairs(row_image: np.ndarray, h: int, w: int, scale: int, direction: int, levels: int):
    """Pixel pairs (a, a + offset) within one object, in the flat padded row image.

    Returns the flat offset, the first pixels ``a``, and their rows as ``row * levels``
    (intp) and as ``row << 16`` (the high bits of :func:`haralick`'s cell codes).
    """
    dy, dx = (scale * v for v in DIRECTIONS[direction])
    if dy >= h or abs(dx) >= w:
        empty = np.zeros(0, dtype=np.intp)
        return 1, empty, empty, empty.astype(np.int32)
    offset = dy * (row_image.size // h) + dx  # > 0 for every direction
    ra = row_image[:-offset]
    first = np.flatnonzero((ra == row_image[offset:]) & (ra > 0))
    rows = ra[first]
    rows -= 1
    code = rows.astype(np.int64) if rows.max(initial=0) >= 2**15 else rows.copy()
    code <<= 16
    return offset, first, rows * np.intp(levels), code
