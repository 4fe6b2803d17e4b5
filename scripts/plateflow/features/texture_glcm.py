"""Haralick's 13 features of many objects' co-occurrence matrices at once, without the matrices.

Helper of :mod:`plateflow.features.texture` (one direction and scale at a time). Each object's
symmetric matrix ``C + C^T`` is never built: everything it gives comes from three per-object
histograms of the pixel pairs (the levels ``a`` and ``b``: ``p_x``; ``a + b``: ``p_{x+y}``;
``|a - b|``: ``p_{x-y}``) and, for the two features that need the individual cells
(AngularSecondMoment, Entropy), one sort of the packed pair codes ``row << 16 | min << 8 | max``
whose runs are the occupied cells.

With ``P`` pairs (``T = 2P`` counts in the symmetric matrix), integer counts ``c`` of a
histogram that sums to ``S`` have entropy ``log2 S - sum c log2 c / S``; the moments are dot
products of the histograms with ``s``, ``s^2``, ``k^2`` and ``1 / (1 + k^2)``, and
``a b = (s^2 - k^2) / 4``, ``a^2 + b^2 = (s^2 + k^2) / 2`` (``s = a + b``, ``k = |a - b|``).
Every sum of integers is exact in float64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["haralick", "xlogx_table"]


def xlogx_table(top: int) -> np.ndarray:
    """``c log2 c`` for c = 0 .. top (``0 log 0 = 0``): float64, index by a count."""
    table = np.arange(top + 1, dtype=np.float64)
    table[1:] *= np.log2(table[1:])
    return table


def _entropy(total: np.ndarray, xlogx: np.ndarray) -> np.ndarray:
    """``log2 S - sum c log2 c / S`` of counts summing to S; rounding of an exact 0 is 0.

    The smallest non-zero entropy of S counts (S - 1 and 1) is about ``log2(S) / S``, far above
    1e-9 for any object; below it the value is a single occupied bin's rounding noise, which
    would make InfoMeas1 (``/ HX``) arbitrary.
    """
    h = np.log2(total) - xlogx / total
    return np.where(np.abs(h) < 1e-9, 0.0, h)


def _cell_sums(code: np.ndarray, lo: np.ndarray, hi: np.ndarray, n: int, table: np.ndarray):
    """Per row, over the unordered level pairs ``{i, j}`` that occur (``c`` times each):
    ``sum c^2`` (int64) and ``sum c log2 c``.

    One sort of the codes ``row << 16 | i << 8 | j`` (i <= j); each run is one pair ``{i, j}``.
    The rows' runs are contiguous, so they are summed with ``reduceat`` (row by row, the same
    bits whichever other rows are measured).
    """
    codes = lo.astype(code.dtype)
    codes <<= 8
    codes |= hi
    codes |= code
    codes.sort()
    new = np.empty(codes.size, dtype=bool)
    new[:1] = True
    np.not_equal(codes[1:], codes[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    count = np.diff(starts, append=codes.size)
    row_starts = np.arange(n + 1, dtype=codes.dtype) << 16
    # each row's first run: runs before the row's first pair
    bounds = np.searchsorted(starts, np.searchsorted(codes, row_starts))
    occupied = bounds[1:] > bounds[:-1]
    first = bounds[:-1][occupied]
    squares = np.zeros(n, dtype=np.int64)
    logs = np.zeros(n)
    if first.size:
        squares[occupied] = np.add.reduceat(count * count, first)
        logs[occupied] = np.add.reduceat(table[count], first)
    return squares, logs


def _diagonal_squares(base: np.ndarray, qa: np.ndarray, qb: np.ndarray, n: int,
                      levels: int) -> np.ndarray:
    """Per row, ``sum c^2`` over the pairs ``{i, i}`` (``c`` times each), as int64."""
    same = np.flatnonzero(qa == qb)
    counts = np.bincount(base[same] + qa[same], minlength=n * levels).reshape(n, levels)
    return np.einsum("ij,ij->i", counts, counts)


def haralick(base: np.ndarray, code: np.ndarray, qa: np.ndarray, qb: np.ndarray, n: int,
             levels: int, width: np.ndarray, table: np.ndarray) -> list[np.ndarray]:
    """The 13 features (each (n,), NaN for a row without pairs) of one direction.

    Parameters
    ----------
    base : (P,) intp ndarray
        Row of each pixel pair, times ``levels``.
    code : (P,) int32 (int64 from 2**15 rows) ndarray
        Row of each pixel pair, shifted left by 16 bits.
    qa, qb : (P,) uint8 ndarray
        Levels of the pair's two pixels (level 0 is ignored, as mahotas' ``ignore_zeros``).
    n, levels : int
        Number of rows; number of grey levels (<= 256).
    width : (n,) float ndarray
        Each row's highest level + 1 (mahotas' matrix size; DifferenceVariance uses it).
    table : ndarray
        :func:`xlogx_table` up to at least twice the most pairs of a row.
    """
    if qa.size and not (qa.all() and qb.all()):
        keep = (qa > 0) & (qb > 0)
        base, code, qa, qb = base[keep], code[keep], qa[keep], qb[keep]
    lo = np.minimum(qa, qb)
    hi = np.maximum(qa, qb)
    key = np.empty_like(base)  # one buffer for the four histogram keys
    px = np.bincount(np.add(base, qa, out=key), minlength=n * levels)
    px += np.bincount(np.add(base, qb, out=key), minlength=n * levels)
    px = px.reshape(n, levels)
    diff = np.bincount(np.add(base, hi - lo, out=key), minlength=n * levels).reshape(n, levels)
    np.add(base, base, out=key)
    key += qa
    key += qb
    plus = np.bincount(key, minlength=2 * n * levels).reshape(n, 2 * levels)
    # the symmetric matrix C + C^T: a pair {i, j}, i != j, seen c times fills two cells of c;
    # {i, i} one cell of 2c. So sum v^2 = 2 sum c^2 + 2 sum_diag c^2, and sum v log2 v =
    # 2 sum c log2 c + 2 sum_diag c (log2 2c = 1 + log2 c).
    pair_squares, pair_logs = _cell_sums(code, lo, hi, n, table)
    squares = 2.0 * (pair_squares + _diagonal_squares(base, qa, qb, n, levels))
    logs = 2.0 * pair_logs + 2.0 * diff[:, 0]

    k = np.arange(levels, dtype=np.float64)
    px_f = px.astype(np.float64)
    diff_f = diff.astype(np.float64)
    pairs = diff_f.sum(axis=1)
    total = 2.0 * pairs
    # row-wise einsum, not BLAS: no worker threads, and the same bits whichever rows are measured
    sum_s = np.einsum("ij,j->i", px_f, k)  # sum over pairs of a + b
    sum_squares = np.einsum("ij,j->i", px_f, k * k)  # of a^2 + b^2
    sum_k2 = np.einsum("ij,j->i", diff_f, k * k)  # of (a - b)^2
    sum_ab = (sum_squares - sum_k2) / 2.0
    sum_s2 = sum_squares + 2.0 * sum_ab
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = sum_s / total
        vx = sum_squares / total - ux**2
        sx = np.sqrt(vx)
        eij = 2.0 * sum_ab / total
        correlation = np.where(sx == 0, 1.0, (eij - ux * ux) / sx / sx)
        contrast = 2.0 * sum_k2 / total
        idm = np.einsum("ij,j->i", diff_f, 1.0 / (1.0 + k * k)) / pairs
        sum_average = 2.0 * ux
        sum_variance = 2.0 * sum_s2 / total - sum_average**2
        sum_entropy = _entropy(pairs, table[plus].sum(axis=1))
        diff_entropy = _entropy(pairs, table[diff].sum(axis=1))
        hx = _entropy(total, table[px].sum(axis=1))
        # numpy's var of the length-m vector p_{x-y}[:m] (m = width; zeros included)
        diff_sq = np.einsum("ij,ij->i", diff_f, diff_f) / pairs**2
        diff_variance = diff_sq / width - 1.0 / width**2
        asm = squares / total**2
        entropy = _entropy(total, logs)
        # HXY1 = HXY2 = HX + HY = 2 HX (p is symmetric). The mutual information HXY2 - HXY is
        # 0 for an independent p (e.g. two levels, cells 1/4 each), where its rounding noise
        # (~1e-15) would become ~1e-8 through InfoMeas2's square root: below 1e-12 it is 0
        # (on the bench site the smallest true value is ~1e-9, the largest noise ~1e-15).
        hxy2 = 2.0 * hx
        gap = hxy2 - entropy
        gap = np.where(np.abs(gap) < 1e-12 * np.maximum(1.0, hxy2), 0.0, gap)
        info1 = np.where(hx == 0, -gap, -gap / hx)
        info2 = np.sqrt(np.maximum(0.0, 1.0 - np.exp(-2.0 * gap)))
    feats = [asm, contrast, correlation, vx, idm, sum_average, sum_variance, sum_entropy,
             entropy, diff_variance, diff_entropy, info1, info2]
    empty = pairs == 0
    return [np.where(empty, np.nan, f) for f in feats]
