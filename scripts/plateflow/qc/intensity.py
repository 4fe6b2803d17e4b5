"""Intensity statistics of one raw channel: percentiles, mean, spread, entropy, saturation.

8/16-bit images are measured from one histogram (much faster than sorting); other types
through numpy with the same definitions: percentiles are ``inverted_cdf`` (an actual pixel
value), the standard deviation is the population one, and the entropy is that of a 256-bin
histogram over ``[0, dtype_max]`` (values outside counted in the end bins).
"""

from __future__ import annotations

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["intensity_stats"]

#: Intensity metric -> percentile
_PERCENTILES = {
    "Intensity_P01": 1.0,
    "Intensity_P05": 5.0,
    "Intensity_P50": 50.0,
    "Intensity_P95": 95.0,
    "Intensity_P99": 99.0,
}
#: pixels per bincount call in the intensity histogram
_CHUNK = 1 << 18
#: bins of the histogram behind Intensity_Entropy
_ENTROPY_BINS = 256


def intensity_stats(
    plane: np.ndarray, *, saturation_level: float, dtype_max: float
) -> dict[str, float]:
    """Percentiles, mean, standard deviation, entropy and saturated fraction of one channel.

    Parameters
    ----------
    plane : (Y, X) ndarray
        One raw channel.
    saturation_level : float
        Pixels ``>=`` this value count as saturated.
    dtype_max : float
        Top of the range ``[0, dtype_max]`` of the entropy histogram.

    Returns
    -------
    dict of str to float
        ``Intensity_P01``, ``_P05``, ``_P50``, ``_P95``, ``_P99``, ``Intensity_Mean``,
        ``Intensity_Std``, ``Intensity_Entropy`` (bits, 0 to 8) and ``SaturatedFraction``.
    """
    n = plane.size
    if plane.dtype.kind == "u" and plane.dtype.itemsize <= 2:
        # a histogram is much faster than sorting for 8/16-bit images; counting in chunks keeps
        # bincount's conversion to intp in the cache
        flat = plane.ravel()
        hist = np.zeros(int(flat.max()) + 1, np.int64)
        for i in range(0, flat.size, _CHUNK):
            hist += np.bincount(flat[i : i + _CHUNK], minlength=hist.size)
        cdf = np.cumsum(hist)
        values = np.arange(hist.size, dtype=np.float64)
        out = {
            name: float(np.searchsorted(cdf, q / 100.0 * n, side="left"))
            for name, q in _PERCENTILES.items()
        }
        # (no `@`: a BLAS dot product on a long vector wakes OpenBLAS threads, which then spin
        # and more than double the CPU time of the whole measurement)
        mean = float(np.multiply(hist, values).sum() / n)
        out["Intensity_Mean"] = mean
        out["Intensity_Std"] = math.sqrt(
            float(np.multiply(hist, np.square(values - mean)).sum()) / n
        )
        bins = _entropy_bin(values, dtype_max)
        out["Intensity_Entropy"] = _entropy_bits(np.bincount(bins, weights=hist))
        first = max(math.ceil(saturation_level), 0)
        out["SaturatedFraction"] = float(hist[first:].sum() / n) if first < hist.size else 0.0
        return out
    flat = plane.ravel()
    pct = np.percentile(flat, list(_PERCENTILES.values()), method="inverted_cdf")
    out = {name: float(v) for name, v in zip(_PERCENTILES, pct)}
    out["Intensity_Mean"] = float(flat.mean(dtype=np.float64))
    out["Intensity_Std"] = float(flat.std(dtype=np.float64))
    counts = np.bincount(_entropy_bin(flat.astype(np.float64), dtype_max), minlength=_ENTROPY_BINS)
    out["Intensity_Entropy"] = _entropy_bits(counts)
    out["SaturatedFraction"] = float(np.count_nonzero(flat >= saturation_level) / n)
    return out


def _entropy_bin(values: np.ndarray, dtype_max: float) -> np.ndarray:
    """Bin (0-255) of each value in a 256-bin histogram over ``[0, dtype_max]``.

    Same bins as ``np.histogram(values, 256, range=(0, dtype_max))``; values outside the range
    go to the end bins.
    """
    idx = np.floor(values * (_ENTROPY_BINS / float(dtype_max)))
    return np.clip(np.nan_to_num(idx), 0, _ENTROPY_BINS - 1).astype(np.intp)


def _entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits) of a histogram given as counts."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum()) if p.size else 0.0

