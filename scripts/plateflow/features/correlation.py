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
is constant), where cp_measure returns rounding noise (often +-1) or NaN; an object with no pixel above both
thresholds gets 0 for Overlap, K, Manders and RWC, as in cp_measure and CellProfiler; an
undefined Costes search (fewer than three non-zero pixels, zero covariance, no non-negative
background correlation) gives NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np

from plateflow.features.registry import Images, Objects, register_family

__all__ = ["CORRELATION_DEFAULTS", "correlation"]

#: Options of ``features.Correlation`` (the schema holds the same defaults).
CORRELATION_DEFAULTS = {"threshold": 15, "costes_scale": 65535, "slope": True}

_EPS = np.finfo(np.float64).eps


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
                 defaults=CORRELATION_DEFAULTS, enabled=False)
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
    n = objects.n
    out = {name: np.full(n, np.nan) for name in _columns(images.channels, params)}
    flat = objects.labels.ravel()
    pixels = np.flatnonzero(flat)
    rows = objects.rows(flat[pixels]) if pixels.size else pixels
    keep = rows >= 0
    pixels, rows = pixels[keep], rows[keep]
    if pixels.size == 0:
        return out
    order = np.argsort(rows, kind="stable")
    pixels, rows = pixels[order], rows[order]
    groups = _Groups(rows, n)
    planes = {ch: images.pixels[c].ravel()[pixels].astype(np.float64)
              for c, ch in enumerate(images.channels)}
    ranks = {ch: _dense_rank(groups, plane) for ch, plane in planes.items()}
    thr = float(params["threshold"]) / 100.0
    for a, b in combinations(images.channels, 2):
        values = _pair(groups, planes[a], planes[b], (ranks[a], ranks[b]), thr,
                       int(params["costes_scale"]))
        for name, value in zip(_pair_columns(a, b, True), values, strict=True):
            if name in out:
                out[name] = value
    return out


