"""Convex hulls of all objects at once: ConvexArea, Feret diameters, minimum enclosing circle.

The hull of an object is found from the leftmost and rightmost pixel of each of its rows: the
right side of the hull is the concave majorant of the rightmost columns (as a function of the
row), the left side the convex minorant of the leftmost ones. Both are found for all objects
together by deleting, round after round, every point that is not a strict turn between its
neighbours (exact integer cross products).

- :func:`convex_areas`: scikit-image 0.26's ``area_convex`` (pixel centres inside or on the hull
  of the pixels' edge midpoints, its ``convex_hull_image``), counted row by row.
- :func:`pixel_hulls`: the hull of the pixel centres, with the vertices in the order of
  centrosome's ``convex_hull_ijv`` (cp_measure's Feret diameters and Zernike circle use it).
- :func:`feret_diameters`: minimum and maximum caliper width of those hulls.
- :func:`enclosing_circles`: centrosome's minimum enclosing circle (Chrystal's algorithm,
  vectorised the same way), which normalises the Zernike moments; its arithmetic is repeated
  step for step, so that pixels on the circle fall inside or outside it as in cp_measure.
"""

from __future__ import annotations

import numpy as np

__all__ = ["convex_areas", "enclosing_circles", "feret_diameters", "pixel_hulls"]


