"""Zernike shape moments of all objects at once, as cp_measure 0.3.0 (and CellProfiler) compute.

cp_measure maps each object's pixels into the unit disk of its minimum enclosing circle
(centre ``(cy, cx)``, radius ``R``; :func:`~plateflow.features.shape_hull.enclosing_circles`):
``y = (row - cy) / R``, ``x = (col - cx) / R``, and for every (n, m) with n <= degree and
n - m even, sums ``V_nm = R_nm(|z|) * (z / |z|)**m`` with ``z = y + i x`` over the pixels with
``x**2 + y**2 <= 1``; ``Zernike_n_m = |sum| / (pi R**2)``.

``V_nm`` is a polynomial of degree n in x and y, so every sum is a fixed combination of the
moments ``sum x**a y**b`` (a + b <= degree). Those are summed run by run in closed form (the
power sums of a run of consecutive columns), never pixel by pixel. Pixels exactly on the circle
may fall outside it by rounding in cp_measure: they are a run's first or last pixel, so the
same test is repeated on the run ends, and those that fail are subtracted.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb, factorial

import numpy as np

__all__ = ["zernike_indexes", "zernike_moments"]


def zernike_indexes(degree: int) -> list[tuple[int, int]]:
    """(n, m) pairs in centrosome's order: n = 0..degree, m = n % 2, n % 2 + 2, ..., n."""
    return [(n, m) for n in range(degree + 1) for m in range(n % 2, n + 1, 2)]


def _polymul(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Product of two polynomials in x and y stored as ``coef[a, b]`` of ``x**a y**b``."""
    out = np.zeros((p.shape[0] + q.shape[0] - 1, p.shape[1] + q.shape[1] - 1), complex)
    for (a, b), c in np.ndenumerate(p):
        if c:
            out[a:a + q.shape[0], b:b + q.shape[1]] += c * q
    return out


@lru_cache(maxsize=8)
def _basis(degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary coefficients of every ``V_nm`` on the monomials ``x**a y**b``.

    Returns
    -------
    (K, D + 1, D + 1) float64 ndarrays, D = degree, K = number of (n, m).
    """
    r2 = np.zeros((3, 3), complex)
    r2[2, 0] = r2[0, 2] = 1
    z = np.zeros((2, 2), complex)
    z[0, 1], z[1, 0] = 1, 1j  # z = y + i x
    out = np.zeros((len(zernike_indexes(degree)), degree + 1, degree + 1), complex)
    for idx, (n, m) in enumerate(zernike_indexes(degree)):
        radial = np.zeros((1, 1), complex)  # R_nm / rho**m as a polynomial in r2 (Horner)
        half = (n - m) // 2
        for k in range(half + 1):
            c = (-1) ** k * factorial(n - k) / (
                factorial(k) * factorial((n + m) // 2 - k) * factorial(half - k))
            radial = _polymul(radial, r2) if k else radial
            radial[0, 0] += c
        poly = radial
        for _ in range(m):
            poly = _polymul(poly, z)
        out[idx, : poly.shape[0], : poly.shape[1]] = poly
    return out.real.copy(), out.imag.copy()


@lru_cache(maxsize=8)
def _centred_power_sums(length: int, degree: int) -> np.ndarray:
    """``T[n, j] = sum_{k=0}^{n-1} (k - (n - 1) / 2)**j`` for n <= length, j <= degree."""
    t = np.zeros((length + 1, degree + 1))
    i = np.arange(1, length // 2 + 2, dtype=np.float64)
    for j in range(0, degree + 1, 2):
        whole = np.concatenate([[0.0], np.cumsum(i**j)])  # sum of i**j, i = 1..K
        half = np.concatenate([[0.0], np.cumsum(((2 * i - 1) / 2) ** j)])
        n = np.arange(length + 1)
        odd = n % 2 == 1
        t[odd, j] = 2 * whole[(n[odd] - 1) // 2] + (j == 0)
        t[~odd, j] = 2 * half[n[~odd] // 2]
    return t


def zernike_moments(runs, centres: np.ndarray, radii: np.ndarray, degree: int) -> np.ndarray:
    """cp_measure's ``Zernike_n_m`` of every object.

    Parameters
    ----------
    runs : Runs
        The objects' row runs (:class:`~plateflow.features.shape_runs.Runs`).
    centres : (M, 2) float64 ndarray
        (row, column) of each object's enclosing circle.
    radii : (M,) float64 ndarray
        Its radius (0 for a single pixel, whose moments are NaN, as in cp_measure).
    degree : int
        Largest n.

    Returns
    -------
    (M, K) float64 ndarray, columns in :func:`zernike_indexes` order.
    """
    real, imag = _basis(degree)
    d1 = degree + 1
    o = runs.obj
    with np.errstate(divide="ignore", invalid="ignore"):
        h = (1.0 / radii)[o]
        cy, cx = centres[o, 0], centres[o, 1]
        n = runs.length
        tsum = _centred_power_sums(1 << int(n.max()).bit_length(), degree)[n].T  # (D + 1, R)
        u = ((runs.c0 + runs.c1) / 2 - cx) * h  # the run's middle
        y = (runs.row - cy) * h
        upow, ypow, th = _powers(u, d1), _powers(y, d1), _powers(h, d1)
        th *= tsum  # h**j * sum over the run of (k - (n - 1) / 2)**j
        xsum = np.zeros((d1, o.size))  # sum over the run of x**a
        for a in range(d1):
            for j in range(0, a + 1, 2):
                xsum[a] += comb(a, j) * upow[a - j] * th[j]
        mom = np.zeros((runs.m, d1, d1))  # mom[:, a, b] = sum of x**a y**b
        for b in range(d1):
            mom[:, : d1 - b, b] = np.add.reduceat(xsum[: d1 - b] * ypow[b], runs.first, axis=1).T
        # pixels on the circle that cp_measure's arithmetic puts outside it
        ym = (runs.row - cy) / radii[o]
        for end, other in ((runs.c0, None), (runs.c1, runs.c0)):
            xm = (end - cx) / radii[o]
            out = xm * xm + ym * ym > 1
            if other is not None:
                out &= end != other
            i = np.flatnonzero(out)
            if i.size:
                xp, yp = _powers(xm[i], d1), _powers(ym[i], d1)
                np.subtract.at(mom, o[i], np.einsum("ae,be->eab", xp, yp))
        # einsum, not matmul: a BLAS call would wake OpenBLAS's threads, whose spinning
        # costs more CPU time than this small product
        re = np.einsum("mab,kab->mk", mom, real)
        im = np.einsum("mab,kab->mk", mom, imag)
        score = np.sqrt(re * re + im * im) / (np.pi * radii * radii)[:, None]
    score[radii == 0] = np.nan
    return score


def _powers(v: np.ndarray, count: int) -> np.ndarray:
    """(count, len(v)) ndarray of v**0 .. v**(count - 1)."""
    out = np.empty((count, v.size))
    out[0] = 1.0
    for k in range(1, count):
        np.multiply(out[k - 1], v, out=out[k])
    return out
