"""Pixels of one compartment grouped by object, and per-channel statistics shared by every
channel pair of the Correlation family (see :mod:`plateflow.features.correlation`).

Every per-object quantity that depends on one channel only (means, centred values, maxima,
threshold masks, dense ranks, Costes' grid position) is computed once per channel here, so
that a pair costs only its cross terms.
"""

from __future__ import annotations

import numpy as np

from plateflow.features.registry import Objects

__all__ = [
    "ChannelPixels",
    "PixelGroups",
    "costes_key",
    "costes_key_bits",
    "div",
    "row_search",
    "segment_reduce",
]


def div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` without warnings (0/0 = NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def _bits(value: int) -> int:
    return max(1, int(value).bit_length())


class PixelGroups:
    """The compartment's pixels sorted by row (object), with per-row reductions.

    Attributes
    ----------
    pixels : (P,) int64 ndarray
        Flat image index of each pixel, grouped by row.
    rows : (P,) int64 ndarray
        Row of each pixel (non-decreasing).
    n : int
        Number of rows.
    count : (n,) float64 ndarray
        Pixels per row.
    starts : (n,) int64 ndarray
        Index of each row's first pixel.
    """

    def __init__(self, objects: Objects) -> None:
        n = objects.n
        flat = objects.labels.ravel()
        pixels = np.flatnonzero(flat)
        rows = objects.rows(flat[pixels]) if pixels.size else pixels
        keep = rows >= 0
        if not keep.all():
            pixels, rows = pixels[keep], rows[keep]
        if n <= 1 << 16:  # a stable radix sort on 16-bit rows
            order = np.argsort(rows.astype(np.uint16), kind="stable")
        else:
            order = np.argsort(rows, kind="stable")
        self.pixels, self.rows, self.n = pixels[order], rows[order], n
        self.size = int(pixels.size)
        counts = np.bincount(self.rows, minlength=n)
        self.count = counts.astype(np.float64)
        self.present = counts > 0
        self.starts = np.cumsum(counts) - counts
        self.ends = self.starts + counts
        self._at = self.starts[self.present]
        self._all = bool(self.present.all())
        self._packing: dict = {}
        self._buffers: dict = {}

    def buffer(self, name: str, size: int, dtype=np.float64) -> np.ndarray:
        """A scratch array of ``size`` elements, reused by every caller of the same name."""
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(max(size, self.size + 1), dtype)
        return buf[:size]

    def _place(self, values: np.ndarray, fill: float) -> np.ndarray:
        if self._all:
            return values.astype(np.float64, copy=False)
        out = np.full(self.n, fill)
        out[self.present] = values
        return out

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Per-row sum (0 for an empty row)."""
        if self.size == 0:
            return np.zeros(self.n)
        return self._place(np.add.reduceat(values, self._at), 0.0)

    def max(self, values: np.ndarray) -> np.ndarray:
        """Per-row maximum (NaN for an empty row)."""
        if self.size == 0:
            return np.full(self.n, np.nan)
        return self._place(np.maximum.reduceat(values, self._at), np.nan)

    def min(self, values: np.ndarray) -> np.ndarray:
        """Per-row minimum (NaN for an empty row)."""
        if self.size == 0:
            return np.full(self.n, np.nan)
        return self._place(np.minimum.reduceat(values, self._at), np.nan)

    def packing(self, key_bits: int) -> tuple[np.ndarray, int]:
        """``(base, shift)`` to sort pixels by (row, key) as one uint64 array.

        ``base | key << shift`` orders the pixels by row, then key; its low ``shift`` bits are
        the pixel's index (``shift`` is 0, and the order must come from ``argsort``, where
        row, key and index do not fit 64 bits together).
        """
        if key_bits in self._packing:
            return self._packing[key_bits]
        row_bits, index_bits = _bits(self.n - 1), _bits(self.size - 1)
        if row_bits + key_bits + index_bits <= 64:
            shift = index_bits
            base = np.arange(self.size, dtype=np.uint64)
        else:
            shift = 0
            base = np.zeros(self.size, dtype=np.uint64)
        base |= self.rows.astype(np.uint64) << np.uint64(key_bits + shift)
        self._packing[key_bits] = base, shift
        return base, shift


def _value_order(g: PixelGroups, x: np.ndarray, single: bool, low: float, high: float):
    """The pixels sorted by (row, value), in the buffer ``order``. ``single``: the values are
    exact float32; ``low``, ``high``: their range."""
    size = x.size
    order = g.buffer("order", size, np.int64)
    if not single:
        by_value = np.argsort(x)
        small = g.rows.astype(np.uint16 if g.n <= 1 << 16 else np.int64)[by_value]
        order[:] = by_value[np.argsort(small, kind="stable")]
        return order
    # Exact float32 values: sort (row, value bits made monotone, index) as one uint64.
    bits = g.buffer("single", size, np.float32)
    np.add(x, 0.0, out=bits, casting="same_kind")  # float32; -0 -> +0
    bits = bits.view(np.uint32)
    if low >= 0 and high < 2.0:
        value_bits = 30
    else:
        bits = np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(1 << 31))
        value_bits = 32
    base, shift = g.packing(value_bits)
    key = g.buffer("packed", size, np.uint64)
    np.left_shift(bits, np.uint64(shift), out=key)
    key |= base
    if shift:
        key.sort()
        np.bitwise_and(key, np.uint64((1 << shift) - 1), out=order.view(np.uint64))
    else:
        order[:] = np.argsort(key)
    return order


def _dense_rank(g: PixelGroups, order: np.ndarray, values: np.ndarray):
    """0-based dense rank of each pixel's value within its row, and each row's top rank
    (``values``: sorted by ``order``, by row then value)."""
    size = order.size
    cum, start = g.buffer("f1", size), g.buffer("f2", size)
    cum[0] = 0.0
    np.cumsum(np.not_equal(values[1:], values[:-1], out=g.buffer("both", size - 1, bool)),
              out=cum[1:])
    np.take(cum[np.minimum(g.starts, size - 1)], g.rows, out=start, mode="clip")
    cum -= start  # rank in sorted order: the steps since the row's first pixel
    # float32 holds every rank exactly (below 2**24 pixels per object)
    rank = np.empty(size, np.float32 if size < 1 << 24 else np.float64)
    rank[order] = cum
    top = np.zeros(g.n)
    top[g.present] = cum[g.ends[g.present] - 1]
    return rank, top


def segment_reduce(ufunc, values: np.ndarray, first: np.ndarray, count: np.ndarray,
                   empty: float = 0.0) -> np.ndarray:
    """``ufunc`` reduced over the consecutive segments ``values[first:first + count]``
    (``empty`` where a segment is empty)."""
    out = np.full(first.size, empty)
    some = count > 0
    if some.any():
        out[some] = ufunc.reduceat(values, first[some])
    return out


def row_search(g: PixelGroups, values: np.ndarray, rows: np.ndarray,
               target: np.ndarray) -> np.ndarray:
    """Per row of ``rows``, the first index whose value is ``>= target`` in that row.

    ``values`` are sorted within each row (the rows grouped as in ``g``); the row's end where
    none is.
    """
    lo, hi = g.starts[rows], g.ends[rows]
    last = max(values.size - 1, 0)
    for _ in range(64):
        live = lo < hi
        if not live.any():
            break
        mid = (lo + hi) >> 1
        below = values[np.minimum(mid, last)] < target
        lo = np.where(live & below, mid + 1, lo)
        hi = np.where(live & ~below, mid, hi)
    return lo


def costes_key_bits(scale: int) -> int:
    """Bits of a Costes grid position (0..scale)."""
    return _bits(scale)


def costes_key(x: np.ndarray, scale: int) -> np.ndarray:
    """Smallest grid step ``m`` (clipped to 0..scale) with ``x < m / scale`` (exactly)."""
    m = np.floor(x * scale)
    m += 1.0
    np.clip(m, 0.0, float(scale), out=m)
    with np.errstate(invalid="ignore"):
        down = x < (m - 1.0) / scale
        m[down] -= 1.0
        up = ~(x < m / scale)
    m[up] += 1.0
    np.clip(m, 0.0, float(scale), out=m)
    bits = costes_key_bits(scale)
    return m.astype(np.uint16 if bits <= 16 else np.uint32 if bits <= 32 else np.uint64)


class ChannelPixels:
    """One channel's pixels of the compartment and their per-row statistics.

    Attributes
    ----------
    x : (P,) float64 ndarray
        Values, grouped by row as :class:`PixelGroups`.
    dx : (P,) float64 ndarray
        ``x`` minus its row's mean.
    mean, sdx, sxx, max, min : (n,) float64 ndarray
        Row mean, sum of ``dx`` (rounding only), sum of ``dx**2``, maximum, minimum.
    flat : (n,) bool ndarray
        The channel is constant in the row.
    above : (P,) bool ndarray
        ``x >= threshold * max`` of its row.
    tot : (n,) float64 ndarray
        Sum of ``x`` over ``above``.
    rank : (P,) float32 ndarray
        Dense rank within the row (exact); ``top``: (n,) the row's top rank.
    sorted, cum_sorted : (P,) and (P + 1,) ndarray
        Values sorted within each row (float32 where exact), and their cumulative sum (from
        0, float64).
    key : (P,) unsigned ndarray
        Costes grid position (:func:`costes_key` of the whole plane, given).
    zeros : (Z,) int64 ndarray
        Pixels equal to 0; ``minpos``: (n,) the row's smallest positive value, if Z > 0.
    """

    def __init__(self, g: PixelGroups, plane: np.ndarray, key: np.ndarray, thr: float,
                 single: bool) -> None:
        x = np.asarray(plane.ravel()[g.pixels], dtype=np.float64)
        self.x = x
        tmp = g.buffer("f0", x.size)
        self.mean = div(g.sum(x), g.count)
        np.take(self.mean, g.rows, out=tmp, mode="clip")
        self.dx = x - tmp
        self.sdx = g.sum(self.dx)
        self.sxx = g.sum(np.multiply(self.dx, self.dx, out=tmp))
        self.max, self.min = g.max(x), g.min(x)
        self.flat = self.max == self.min
        np.take(thr * self.max, g.rows, out=tmp, mode="clip")
        self.above = x >= tmp
        self.tot = g.sum(np.multiply(x, self.above, out=tmp))
        self.key = key.ravel()[g.pixels]
        self.zeros = np.flatnonzero(x == 0)
        self.minpos = g.min(np.where(x > 0, x, np.inf)) if self.zeros.size else self.min
        if x.size:
            present = g.present
            order = _value_order(g, x, single, self.min[present].min(),
                                 self.max[present].max())
            self.sorted = x[order]
            self.rank, self.top = _dense_rank(g, order, self.sorted)
            if single:
                self.sorted = self.sorted.astype(np.float32)
        else:
            self.rank, self.top, self.sorted = x.copy(), np.zeros(g.n), x.copy()
        self.cum_sorted = np.empty(x.size + 1)
        self.cum_sorted[0] = 0.0
        np.cumsum(self.sorted, out=self.cum_sorted[1:], dtype=np.float64)

    def sum_from(self, g: PixelGroups, rows: np.ndarray, thr: np.ndarray) -> np.ndarray:
        """Per row of ``rows``, the sum of the values ``>= thr``."""
        first = row_search(g, self.sorted, rows, thr)
        return self.cum_sorted[g.ends[rows]] - self.cum_sorted[first]
