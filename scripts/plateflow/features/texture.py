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

**How.** No (N, L, L) matrix is built. Everything linear in p (marginals, p_{x+y},
p_{x-y}, E[ij]) is a ``np.bincount`` over all objects' pixel pairs at once; the two features
that need the individual matrix cells (AngularSecondMoment, Entropy) come from one sort of
the pair codes ``row * L^2 + min(i, j) * L + max(i, j)`` per direction and run lengths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from plateflow.features.registry import Images, Objects, register_family

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
                 defaults=TEXTURE_DEFAULTS, enabled=False)
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
    flat = objects.labels.ravel()
    row_image = np.full(flat.shape, -1, dtype=np.int64)
    inside = np.flatnonzero(flat)
    if inside.size == 0 or n == 0:
        return out
    row_image[inside] = objects.rows(flat[inside])
    row_image = row_image.reshape(objects.labels.shape)
    pairs = {(s, d): _pairs(row_image, s, d) for s in scales for d in range(len(DIRECTIONS))}
    pixels = np.flatnonzero(row_image >= 0)
    pixel_rows = row_image.ravel()[pixels]
    lut = _level_lut(levels)

    for c, ch in enumerate(images.channels):
        q = lut[_to_ubyte(images.pixels[c])]
        # mahotas sizes each object's matrix by its highest level: DifferenceVariance uses it
        qflat = q.ravel()
        width = np.zeros(n, dtype=np.intp)
        np.maximum.at(width, pixel_rows, qflat[pixels])
        width = width + 1.0
        for s in scales:
            per_dir = []
            for d in range(len(DIRECTIONS)):
                ia, ib, rows = pairs[(s, d)]
                qa, qb = qflat[ia], qflat[ib]
                keep = (qa > 0) & (qb > 0)
                per_dir.append(_haralick(rows[keep], qa[keep], qb[keep], n, levels, width))
            # mahotas raises (-> NaN for the whole scale) if any direction has no pair
            empty = np.zeros(n, dtype=bool)
            for feats in per_dir:
                empty |= np.isnan(feats[0])
            for d, feats in enumerate(per_dir):
                for feature, value in zip(TEXTURE_FEATURES, feats, strict=True):
                    out[f"{feature}_{ch}_{s}_{d:02d}_{levels}"] = np.where(empty, np.nan, value)
    return out


def _to_ubyte(plane: np.ndarray) -> np.ndarray:
    """scikit-image's ``img_as_ubyte`` of a 0..1 float plane (clipped to 0..1 first)."""
    plane = np.asarray(plane)
    dtype = plane.dtype if plane.dtype in (np.float32, np.float64) else np.float64
    scaled = np.multiply(np.clip(plane, 0, 1), 255, dtype=dtype)
    return np.rint(scaled).astype(np.uint8)


def _level_lut(levels: int) -> np.ndarray:
    """uint8 value -> level, as skimage's ``rescale_intensity((0, 255) -> (0, L-1))``."""
    values = np.arange(256, dtype=np.float64)
    if levels == 256:
        return values.astype(np.intp)
    return np.asarray(values / 255.0 * (levels - 1)).astype(np.uint8).astype(np.intp)


def _pairs(row_image: np.ndarray, scale: int, direction: int):
    """Flat indices (a, b = a + offset) of pixel pairs within one object, and their row."""
    dy, dx = (scale * v for v in DIRECTIONS[direction])
    h, w = row_image.shape
    if dy >= h or abs(dx) >= w:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, empty
    index = np.arange(h * w, dtype=np.intp).reshape(h, w)
    xa = slice(0, w - dx) if dx >= 0 else slice(-dx, w)
    xb = slice(dx, w) if dx >= 0 else slice(0, w + dx)
    ra, rb = row_image[: h - dy, xa], row_image[dy:, xb]
    same = (ra == rb) & (ra >= 0)
    return index[: h - dy, xa][same], index[dy:, xb][same], ra[same]


