"""Correlation: colocalization between every pair of channels within each object
(CellProfiler MeasureColocalization, "Within objects"; cp_measure's per-object formulas).

For each channel pair ``A_B`` (``A`` before ``B`` in image order), over an object's pixels
``a``, ``b``:

- ``Correlation_A_B``: Pearson's r. ``Slope_A_B``: least-squares slope of ``b`` on ``a``
  (cov/var). CellProfiler writes Slope only per image; ``slope: false`` drops it, leaving
  exactly CellProfiler's object columns.
- ``Overlap_A_B``, ``K_A_B``, ``K_B_A``: over the pixels with ``a >= t% max(a)`` and
  ``b >= t% max(b)`` (``threshold`` t, default 15): sum(ab)/sqrt(sum(a²)sum(b²)),
  sum(ab)/sum(a²), sum(ab)/sum(b²).
- ``Manders_A_B`` (M1) = sum of ``a`` over those pixels / sum of ``a`` over ``a >= t% max(a)``;
  ``Manders_B_A`` (M2) likewise.
- ``RWC_A_B``, ``RWC_B_A``: as Manders, each pixel weighted by ``(R - |rank(a) - rank(b)|)/R``
  (dense ranks within the object, R = 1 + the larger top rank).
- ``Costes_A_B``, ``Costes_B_A``: Manders above Costes' automatic thresholds, found per object
  by cp_measure's "Faster" bisection on the grid ``k / costes_scale``.

Conventions are cp_measure's (the oracle), which differ from CellProfiler 4.0.6 in two places:
RWC ranks and the Costes threshold are per object in cp_measure, across all objects' pixels
(ranks) or the whole image (Costes) in CellProfiler 4.0.6. An object without pixels gets NaN;
0/0 gives NaN; Pearson with a constant channel in the object is NaN (and Slope when the first
is constant), where cp_measure returns rounding noise (often +-1) or NaN; an object with no
pixel above both thresholds gets 0 for Overlap, K, Manders and RWC, as in cp_measure and
CellProfiler; an undefined Costes search (fewer than three non-zero pixels, zero covariance,
no non-negative background correlation) gives NaN.

How: the compartment's pixels are grouped by object once; per channel, the per-object sums,
thresholds, dense ranks (one sort of (object, value)) and Costes grid positions are computed
once (:mod:`~plateflow.features.correlation_pixels`), so that a pair costs its cross terms,
with per-object sums as segment reductions; Costes is
:mod:`~plateflow.features.correlation_costes` (one sort per pair, then a bisection of binary
searches over all objects at once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np

from plateflow.features.correlation_costes import costes
from plateflow.features.correlation_pixels import (
    ChannelPixels,
    PixelGroups,
    costes_key,
    div,
    segment_reduce,
)
from plateflow.features.registry import Images, Objects, register_family

__all__ = ["CORRELATION_DEFAULTS", "correlation"]

#: Options of ``features.Correlation`` (the schema holds the same defaults).
CORRELATION_DEFAULTS = {"threshold": 15, "costes_scale": 65535, "slope": True}


def _pair_columns(a: str, b: str, slope: bool) -> list[str]:
    names = [f"Correlation_{a}_{b}"]
    if slope:
        names.append(f"Slope_{a}_{b}")
    return names + [f"Overlap_{a}_{b}", f"K_{a}_{b}", f"K_{b}_{a}", f"Manders_{a}_{b}",
                    f"Manders_{b}_{a}", f"RWC_{a}_{b}", f"RWC_{b}_{a}", f"Costes_{a}_{b}",
                    f"Costes_{b}_{a}"]


def _columns(channels: Sequence[str], params: Mapping) -> list[str]:
    slope = bool(params.get("slope", CORRELATION_DEFAULTS["slope"]))
    return [name for a, b in combinations(channels, 2) for name in _pair_columns(a, b, slope)]


@register_family("Correlation", columns=_columns, order=70,
                 defaults=CORRELATION_DEFAULTS)
def correlation(objects: Objects, images: Images, params: Mapping) -> dict[str, np.ndarray]:
    """Colocalization of every channel pair within each object of one compartment.

    Parameters
    ----------
    objects : Objects
        (Y, X) labels and the N object numbers (rows).
    images : Images
        (C, Y, X) float64 pixels (0..1) and the channel names.
    params : mapping
        ``features.Correlation``: ``threshold`` (percent of the object's maximum, for Overlap,
        K, Manders, RWC), ``costes_scale`` (grid of Costes' threshold search, e.g. 65535 for
        16-bit acquisitions), ``slope``.

    Returns
    -------
    dict of str to (N,) float64 ndarray
    """
    params = {**CORRELATION_DEFAULTS, **params}
    out = {name: np.full(objects.n, np.nan) for name in _columns(images.channels, params)}
    g = PixelGroups(objects)
    if g.size == 0:
        return out
    thr = float(params["threshold"]) / 100.0
    scale = int(params["costes_scale"])
    # Per site: each pixel's Costes grid position, and whether a plane is exactly float32.
    planes = images.cache.setdefault(("Correlation.planes", scale), {})
    channels = {}
    for c, ch in enumerate(images.channels):
        if c not in planes:
            plane = np.asarray(images.pixels[c], dtype=np.float64)
            planes[c] = (costes_key(plane, scale),
                         bool(np.array_equal(plane.astype(np.float32), plane)))
        key, single = planes[c]
        channels[ch] = ChannelPixels(g, images.pixels[c], key, thr, single)
    for a, b in combinations(images.channels, 2):
        values = _pair(g, channels[a], channels[b], scale)
        for name, value in zip(_pair_columns(a, b, True), values, strict=True):
            if name in out:
                out[name] = value
    return out


def _above_both(g: PixelGroups, cx: ChannelPixels, cy: ChannelPixels):
    """Per-row sums over the pixels above both thresholds: whether any, x, y, x², y², xy,
    x d and y d (``d = |rank(x) - rank(y)|``)."""
    both = np.logical_and(cx.above, cy.above, out=g.buffer("both", g.size, bool))
    count = np.count_nonzero(both)
    if count > 0.6 * g.size:  # mask the products
        tmp, xb, yb, d = (g.buffer(f"f{i}", g.size) for i in range(4))
        x, y = cx.x, cy.x
        np.multiply(x, both, out=xb)
        np.multiply(y, both, out=yb)
        np.subtract(cx.rank, cy.rank, out=d)
        np.abs(d, out=d)
        sums = [g.max(both) > 0, g.sum(xb), g.sum(yb)]
        for u, v in ((xb, x), (yb, y), (xb, y), (xb, d), (yb, d)):
            sums.append(g.sum(np.multiply(u, v, out=tmp)))
        return sums
    # few pixels: take them out
    pixels = np.flatnonzero(both)
    first = np.searchsorted(pixels, g.starts)
    n = np.searchsorted(pixels, g.ends) - first
    x, y = cx.x[pixels], cy.x[pixels]
    d = cx.rank[pixels]
    d -= cy.rank[pixels]
    np.abs(d, out=d)

    def total(values):
        return segment_reduce(np.add, values, first, n)

    return [n > 0, total(x), total(y), total(x * x), total(y * y), total(x * y),
            total(x * d), total(y * d)]


def _pair(g: PixelGroups, cx: ChannelPixels, cy: ChannelPixels,
          scale: int) -> list[np.ndarray]:
    """The 11 measurements of one channel pair (with Slope), NaN for empty rows."""
    sxy = g.sum(np.multiply(cx.dx, cy.dx, out=g.buffer("f0", g.size)))
    # A constant channel leaves only rounding noise in sxx/syy: NaN, not a noisy +-1.
    corr = div(sxy, np.sqrt(cx.sxx * cy.sxx))
    corr[cx.flat | cy.flat] = np.nan
    slope = div(sxy, cx.sxx)
    slope[cx.flat] = np.nan
    has_both, sx, sy, xx, yy, xy, xd, yd = _above_both(g, cx, cy)
    big_r = np.maximum(cx.top, cy.top) + 1.0
    overlap = div(xy, np.sqrt(xx * yy))
    k1, k2 = div(xy, xx), div(xy, yy)
    m1, m2 = div(sx, cx.tot), div(sy, cy.tot)
    # RWC: sum of x * (R - |rank difference|) / R over the pixels above both thresholds
    rwc1 = div(div(big_r * sx - xd, big_r), cx.tot)
    rwc2 = div(div(big_r * sy - yd, big_r), cy.tot)
    result = [corr, slope, overlap, k1, k2, m1, m2, rwc1, rwc2]
    for value in result[2:]:
        value[g.present & ~has_both] = 0.0
    result += list(costes(g, cx, cy, sxy, corr, scale))
    for value in result:
        value[~g.present] = np.nan
    return result