class _Groups:
    """Pixels grouped by row (sorted): per-row sums and maxima."""

    def __init__(self, rows: np.ndarray, n: int) -> None:
        self.rows, self.n = rows, n
        self.count = np.bincount(rows, minlength=n).astype(np.float64)
        self.present = self.count > 0
        self.starts = (np.cumsum(self.count) - self.count).astype(np.int64)

    def sum(self, weights: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        # Groups are contiguous: reduceat is ~10x faster than bincount (weights are finite).
        out = np.zeros(self.n)
        if self.present.any():
            values = weights if where is None else weights * where
            out[self.present] = np.add.reduceat(values, self.starts[self.present])
        return out

    def max(self, values: np.ndarray) -> np.ndarray:
        out = np.full(self.n, np.nan)
        out[self.present] = np.maximum.reduceat(values, self.starts[self.present])
        return out


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def _pair(g: _Groups, x: np.ndarray, y: np.ndarray, ranks: tuple[np.ndarray, np.ndarray],
          thr: float, scale: int) -> list[np.ndarray]:
    """The 12 measurements of one channel pair (with Slope), NaN for empty rows."""
    rows, count = g.rows, g.count
    mx, my = _div(g.sum(x), count), _div(g.sum(y), count)
    dx, dy = x - mx[rows], y - my[rows]
    sxx, syy, sxy = g.sum(dx * dx), g.sum(dy * dy), g.sum(dx * dy)
    # A constant channel leaves only rounding noise in sxx/syy: NaN, not a noisy +-1.
    flat_x, flat_y = g.max(x) + g.max(-x) == 0, g.max(y) + g.max(-y) == 0
    corr = _div(sxy, np.sqrt(sxx * syy))
    corr[flat_x | flat_y] = np.nan
    slope = _div(sxy, sxx)
    slope[flat_x] = np.nan
    above_x = x >= thr * g.max(x)[rows]
    above_y = y >= thr * g.max(y)[rows]
    both = above_x & above_y
    has_both = g.sum(np.ones_like(x), both) > 0
    tot_x, tot_y = g.sum(x, above_x), g.sum(y, above_y)
    xx, yy, xy = g.sum(x * x, both), g.sum(y * y, both), g.sum(x * y, both)
    overlap = _div(xy, np.sqrt(xx * yy))
    k1, k2 = _div(xy, xx), _div(xy, yy)
    m1, m2 = _div(g.sum(x, both), tot_x), _div(g.sum(y, both), tot_y)
    weight = _rank_weight(g, *ranks)
    rwc1, rwc2 = _div(g.sum(x * weight, both), tot_x), _div(g.sum(y * weight, both), tot_y)
    c1, c2 = _costes(g, x, y, scale)
    result = [corr, slope, overlap, k1, k2, m1, m2, rwc1, rwc2]
    for value in result[2:]:
        value[g.present & ~has_both] = 0.0
    result += [c1, c2]
    for value in result:
        value[~g.present] = np.nan
    return result


def _dense_rank(g: _Groups, values: np.ndarray) -> np.ndarray:
    """0-based dense rank of each pixel's value within its row."""
    by_value = np.argsort(values)  # then a stable (radix) sort by row: lexsort, faster
    small = g.rows.astype(np.uint16 if g.n <= 65536 else np.int64)[by_value]
    order = by_value[np.argsort(small, kind="stable")]
    v, r = values[order], g.rows[order]
    step = np.zeros(v.size, dtype=np.int64)
    step[1:] = (v[1:] != v[:-1]) & (r[1:] == r[:-1])
    cum = np.cumsum(step)
    rank_sorted = cum - cum[g.starts[r]]
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    return rank


def _rank_weight(g: _Groups, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    top = np.zeros(g.n, dtype=np.int64)
    top[g.present] = np.maximum.reduceat(np.maximum(r1, r2), g.starts[g.present])
    big_r = (top + 1).astype(np.float64)[g.rows]
    return (big_r - np.abs(r1 - r2)) / big_r


def _pearson(n, sx, sy, sxx, syy, sxy, constant) -> np.ndarray:
    """Pearson r from (centred) sums; NaN below 3 pixels or for a constant channel."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cxx, cyy, cxy = sxx - sx * sx / n, syy - sy * sy / n, sxy - sx * sy / n
        r = np.clip(cxy / np.sqrt(cxx * cyy), -1.0, 1.0)
    r[(n < 3) | constant | ~(cxx > 0) | ~(cyy > 0)] = np.nan
    return r


class _Masked:
    """Background correlation by masking the pixels of each row (any sign of the slope)."""

    def __init__(self, g: _Groups, x: np.ndarray, y: np.ndarray, a, b, rows_used) -> None:
        use = rows_used[g.rows]
        self.rows, self.n = g.rows[use], g.n
        mean_x, mean_y = g.max(x), g.max(y)  # any per-row shift works: centre near the data
        self.x, self.y = x[use], y[use]
        self.dx, self.dy = self.x - mean_x[self.rows], self.y - mean_y[self.rows]
        self.a, self.b = a, b

    def __call__(self, thr_x: np.ndarray, active: np.ndarray) -> np.ndarray:
        r, x, y, dx, dy = self.rows, self.x, self.y, self.dx, self.dy
        with np.errstate(invalid="ignore", over="ignore"):
            thr_y = self.a * thr_x + self.b
        sel = active[r] & ((x < thr_x[r]) | (y < thr_y[r]))
        rs = r[sel]

        def total(w):
            return np.bincount(rs, weights=w[sel], minlength=self.n)

        count = np.bincount(rs, minlength=self.n).astype(np.float64)
        xs, ys = x[sel], y[sel]
        lo_x, hi_x, lo_y, hi_y = (np.full(self.n, v) for v in (np.inf, -np.inf, np.inf, -np.inf))
        np.minimum.at(lo_x, rs, xs)
        np.maximum.at(hi_x, rs, xs)
        np.minimum.at(lo_y, rs, ys)
        np.maximum.at(hi_y, rs, ys)
        return _pearson(count, total(dx), total(dy), total(dx * dx), total(dy * dy),
                        total(dx * dy), (hi_x <= lo_x) | (hi_y <= lo_y))


class _Prefix:
    """Background correlation for a positive slope, from prefix sums.

    With ``a > 0`` a pixel is in the background set ``x < t or y < a t + b`` exactly when
    ``t > e = min(x, (y - b) / a)``: sorting each row's pixels by ``e`` makes every candidate's
    set a prefix, so each bisection step is a search plus a lookup in cumulative sums.
    """

    def __init__(self, g: _Groups, x: np.ndarray, y: np.ndarray, a, b, rows_used) -> None:
        use = rows_used[g.rows]
        rows, x, y = g.rows[use], x[use], y[use]
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.minimum(x, (y - b[rows]) / a[rows])
        key = 4.0 * rows + np.clip(e, -0.5, 1.5)  # thresholds lie in [0, 1 + 1/scale]
        order = np.argsort(key, kind="stable")
        self.key, rows, x, y = key[order], rows[order], x[order], y[order]
        self.n = g.n
        count = np.bincount(rows, minlength=g.n)
        self.start = np.cumsum(count) - count
        mean_x = _div(np.bincount(rows, x, g.n), count)
        mean_y = _div(np.bincount(rows, y, g.n), count)
        dx, dy = x - mean_x[rows], y - mean_y[rows]
        differs_x = x != x[self.start[rows]]
        differs_y = y != y[self.start[rows]]
        self.cum = [np.concatenate([[0.0], np.cumsum(v, dtype=np.float64)]) for v in
                    (dx, dy, dx * dx, dy * dy, dx * dy, differs_x, differs_y)]

    def __call__(self, thr_x: np.ndarray, active: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(active)
        end = np.searchsorted(self.key, 4.0 * rows + thr_x[rows], side="left")
        begin = self.start[rows]
        sums = [c[end] - c[begin] for c in self.cum]
        r = np.full(self.n, np.nan)
        constant = (sums[5] == 0) | (sums[6] == 0)
        r[rows] = _pearson((end - begin).astype(np.float64), *sums[:5], constant)
        return r


def _costes(g: _Groups, x: np.ndarray, y: np.ndarray, scale: int) -> tuple[np.ndarray, ...]:
    """cp_measure's Costes ("Faster" bisection), for all rows at once."""
    n, rows = g.n, g.rows
    nz = (x > 0) | (y > 0)
    cnt = g.sum(np.ones_like(x), nz)
    mx, my = _div(g.sum(x, nz), cnt), _div(g.sum(y, nz), cnt)
    dx, dy = x - mx[rows], y - my[rows]
    xvar = _div(g.sum(dx * dx, nz), cnt - 1)
    yvar = _div(g.sum(dy * dy, nz), cnt - 1)
    dz = dx + dy
    zvar = _div(g.sum(dz * dz, nz), cnt - 1)
    covar = 0.5 * (zvar - (xvar + yvar))
    a = _div((yvar - xvar) + np.sqrt((yvar - xvar) ** 2 + 4 * covar * covar), 2 * covar)
    b = my - a * mx
    # ptp of the non-zero pixels: per-row max - min.
    big = np.where(nz, x, -np.inf), np.where(nz, y, -np.inf)
    small = np.where(nz, x, np.inf), np.where(nz, y, np.inf)
    ptp_x, ptp_y = g.max(big[0]) + g.max(-small[0]), g.max(big[1]) + g.max(-small[1])
    ok = (g.count >= 3) & (cnt >= 3) & (ptp_x > 0) & (ptp_y > 0)
    with np.errstate(invalid="ignore"):
        ok &= np.abs(covar) > 8 * _EPS * np.maximum(xvar, yvar)
    ok &= np.isfinite(a) & np.isfinite(b)
    positive = ok & (a > 0)
    prefix = _Prefix(g, x, y, a, b, positive)
    masked = _Masked(g, x, y, a, b, ok & ~positive) if (ok & ~positive).any() else None

    # Above an object's brightest first-channel pixel the background is the whole object.
    max_x = g.max(x)
    whole = _Masked(g, x, y, a, b, ok)(np.full(n, np.inf), ok)

    def background_r(thr_x: np.ndarray, active: np.ndarray) -> np.ndarray:
        above = active & (thr_x > max_x)
        r = prefix(thr_x, active & positive & ~above)
        r[above] = whole[above]
        if masked is not None:
            other = active & ~positive & ~above
            if other.any():
                r[other] = masked(thr_x, other)[other]
        return r

    left = np.ones(n)
    right = np.full(n, float(scale))
    mid = np.floor_divide(right - left, 6 / 5) + left
    lastmid = np.zeros(n)
    valid = np.full(n, np.nan)
    active = ok.copy()
    for _ in range(256):
        if not active.any():
            break
        r = background_r(mid / scale, active)
        low = active & ~(r >= 0)  # NaN or negative: move up
        high = active & (r >= 0)
        left[low] = mid[low] - 1
        right[high] = mid[high] + 1
        valid[high] = mid[high]
        lastmid[active] = mid[active]
        divisor = np.where(right - left > 6, 6 / 5, 2.0)
        mid[active] = (np.floor_divide(right - left, divisor) + left)[active]
        active &= lastmid != mid
    ok &= ~active & np.isfinite(valid)
    thr_x = (valid - 1) / scale
    thr_y = a * thr_x + b
    ok &= np.isfinite(background_r(thr_x, ok))
    ax, ay = x > thr_x[rows], y > thr_y[rows]
    tot_x = g.sum(x, ok[rows] & (x >= thr_x[rows]))
    tot_y = g.sum(y, ok[rows] & (y >= thr_y[rows]))
    ok &= (tot_x > 0) & (tot_y > 0)
    both = ok[rows] & ax & ay
    c1, c2 = _div(g.sum(x, both), tot_x), _div(g.sum(y, both), tot_y)
    c1[~ok] = np.nan
    c2[~ok] = np.nan
    return c1, c2