def _chain(obj: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Indices of the vertices of the concave majorant of ``x(y)``, per object.

    Points are sorted by object, then by strictly increasing ``y``; coordinates are integers.
    Points on or below the segment joining their neighbours are deleted until none is left;
    the first and last point of each object stay.
    """
    idx = np.arange(obj.size)
    while idx.size > 2:
        o, yy, xx = obj[idx], y[idx], x[idx]
        inner = np.flatnonzero((o[1:-1] == o[:-2]) & (o[1:-1] == o[2:])) + 1
        lhs = (xx[inner] - xx[inner - 1]) * (yy[inner + 1] - yy[inner - 1])
        rhs = (xx[inner + 1] - xx[inner - 1]) * (yy[inner] - yy[inner - 1])
        drop = inner[lhs <= rhs]
        if drop.size == 0:
            break
        keep = np.ones(idx.size, bool)
        keep[drop] = False
        idx = idx[keep]
    return idx


def _segment_floor(obj, vy, vx, qobj, qy, *, ceil: bool) -> np.ndarray:
    """floor (or ceil) of x/2 on the polyline (vy, vx) of each object at heights ``qy``."""
    span = int(max(vy.max(), qy.max()) - min(vy.min(), qy.min())) + 2
    base = min(vy.min(), qy.min())
    keys = obj * span + (vy - base)
    pos = np.searchsorted(keys, qobj * span + (qy - base), side="right") - 1
    last = np.append(obj[1:] != obj[:-1], True)
    pos -= last[pos]  # a query at an object's last vertex uses the segment that ends there
    ya, xa, yb, xb = vy[pos], vx[pos], vy[pos + 1], vx[pos + 1]
    num = xa * (yb - ya) + (xb - xa) * (qy - ya)
    den = 2 * (yb - ya)
    return -((-num) // den) if ceil else num // den


def convex_areas(obj: np.ndarray, row: np.ndarray, left: np.ndarray, right: np.ndarray,
                 top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """scikit-image's ``area_convex`` of every object.

    The hull is that of the 4 edge midpoints of every pixel, ``(r +- 1/2, c)`` and
    ``(r, c +- 1/2)``; the area is the number of pixel centres inside or on it. Coordinates are
    doubled to stay integer.

    Parameters
    ----------
    obj, row, left, right : (G,) int64 ndarray
        Per (object, row) with pixels (sorted by object, then row): leftmost and rightmost
        column.
    top, bottom : (M,) int64 ndarray
        First and last row of each object.

    Returns
    -------
    (M,) int64 ndarray
    """
    g = obj.size
    oo = np.repeat(obj, 3)
    yy = (2 * row[:, None] + np.array([-1, 0, 1])).ravel()
    sides = []
    for edge, sign in ((right, 1), (left, -1)):
        xx = (2 * sign * edge[:, None] + np.array([0, 1, 0])).ravel()
        # rows r and r + 1 both give a point at height 2r + 1: keep the outer one.
        dup = np.flatnonzero((oo[1:] == oo[:-1]) & (yy[1:] == yy[:-1]))
        xx[dup + 1] = np.maximum(xx[dup], xx[dup + 1])
        keep = np.ones(3 * g, bool)
        keep[dup] = False
        o, y, x = oo[keep], yy[keep], xx[keep]
        v = _chain(o, y, x)
        sides.append((o[v], y[v], sign * x[v]))
    heights = bottom - top + 1
    qobj = np.repeat(np.arange(top.size), heights)
    qy = 2 * (np.repeat(top, heights) + np.arange(qobj.size)
              - np.repeat(np.cumsum(heights) - heights, heights))
    hi = _segment_floor(*sides[0], qobj, qy, ceil=False)
    lo = _segment_floor(*sides[1], qobj, qy, ceil=True)
    return np.bincount(qobj, weights=hi - lo + 1, minlength=top.size).astype(np.int64)


def pixel_hulls(obj: np.ndarray, row: np.ndarray, left: np.ndarray, right: np.ndarray,
                m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The convex hull of every object's pixel centres, ordered as centrosome orders it.

    Strict vertices only; per object the first vertex is the leftmost (then topmost) one and
    the others follow by increasing ``atan2(row - rc, col - cc)`` about the hull's centre.

    Parameters
    ----------
    obj, row, left, right : (G,) int64 ndarray
        Per (object, row) with pixels, as in :func:`convex_areas`.
    m : int
        Number of objects.

    Returns
    -------
    vobj, vrow, vcol : (V,) int64 ndarray
        The vertices, grouped by object.
    count : (m,) int64 ndarray
        Vertices per object (1 for a single pixel, 2 for a line).
    """
    r_idx = _chain(obj, row, right)
    l_idx = _chain(obj, row, -left)
    vobj = np.concatenate([obj[r_idx], obj[l_idx]])
    vrow = np.concatenate([row[r_idx], row[l_idx]])
    vcol = np.concatenate([right[r_idx], left[l_idx]])
    order = np.lexsort((vcol, vrow, vobj))
    vobj, vrow, vcol = vobj[order], vrow[order], vcol[order]
    fresh = np.ones(vobj.size, bool)
    fresh[1:] = (vobj[1:] != vobj[:-1]) | (vrow[1:] != vrow[:-1]) | (vcol[1:] != vcol[:-1])
    vobj, vrow, vcol = vobj[fresh], vrow[fresh], vcol[fresh]
    count = np.bincount(vobj, minlength=m)
    # Angular order about the mean vertex, starting at the leftmost-then-topmost vertex.
    centre_r = np.bincount(vobj, weights=vrow, minlength=m) / np.maximum(count, 1)
    centre_c = np.bincount(vobj, weights=vcol, minlength=m) / np.maximum(count, 1)
    angle = np.arctan2(vrow - centre_r[vobj], vcol - centre_c[vobj])
    order = np.lexsort((angle, vobj))
    vobj, vrow, vcol = vobj[order], vrow[order], vcol[order]
    first = np.cumsum(count) - count
    within = np.arange(vobj.size) - first[vobj]
    key = vcol * (int(vrow.max(initial=0)) + 1) + vrow
    start_key = np.full(m, np.iinfo(np.int64).max)
    np.minimum.at(start_key, vobj, key)
    start = np.zeros(m, np.int64)
    start[vobj[key == start_key[vobj]]] = within[key == start_key[vobj]]
    rotated = first[vobj] + (within - start[vobj]) % count[vobj]
    out = np.empty(vobj.size, np.int64)
    out[rotated] = np.arange(vobj.size)
    return vobj[out], vrow[out], vcol[out], count


def _pairs(count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (i, j) of vertices of the same object (flat vertex indices)."""
    first = np.cumsum(count) - count
    per_vertex = np.repeat(count, count)
    i = np.repeat(np.arange(per_vertex.size), per_vertex)
    j = np.repeat(np.repeat(first, count), per_vertex) + (
        np.arange(i.size) - np.repeat(np.cumsum(per_vertex) - per_vertex, per_vertex))
    return i, j


def feret_diameters(vrow: np.ndarray, vcol: np.ndarray, count: np.ndarray, *,
                    chunk: int = 1 << 21) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum Feret diameter of every hull (pixel-centre distances).

    Maximum: the largest distance between two vertices. Minimum: the smallest, over the hull's
    edges, of the largest distance of a vertex to the edge's line (0 for a point or a line).
    All vertex pairs of an object are compared, ``chunk`` pairs at most at a time.

    Returns
    -------
    min_feret, max_feret : (M,) float64 ndarray
    """
    m = count.size
    first = np.cumsum(count) - count
    min_feret, max_feret = np.zeros(m), np.zeros(m)
    pairs = np.cumsum(count * count)
    lo = 0
    while lo < m:
        hi = max(int(np.searchsorted(pairs, pairs[lo] - count[lo] ** 2 + chunk, "right")), lo + 1)
        sl = slice(first[lo], first[hi - 1] + count[hi - 1])
        min_feret[lo:hi], max_feret[lo:hi] = _feret(vrow[sl], vcol[sl], count[lo:hi])
        lo = hi
    min_feret[count < 3] = 0.0
    return min_feret, max_feret


def _feret(vrow: np.ndarray, vcol: np.ndarray, count: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`feret_diameters` of consecutive objects."""
    i, j = _pairs(count)
    dr, dc = vrow[j] - vrow[i], vcol[j] - vcol[i]
    pair_first = np.cumsum(count * count) - count * count
    max_feret = np.sqrt(np.maximum.reduceat(dr * dr + dc * dc, pair_first).astype(np.float64))
    first = np.cumsum(count) - count
    vobj = np.repeat(np.arange(count.size), count)
    nxt = first[vobj] + (np.arange(vobj.size) - first[vobj] + 1) % count[vobj]
    er, ec = (vrow[nxt] - vrow)[i], (vcol[nxt] - vcol)[i]
    cross = (er * dc - ec * dr).astype(np.float64)
    edge_len = (er * er + ec * ec).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(edge_len > 0, cross * cross / edge_len, 0.0)
    per_vertex = np.repeat(count, count)
    width = np.maximum.reduceat(dist, np.cumsum(per_vertex) - per_vertex)  # per edge
    return np.sqrt(np.minimum.reduceat(width, first)), max_feret


def enclosing_circles(vrow: np.ndarray, vcol: np.ndarray, count: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """centrosome's minimum enclosing circle of every hull (as cp_measure's Zernike uses it).

    Chrystal's algorithm as centrosome runs it: start with the side S0-S1 made by the first two
    hull vertices; take the vertex V that sees S0-S1 under the smallest angle; stop if that angle
    is obtuse (circle on S0-S1) or if the triangle S0-S1-V is acute or right (its
    circumcircle); else replace the end of S0-S1 with the obtuse angle by V and repeat.

    Returns
    -------
    centres : (M, 2) float64 ndarray
        (row, column) of each centre.
    radii : (M,) float64 ndarray
    """
    m = count.size
    first = np.cumsum(count) - count
    pts = np.column_stack([vrow, vcol]).astype(np.float64)
    centres = np.zeros((m, 2))
    radii = np.zeros(m)
    one = count == 1
    centres[one] = pts[first[one]]
    two = count == 2
    centres[two] = (pts[first[two]] + pts[first[two] + 1]) / 2
    d = centres[two] - pts[first[two]]
    radii[two] = np.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2)
    vobj = np.repeat(np.arange(m), count)
    s0, s1 = first.copy(), first + 1
    candidate = (np.arange(vobj.size) - first[vobj]) >= 2
    active = count > 2
    # Chrystal's algorithm ends after a few steps; the bound only guards against a cycle.
    for _ in range(4 * int(count.max(initial=0)) + 8):
        if not active.any():
            break
        v = np.flatnonzero(candidate & active[vobj])
        o = vobj[v]
        a, b, p = pts[s0[o]], pts[s1[o]], pts[v]
        s01 = a - b
        vs0, vs1 = p - a, p - b
        n01 = s01[:, 0] ** 2 + s01[:, 1] ** 2
        at_s1 = np.abs(np.arccos((s01[:, 0] * vs1[:, 0] + s01[:, 1] * vs1[:, 1])
                                 / np.sqrt(n01 * (vs1[:, 0] ** 2 + vs1[:, 1] ** 2))))
        at_s0 = np.abs(np.arccos((-s01[:, 0] * vs0[:, 0] + -s01[:, 1] * vs0[:, 1])
                                 / np.sqrt(n01 * (vs0[:, 0] ** 2 + vs0[:, 1] ** 2))))
        at_v = np.pi - at_s1 - at_s0
        # the candidate with the smallest angle at V, per object; a tie goes to the one that
        # comes first in argsort order, as in scipy.ndimage.minimum_position (centrosome)
        objs = o[np.flatnonzero(np.append(True, o[1:] != o[:-1]))]
        order = np.argsort(at_v)[::-1]
        pick_of = np.empty(m, np.int64)
        pick_of[o[order]] = order  # the last write, i.e. the first in argsort order, stays
        pick = pick_of[objs]
        smallest = at_v[pick]
        done1 = smallest >= np.pi / 2
        ends = objs[done1]
        pa, pb = pts[s0[ends]], pts[s1[ends]]
        centres[ends] = (pa + pb) / 2
        radii[ends] = np.sqrt(np.sum((pa - pb) ** 2, 1)) / 2
        acute = (~done1 & (at_s1[pick] <= np.pi / 2) & (at_s0[pick] <= np.pi / 2)
                 & (at_v[pick] <= np.pi / 2))
        tri = objs[acute]
        ss0, ss1, vv = pts[s0[tri]], pts[s1[tri]], p[pick[acute]]
        y, x = 0, 1  # circumcentre, in centrosome's order of operations
        den = 2 * (ss0[:, x] * (ss1[:, y] - vv[:, y]) + ss1[:, x] * (vv[:, y] - ss0[:, y])
                   + vv[:, x] * (ss0[:, y] - ss1[:, y]))
        q0, q1, q2 = np.sum(ss0**2, 1), np.sum(ss1**2, 1), np.sum(vv**2, 1)
        centres[tri, x] = (q0 * (ss1[:, y] - vv[:, y]) + q1 * (vv[:, y] - ss0[:, y])
                           + q2 * (ss0[:, y] - ss1[:, y])) / den
        centres[tri, y] = (q0 * (vv[:, x] - ss1[:, x]) + q1 * (ss0[:, x] - vv[:, x])
                           + q2 * (ss1[:, x] - ss0[:, x])) / den
        radii[tri] = np.sqrt(np.sum((ss0 - centres[tri]) ** 2, 1))
        active[ends] = False
        active[tri] = False
        # the others: V replaces the end of S0-S1 whose angle is obtuse
        rest = ~done1 & ~acute
        objs, vpick = objs[rest], v[pick[rest]]
        obtuse0 = at_s0[pick[rest]] > np.pi / 2
        old = np.where(obtuse0, s0[objs], s1[objs])
        candidate[old] = True
        candidate[vpick] = False
        s0[objs[obtuse0]] = vpick[obtuse0]
        s1[objs[~obtuse0]] = vpick[~obtuse0]
    else:  # a cycle (never seen): the circle on S0-S1 of the last step
        pa, pb = pts[s0[active]], pts[s1[active]]
        centres[active] = (pa + pb) / 2
        radii[active] = np.sqrt(np.sum((pa - pb) ** 2, 1)) / 2
    return centres, radii
