"""Costes' automatic thresholds and Manders coefficients for every object at once
(cp_measure's "Faster" bisection; see :mod:`plateflow.features.correlation`).

Per object, the regression ``y = a x + b`` over the pixels where either channel is non-zero
gives a line; the bisection looks, on the grid ``k / scale``, for the lowest ``t`` where the
"background" pixels ``x < t or y < a t + b`` still correlate (Pearson ``>= 0``).

With ``a > 0`` a pixel belongs to the background of ``t = k / scale`` exactly when ``k >=
key``, ``key = min(kx, ky)`` its first grid step above ``x`` or above the line: sorting each
object's pixels by ``key`` once makes every candidate's background a prefix, so a bisection
step is one binary search plus lookups in cumulative sums, and only the sign of the
background covariance is needed. Objects with ``a < 0`` are anticorrelated: their candidates
above the brightest pixel see the whole object (negative, so the search goes up and fails, as
in cp_measure); the few with a pixel above a candidate are evaluated by masking their pixels.
"""

from __future__ import annotations

import numpy as np

from plateflow.features.correlation_pixels import (
    ChannelPixels,
    PixelGroups,
    costes_key_bits,
    segment_reduce,
)

__all__ = ["costes"]

_EPS = np.finfo(np.float64).eps


def _varies(g: PixelGroups, c: ChannelPixels, other: ChannelPixels) -> np.ndarray:
    """Whether ``c`` takes two values over the row's pixels where either channel is non-zero."""
    varies = ~c.flat
    if c.zeros.size:
        rows = g.rows[c.zeros]
        with_zero = np.bincount(rows, minlength=g.n) > 0
        zero_with_other = np.bincount(rows[other.x[c.zeros] > 0], minlength=g.n) > 0
        varies = np.where(with_zero, (c.max > 0) & (zero_with_other | (c.minpos < c.max)),
                          varies)
    return varies


def _regression(g: PixelGroups, cx: ChannelPixels, cy: ChannelPixels, sxy: np.ndarray):
    """cp_measure's Costes line ``(a, b)`` and where the search is defined."""
    zeros = np.zeros(g.n)
    if cx.zeros.size and cy.zeros.size:
        both = cx.zeros[cy.x[cx.zeros] == 0]
        zeros = np.bincount(g.rows[both], minlength=g.n).astype(np.float64)
    count = g.count - zeros  # pixels where either channel is non-zero
    # Sums over those pixels, centred on the rows' means (a zero pixel has dx = -mean).
    sx, sy = cx.sdx + zeros * cx.mean, cy.sdx + zeros * cy.mean
    sxx = cx.sxx - zeros * cx.mean ** 2
    syy = cy.sxx - zeros * cy.mean ** 2
    sxy = sxy - zeros * cx.mean * cy.mean
    with np.errstate(divide="ignore", invalid="ignore"):
        xvar = (sxx - sx * sx / count) / (count - 1)
        yvar = (syy - sy * sy / count) / (count - 1)
        covar = (sxy - sx * sy / count) / (count - 1)
        a = ((yvar - xvar) + np.sqrt((yvar - xvar) ** 2 + 4 * covar * covar)) / (2 * covar)
        b = (cy.mean + sy / count) - a * (cx.mean + sx / count)
        ok = (g.count >= 3) & (count >= 3) & _varies(g, cx, cy) & _varies(g, cy, cx)
        ok &= np.abs(covar) > 8 * _EPS * np.maximum(xvar, yvar)
    ok &= np.isfinite(a) & np.isfinite(b)
    return a, b, ok