def _group_entropy(counts: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Row-wise -sum p log2 p of integer counts (N, M), p = counts / total (non-zero cells)."""
    nz = np.flatnonzero(counts)
    row = nz // counts.shape[1]
    p = counts.ravel()[nz] / total[row]
    return -np.bincount(row, weights=p * np.log2(p), minlength=counts.shape[0])


def _haralick(rows, qa, qb, n: int, levels: int, width: np.ndarray) -> list[np.ndarray]:
    """The 13 features (each (n,)) of one direction from all objects' level pairs.

    Sums over the symmetric matrix are sums over pairs counted both ways: with T = 2 * pairs,
    p_x(i) = (#a = i + #b = i) / T, E[f(i, j)] = sum_pairs (f(a, b) + f(b, a)) / T.
    """
    qa = qa.astype(np.intp)
    qb = qb.astype(np.intp)
    total = 2.0 * np.bincount(rows, minlength=n)
    base = rows * levels

    def mean(weights: np.ndarray) -> np.ndarray:  # E over p of a symmetric f(i, j)
        return 2.0 * np.bincount(rows, weights=weights, minlength=n) / total

    with np.errstate(divide="ignore", invalid="ignore"):
        s = qa + qb
        d = np.abs(qa - qb)
        # integer sums are exact in float64, so these identities lose nothing:
        # qa^2 + qb^2 = s^2 - 2 qa qb, (qa - qb)^2 = s^2 - 4 qa qb
        s_float = s.astype(np.float64)
        sum_s = np.bincount(rows, weights=s_float, minlength=n)
        sum_s2 = np.bincount(rows, weights=s_float * s_float, minlength=n)
        sum_ab = np.bincount(rows, weights=(qa * qb).astype(np.float64), minlength=n)
        ux = sum_s / total
        vx = (sum_s2 - 2.0 * sum_ab) / total - ux**2
        sx = np.sqrt(vx)
        eij = 2.0 * sum_ab / total
        correlation = np.where(sx == 0, 1.0, (eij - ux * ux) / sx / sx)
        contrast = 2.0 * (sum_s2 - 4.0 * sum_ab) / total
        idm = mean(1.0 / (1.0 + np.arange(levels, dtype=np.float64) ** 2)[d])
        sum_average = 2.0 * ux
        sum_variance = 2.0 * sum_s2 / total - sum_average**2
        px = (np.bincount(base + qa, minlength=n * levels)
              + np.bincount(base + qb, minlength=n * levels)).reshape(n, levels)
        plus = 2 * np.bincount(2 * base + s, minlength=2 * n * levels)
        diff = 2 * np.bincount(base + d, minlength=n * levels).reshape(n, levels)
        sum_entropy = _group_entropy(plus.reshape(n, 2 * levels), total)
        diff_entropy = _group_entropy(diff, total)
        hx = _group_entropy(px, total)
        # numpy's var of the length-m vector p_{x-y}[:m] (m = width; zeros included)
        diff_sq = np.einsum("ij,ij->i", diff, diff, dtype=np.float64) / total**2
        diff_mean = 1.0 / width
        diff_variance = (diff_sq - 2 * diff_mean) / width + diff_mean**2
        asm, entropy = _cell_sums(base, qa, qb, n, levels, total)
        hxy1 = hxy2 = 2.0 * hx
        info1 = np.where(hx == 0, entropy - hxy1, (entropy - hxy1) / hx)
        info2 = np.sqrt(np.maximum(0.0, 1.0 - np.exp(-2.0 * (hxy2 - entropy))))
    feats = [asm, contrast, correlation, vx, idm, sum_average, sum_variance, sum_entropy,
             entropy, diff_variance, diff_entropy, info1, info2]
    empty = total == 0
    return [np.where(empty, np.nan, f) for f in feats]


def _cell_sums(base, qa, qb, n: int, levels: int, total: np.ndarray):
    """sum p^2 and -sum p log2 p over the cells of each object's symmetric matrix.

    One sort of the unordered pair codes ``(row * L + min) * L + max`` (``base`` = row * L);
    each run is a cell.
    """
    lo = np.minimum(qa, qb)
    hi = np.maximum(qa, qb)
    code_dtype = np.int32 if n * levels * levels < 2**31 else np.int64
    codes = np.sort(((base + lo) * levels + hi).astype(code_dtype))
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if codes.size else codes
    first = codes[starts]
    row, cell = np.divmod(first, levels * levels)
    row = row.astype(np.intp)
    count = np.diff(np.r_[starts, codes.size]).astype(np.float64)
    # diagonal cell (i, i): one cell of 2 x count; off-diagonal {i, j}: two cells of count
    diagonal = (cell // levels) == (cell % levels)
    mult = np.where(diagonal, 1.0, 2.0)
    p = np.where(diagonal, 2.0 * count, count) / total[row]
    asm = np.bincount(row, weights=mult * p * p, minlength=n)
    entropy = -np.bincount(row, weights=mult * p * np.log2(p), minlength=n)
    return asm, entropy
