"""Robust statistics shared by the stages: one definition of each.

Every stage that needs a robust spread, a pixel-noise estimate or a block average uses these,
so QC, illumination, segmentation, the report and plate normalisation agree on what
"1 SD" and "the corner brightness" mean.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "MAD_SCALE",
    "block_mean",
    "corner_to_centre_ratio",
    "evenly_spaced",
    "mad_sigma",
    "median",
    "pixel_noise",
]

#: Scales a median absolute deviation to the standard deviation of a normal distribution.
MAD_SCALE = 1.4826


def median(values: np.ndarray):
    """``np.median`` of a 1-D array (the same result, with less overhead)."""
    n = values.size
    k = n // 2
    if n % 2:
        return np.partition(values, k)[k]
    part = np.partition(values, (k - 1, k))
    return (part[k - 1] + part[k]) / 2


def _hist_median2(counts: np.ndarray) -> int:
    """Twice the median (``np.median`` convention) of the integers ``i`` counted ``counts[i]``."""
    cdf = np.cumsum(counts)
    n = int(cdf[-1])
    a = int(np.searchsorted(cdf, (n - 1) // 2 + 1))
    b = int(np.searchsorted(cdf, n // 2 + 1))
    return a + b


def mad_sigma(values: np.ndarray, *, integer: bool = False) -> float:
    """Robust standard deviation: ``MAD_SCALE`` x the median absolute deviation from the median.

    Parameters
    ----------
    values : (N,) ndarray
    integer : bool
        Promise that ``values`` are integers (differences of 8/16-bit pixels): the medians are
        then taken from histograms where that is cheaper (the same result, faster).
    """
    values = np.asarray(values).ravel()
    if values.size == 0:
        return math.nan
    if integer and values.size >= 32768:
        twice = values.astype(np.int64) * 2  # 2 x value: medians become integers
        lo, hi = int(twice.min()), int(twice.max())
        if hi - lo <= 4 * values.size:
            med2 = _hist_median2(np.bincount(twice - lo)) + 2 * lo  # 2 x (2 x median)
            dev4 = np.abs(2 * twice - med2)  # 4 x |value - median|
            if int(dev4.max()) <= 8 * values.size:
                return MAD_SCALE * _hist_median2(np.bincount(dev4)) / 8.0
    med = median(values)
    return float(MAD_SCALE * median(np.abs(values - med)))


def pixel_noise(plane: np.ndarray) -> float:
    """Per-pixel noise SD from horizontally neighbouring pixel differences.

    ``MAD_SCALE * MAD(d) / sqrt(2)`` of the differences ``d``: cells and smooth illumination
    barely change neighbouring differences, so this measures the camera and shot noise even on
    fields full of cells.

    Parameters
    ----------
    plane : (Y, X) ndarray
    """
    d = np.diff(np.asarray(plane, dtype=np.float32), axis=1).ravel()
    return mad_sigma(d) / math.sqrt(2.0)


def block_mean(plane: np.ndarray, factor: int) -> np.ndarray:
    """Means over ``factor`` x ``factor`` blocks (edge rows/columns that fill no block dropped).

    Parameters
    ----------
    plane : (Y, X) ndarray
    factor : int
        Block side in pixels; 1 returns the plane as float32.

    Returns
    -------
    small : (Y // factor, X // factor) float32 ndarray
    """
    f = int(factor)
    if f <= 1 or plane.shape[0] < f or plane.shape[1] < f:
        return np.asarray(plane, dtype=np.float32)
    ny, nx = plane.shape[0] // f, plane.shape[1] // f
    if plane.dtype.kind == "u" and plane.dtype.itemsize <= 2 and f * f * 65535 < 2**32:
        acc = np.uint32
    elif plane.dtype.kind in "ub":
        acc = np.uint64
    elif plane.dtype.kind == "i":
        acc = np.int64
    else:
        acc = np.float64
    # add the f rows of each block, then the f columns (explicit adds of whole rows are much
    # faster than numpy reductions over a short axis)
    rows = plane[: ny * f, : nx * f].reshape(ny, f, nx * f)
    row_sum = rows[:, 0].astype(acc)
    for i in range(1, f):
        row_sum += rows[:, i]
    cols = row_sum.reshape(ny, nx, f)
    small = cols[..., 0].copy()
    for i in range(1, f):
        small += cols[..., i]
    return (small / (f * f)).astype(np.float32)


def corner_to_centre_ratio(plane: np.ndarray, *, patch_fraction: float = 0.1) -> float:
    """Mean of the four corner squares over the mean of the central square.

    Squares are ``round(patch_fraction * min(Y, X))`` px a side (at least 1): 51 px on a 512 px
    image. 1 means evenly lit; vignetting gives less than 1.

    Parameters
    ----------
    plane : (Y, X) ndarray
    patch_fraction : float

    Returns
    -------
    float
        The ratio; NaN where the centre is black (the ratio is undefined).
    """
    plane = np.asarray(plane)
    if plane.ndim != 2:
        raise ValueError(f"corner_to_centre_ratio takes a (height, width) image, got {plane.shape}")
    ny, nx = plane.shape
    s = max(1, round(patch_fraction * min(ny, nx)))
    corners = (plane[:s, :s], plane[:s, nx - s :], plane[ny - s :, :s], plane[ny - s :, nx - s :])
    corner = float(np.mean([c.mean(dtype=np.float64) for c in corners]))
    y0, x0 = (ny - s) // 2, (nx - s) // 2
    centre = float(plane[y0 : y0 + s, x0 : x0 + s].mean(dtype=np.float64))
    if centre <= 0:
        return math.nan
    return corner / centre


def evenly_spaced(items: list, n: int) -> list:
    """At most ``n`` items spread evenly over the list (all of them when there are fewer)."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]