def _leading_run(starts: np.ndarray, ends: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per row (``v[starts:ends]``), how many of its first values are equal (so a prefix that
    long is constant)."""
    run = np.minimum(ends - starts, 1)
    first = v[np.minimum(starts, max(v.size - 1, 0))]
    live = run > 0
    for k in range(1, 4):  # a run of 4 or more is rare: finish those rows one by one
        live &= starts + k < ends
        live[live] = v[starts[live] + k] == first[live]
        run += live
    for i in np.flatnonzero(live):
        change = np.flatnonzero(v[starts[i]:ends[i]] != first[i])
        run[i] = change[0] if change.size else ends[i] - starts[i]
    return run


class _Prefix:
    """Background of rows with ``a > 0``: prefixes of the pixels sorted by grid key."""

    def __init__(self, g: PixelGroups, cx: ChannelPixels, cy: ChannelPixels, a, b,
                 use: np.ndarray, scale: int) -> None:
        self.g, self.cx, self.cy = g, cx, cy
        bits = costes_key_bits(scale)
        base, shift = g.packing(bits)
        count = np.where(use, g.ends - g.starts, 0)
        y, kx, rows, pixels = cy.x, cx.key, g.rows, None
        self.starts, self.ends = g.starts, g.ends
        if count.sum() < 0.75 * g.size:  # only the rows searched here
            pixels = _pixels_of(g, np.flatnonzero(use))
            y, kx, rows, base = y[pixels], kx[pixels], rows[pixels], base[pixels]
            self.ends = np.cumsum(count)
            self.starts = self.ends - count
        # ky = floor((y - b) scale / a) + 1 = floor((y - (b - a / scale)) scale / a), clipped
        # to 0..scale: y < a k / scale + b exactly when k >= ky
        size = y.size
        t, u = g.buffer("f0", size), g.buffer("f1", size)
        a = np.where(use, a, 1.0)
        np.take(np.where(use, b - a / scale, 0.0), rows, out=u, mode="clip")
        np.subtract(y, u, out=t)
        np.take(scale / a, rows, out=u, mode="clip")
        t *= u
        del rows
        np.clip(t, 0.0, float(scale), out=t)
        key = g.buffer("key", size, kx.dtype)
        np.copyto(key, t, casting="unsafe")  # >= 0: the cast floors
        np.minimum(key, kx, out=key)
        packed = g.buffer("packed", size, np.uint64)
        np.left_shift(key, np.uint64(shift), out=packed)
        packed |= base
        order = g.buffer("order", size, np.int64)
        if shift:
            packed.sort()
            np.bitwise_and(packed, np.uint64((1 << shift) - 1), out=order.view(np.uint64))
        else:
            order[:] = np.argsort(packed)
            packed[:] = packed[order]
            if pixels is not None:
                order[:] = pixels[order]
        self.sorted, self.order = packed, order  # order: the pixels' indices in g
        self.row_shift, self.shift = bits + shift, shift
        dx, dy = t, u
        np.take(cx.dx, order, out=dx, mode="clip")
        np.take(cy.dx, order, out=dy, mode="clip")
        self.run = np.maximum(_leading_run(self.starts, self.ends, dx),
                              _leading_run(self.starts, self.ends, dy))
        # cumulative sums (from 0) of dx, dy and dx dy, one row each
        self.cum = g.buffer("cum", 3 * (size + 1)).reshape(3, size + 1)
        self.cum[:, 0] = 0.0
        np.cumsum(dx, out=self.cum[0, 1:])
        np.cumsum(dy, out=self.cum[1, 1:])
        np.cumsum(np.multiply(dx, dy, out=dx), out=self.cum[2, 1:])

    def end(self, mid: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Per row, the end of its background at ``mid / scale`` (pixels with key <= mid)."""
        query = (mid + 1.0).astype(np.uint64) << np.uint64(self.shift)
        query |= rows.astype(np.uint64) << np.uint64(self.row_shift)
        return np.searchsorted(self.sorted, query)

    def start(self, rows: np.ndarray) -> dict:
        """Per-row state of the search on ``rows``."""
        begin = self.starts[rows]
        # query of step k: (row << row_shift) + (k + 1 << shift), in float64 where exact
        query = rows.astype(np.uint64) << np.uint64(self.row_shift)
        if int(rows.max(initial=0)).bit_length() + self.row_shift <= 52:
            query = query.astype(np.float64)
        state = {"query": query, "begin": begin, "need": np.maximum(self.run[rows], 2)}
        state["sums"] = self.cum[:, begin]
        return state

    def high(self, state: dict, mid: np.ndarray) -> np.ndarray:
        """Whether the background at ``mid / scale`` correlates (r >= 0, so defined)."""
        if state["query"].dtype == np.float64:
            query = mid * float(1 << self.shift)
            query += state["query"] + float(1 << self.shift)
            query = query.astype(np.uint64)
        else:
            query = (mid + 1.0).astype(np.uint64) << np.uint64(self.shift)
            query |= state["query"]
        end = np.searchsorted(self.sorted, query)
        sx, sy, sxy = self.cum[:, end] - state["sums"]
        m = end - state["begin"]
        sxy *= m  # m * covariance sum: the sign of r
        sxy -= sx * sy
        return (m > state["need"]) & (sxy >= 0)

    def defined(self, mid: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether the background at ``mid / scale`` has a Pearson r, and its end."""
        end = self.end(mid, rows)
        m = end - self.starts[rows]
        return (m >= 3) & (m > self.run[rows]), end

    def finish(self, valid: np.ndarray, rows: np.ndarray, thr_x, thr_y):
        """Sums of x and of y over ``x > thr_x and y > thr_y`` (rows: defined at valid - 1)."""
        _, lo = self.defined(valid - 1.0, rows)  # keys < valid: background, not counted
        hi = self.end(valid, rows)  # keys > valid: above both thresholds
        end = self.ends[rows]
        out = []
        for c, cum in ((self.cx, self.cum[0]), (self.cy, self.cum[1])):
            out.append(cum[end] - cum[hi] + (end - hi) * c.mean[rows])
        # keys == valid: check exactly (a pixel equal to a threshold is not above it)
        count = hi - lo
        if count.sum():
            rep = np.repeat(np.arange(rows.size), count)
            pos = np.arange(rep.size) - np.repeat(np.cumsum(count) - count, count) + lo[rep]
            pix = self.order[pos]
            x, y = self.cx.x[pix], self.cy.x[pix]
            above = (x > thr_x[rep]) & (y > thr_y[rep])
            out[0] += np.bincount(rep, x * above, rows.size)
            out[1] += np.bincount(rep, y * above, rows.size)
        return out


def _bisect(search, rows: np.ndarray, scale: int) -> np.ndarray:
    """cp_measure's bisection for ``rows``: the last accepted step (NaN: none)."""
    found = np.full(rows.size, np.nan)
    state = search.start(rows)
    state["index"] = np.arange(rows.size)
    left = np.ones(rows.size)
    right = np.full(rows.size, float(scale))
    mid = np.floor_divide(right - left, 6 / 5) + left
    valid = np.full(rows.size, np.nan)
    for _ in range(256):
        up = search.high(state, mid)
        left = np.where(up, left, mid - 1)
        right = np.where(up, mid + 1, right)
        valid = np.where(up, mid, valid)
        width = right - left
        step = np.floor_divide(width, np.where(width > 6, 6 / 5, 2.0))
        step += left
        done = step == mid
        mid = step
        if done.any():
            found[state["index"][done]] = valid[done]
            keep = ~done
            if not keep.any():
                break
            left, right, mid, valid = left[keep], right[keep], mid[keep], valid[keep]
            state = {name: v[..., keep] for name, v in state.items()}
    return found  # rows still searching after 256 steps stay NaN, as in cp_measure


def _pixels_of(g: PixelGroups, rows: np.ndarray) -> np.ndarray:
    """Indices of the pixels of ``rows`` (grouped)."""
    count = g.ends[rows] - g.starts[rows]
    shift = np.repeat(g.starts[rows] - (np.cumsum(count) - count), count)
    return np.arange(shift.size) + shift


class _Masked:
    """Background of the rows with ``a < 0``, by masking their pixels at each step."""

    def __init__(self, g, cx, cy, a, b, whole, scale) -> None:
        self.g, self.cx, self.cy, self.a, self.b = g, cx, cy, a, b
        self.whole, self.scale = whole, scale

    def r(self, thr: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Background covariance (its sign is r's; NaN: undefined) of ``rows`` at ``thr``."""
        out = self.whole[rows].copy()  # above every pixel: the whole object
        part = thr <= self.cx.max[rows]
        if part.any():
            sub, t = rows[part], thr[part]
            pix = _pixels_of(self.g, sub)
            count = self.g.ends[sub] - self.g.starts[sub]
            local = np.repeat(np.arange(sub.size), count)
            x, y = self.cx.x[pix], self.cy.x[pix]
            with np.errstate(invalid="ignore", over="ignore"):
                sel = (x < t[local]) | (y < (self.a[sub] * t + self.b[sub])[local])
            m = np.bincount(local[sel], minlength=sub.size)
            at = np.cumsum(m) - m
            x, y, pix = x[sel], y[sel], pix[sel]
            dx, dy = self.cx.dx[pix], self.cy.dx[pix]
            sums = [segment_reduce(np.add, v, at, m, 0.0) for v in (dx, dy, dx * dy)]
            flat = [segment_reduce(np.maximum, v, at, m, -np.inf)
                    <= segment_reduce(np.minimum, v, at, m, np.inf) for v in (x, y)]
            with np.errstate(divide="ignore", invalid="ignore"):
                cov = sums[2] - sums[0] * sums[1] / m
            out[part] = np.where((m < 3) | flat[0] | flat[1], np.nan, cov)
        return out

    def start(self, rows: np.ndarray) -> dict:
        return {"rows": rows}

    def high(self, state: dict, mid: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return self.r(mid / self.scale, state["rows"]) >= 0

    def finish(self, rows, thr_x, thr_y):
        pix = _pixels_of(self.g, rows)
        local = np.repeat(np.arange(rows.size), self.g.ends[rows] - self.g.starts[rows])
        x, y = self.cx.x[pix], self.cy.x[pix]
        above = (x > thr_x[local]) & (y > thr_y[local])
        return [np.bincount(local, x * above, rows.size), np.bincount(local, y * above, rows.size)]


def costes(g: PixelGroups, cx: ChannelPixels, cy: ChannelPixels, sxy: np.ndarray,
           whole: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Costes_A_B and Costes_B_A of every row (NaN where cp_measure's search is undefined).

    Parameters
    ----------
    g : PixelGroups
    cx, cy : ChannelPixels
        The pair's first and second channel.
    sxy : (n,) float64 ndarray
        Per row, the sum of ``cx.dx * cy.dx``.
    whole : (n,) float64 ndarray
        Pearson's r over all the row's pixels (NaN for a constant channel).
    scale : int
        The threshold grid ``k / scale``.
    """
    a, b, ok = _regression(g, cx, cy, sxy)
    c1, c2 = np.full(g.n, np.nan), np.full(g.n, np.nan)
    for positive in (True, False):
        rows = np.flatnonzero(ok & ((a > 0) == positive))
        if rows.size == 0:
            continue
        if positive:
            search = _Prefix(g, cx, cy, a, b, ok & (a > 0), scale)
        else:
            search = _Masked(g, cx, cy, a, b, whole, scale)
        valid = _bisect(search, rows, scale)
        rows, valid = rows[np.isfinite(valid)], valid[np.isfinite(valid)]
        # cp_measure's final check: the chosen background must have a Pearson r
        if positive:
            defined, _ = search.defined(valid - 1.0, rows)
        else:
            defined = np.isfinite(search.r((valid - 1.0) / scale, rows))
        rows, valid = rows[defined], valid[defined]
        thr_x = (valid - 1.0) / scale
        thr_y = a[rows] * thr_x + b[rows]
        if positive:
            sum_x, sum_y = search.finish(valid, rows, thr_x, thr_y)
        else:
            sum_x, sum_y = search.finish(rows, thr_x, thr_y)
        tot_x = cx.sum_from(g, rows, thr_x)
        tot_y = cy.sum_from(g, rows, thr_y)
        good = (tot_x > 0) & (tot_y > 0)
        c1[rows[good]] = sum_x[good] / tot_x[good]
        c2[rows[good]] = sum_y[good] / tot_y[good]
    return c1, c2
