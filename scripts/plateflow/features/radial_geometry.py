"""Geometry of RadialDistribution: each object's centre and every pixel's distances, vectorised.

cp_measure (``get_radial_distribution``) colours the labels so that touching objects differ,
then per colour runs a whole-image distance transform (distance to the edge) and centrosome's
``propagate`` (geodesic distance from the centre, 8-connected steps of 1 and sqrt 2). Here every
object is copied, alone in its bounding box, onto one packed *canvas* (boxes side by side with a
row and column of background between them), so one distance transform serves all objects and
no object can reach another:

- :func:`pack` — the canvas, and each pixel's place on it;
- :func:`distance_to_edge` — the Euclidean distance to the nearest pixel outside the object
  (outside the image is no edge: an object on the border is mirrored across it);
- :func:`closed_form` — the geodesic distance where it is the octagonal ``max - min + sqrt(2)
  min`` of the offsets (checked per pixel), and where it is not;
- :func:`geodesic` — Dijkstra over the remaining pixels, from their exact neighbours, in rounds
  (every step is at least 1, so all pending pixels within 1 of the nearest are final at once).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

__all__ = ["Canvas", "closed_form", "distance_to_edge", "geodesic", "pack"]

SQRT2 = np.sqrt(2.0)


class Canvas:
    """The objects of a label image packed side by side, each alone in its bounding box.

    Attributes
    ----------
    shape : (int, int)
        Canvas rows and columns (a background row and column around every box).
    labels : (H * W,) int32 ndarray
        Flat canvas: object ``k`` (1..n) in its box, 0 elsewhere.
    index : (M,) int ndarray
        Canvas flat index of each object pixel, in image C order (int32 on canvases that allow).
    r, c : (M,) int ndarray
        Its canvas row and column (the same dtype).
    pixels : (M,) int64 ndarray
        Image flat index of the same pixels.
    obj : (M,) int ndarray
        Their object, 0-based.
    top, left, height, width, row, col : (n,) int64 ndarray
        Each object's bounding box in the image, and the box's top left corner on the canvas.
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)


def pack(lab: np.ndarray, n: int, pixels: np.ndarray | None = None,
         obj: np.ndarray | None = None) -> Canvas:
    """Pack the objects of ``lab`` (labels 1..n) onto a canvas (shelves by decreasing height).

    The box of an object that touches one image border (not the opposite one) is extended by
    its mirror image across that border, for :func:`distance_to_edge`.

    Parameters
    ----------
    lab : (Y, X) int ndarray
        Labels 1..n, 0 = background.
    n : int
        Number of objects.
    pixels, obj : (M,) int ndarray, optional
        ``np.flatnonzero(lab)`` and ``lab`` there minus 1, where the caller has them.
    """
    top = np.zeros(n, np.int64)
    left, height, width = top.copy(), top.copy(), top.copy()
    for k, box in enumerate(ndi.find_objects(lab, max_label=n)):
        if box is not None:
            top[k], left[k] = box[0].start, box[1].start
            height[k], width[k] = box[0].stop - box[0].start, box[1].stop - box[1].start
    present = height > 0
    at_top, at_left = present & (top == 0), present & (left == 0)
    at_bottom = present & (top + height == lab.shape[0])
    at_right = present & (left + width == lab.shape[1])
    crop = (at_top & at_bottom) | (at_left & at_right)  # no mirror: its own crop instead
    flip_i = (at_top | at_bottom) & ~crop
    flip_j = (at_left | at_right) & ~crop
    ext_h, ext_w = height * (1 + flip_i), width * (1 + flip_j)
    cols = int(max(ext_w.max(initial=0) + 2, np.sqrt(((ext_h + 1) * (ext_w + 1)).sum())))
    row, col = np.zeros(n, np.int64), np.zeros(n, np.int64)
    x, y, shelf = 1, 1, 0
    heights, widths = ext_h.tolist(), ext_w.tolist()
    for k in np.argsort(-ext_h, kind="stable").tolist():
        if x + widths[k] + 1 > cols:
            x, y, shelf = 1, y + shelf + 1, 0
        row[k], col[k] = y, x
        x += widths[k] + 1
        shelf = max(shelf, heights[k])
    shape = (y + shelf + 1, cols)
    # the object itself sits below / right of its mirror where that is across the top / left
    row += np.where(flip_i & at_top, height, 0)
    col += np.where(flip_j & at_left, width, 0)
    if pixels is None:
        pixels = np.flatnonzero(lab)
        obj = lab.ravel()[pixels].astype(np.int64) - 1
    small = shape[0] * cols < 2 ** 31
    dtype = np.int32 if small else np.int64
    i, j = np.divmod(pixels.astype(dtype) if small else pixels, lab.shape[1])
    r = i + (row - top).astype(dtype)[obj]
    c = j + (col - left).astype(dtype)[obj]
    index = r * cols + c
    labels = np.zeros(shape[0] * cols, np.int32)
    labels[index] = obj + 1
    return Canvas(shape=shape, labels=labels, index=index, r=r, c=c, pixels=pixels, obj=obj,
                  top=top, left=left, height=height, width=width, row=row, col=col, crop=crop,
                  flip_i=flip_i, flip_j=flip_j)


def distance_to_edge(canvas: Canvas, lab: np.ndarray) -> np.ndarray:
    """(M,) Euclidean distance of each object pixel to the nearest pixel of the image outside
    its object (centrosome's ``distance_to_edge``); pixels outside the image do not count.

    Inside a box the nearest outside pixel is within the box or on the ring just around it, and
    the canvas has background there. An object on the image border has no ring on that side:
    its box is extended by the object's mirror image across the border, whose background is
    never nearer than the background it mirrors (and the ring around the extended box mirrors
    real background on the far side). One touching two opposite borders is measured in its own
    crop of the image.
    """
    rows, cols = canvas.shape
    mask = canvas.labels > 0
    obj, index = canvas.obj, canvas.index
    flips = np.flatnonzero((canvas.flip_i | canvas.flip_j)[obj])
    if flips.size:
        # mirror row of a pixel r rows below its object's canvas row: row - 1 - r across the
        # top, row + 2 h - 1 - r across the bottom (the same for columns)
        obj = obj[flips]
        flip_i, flip_j = canvas.flip_i[obj], canvas.flip_j[obj]
        r, c = canvas.r[flips].astype(np.int64), canvas.c[flips].astype(np.int64)
        across_top = np.where(canvas.top[obj] == 0, 0, 2 * canvas.height[obj])
        across_left = np.where(canvas.left[obj] == 0, 0, 2 * canvas.width[obj])
        mr = 2 * canvas.row[obj] + across_top - 1 - r
        mc = 2 * canvas.col[obj] + across_left - 1 - c
        mask[(mr * cols + c)[flip_i]] = True
        mask[(r * cols + mc)[flip_j]] = True
        mask[(mr * cols + mc)[flip_i & flip_j]] = True
    # nearest background pixel (scipy's feature transform), and the distance only where needed
    near = ndi.distance_transform_edt(mask.reshape(rows, cols), return_distances=False,
                                      return_indices=True).reshape(2, -1)
    di, dj = near[0, index] - canvas.r, near[1, index] - canvas.c
    dist = np.sqrt((di * di + dj * dj).astype(float))
    if not canvas.crop.any():
        return dist
    edt = np.zeros(rows * cols)
    edt[index] = dist
    edt = edt.reshape(rows, cols)
    for k in np.flatnonzero(canvas.crop).tolist():
        t, le = canvas.top[k], canvas.left[k]
        b, r = t + canvas.height[k], le + canvas.width[k]
        t0, l0 = max(t - 1, 0), max(le - 1, 0)
        crop = ndi.distance_transform_edt(lab[t0:b + 1, l0:r + 1] == k + 1)
        y, x = canvas.row[k], canvas.col[k]
        edt[y:y + b - t, x:x + r - le] = crop[t - t0:b - t0, le - l0:r - l0]
    return edt.ravel()[index]


def closed_form(labels: np.ndarray, cols: int, index: np.ndarray, obj: np.ndarray,
                di: np.ndarray, dj: np.ndarray):
    """Octagonal distance of each pixel from its object's centre, and where it is geodesic.

    ``max(|di|, |dj|) - min + sqrt(2) min`` is the shortest 8-connected path ignoring the
    object's shape, and every such path starts with the straight step along the larger offset
    or the diagonal step (the only neighbours exactly one step closer, both one ring of the
    chessboard distance nearer the centre). So it is a pixel's geodesic distance iff one of
    those neighbours is in the object and geodesic itself: decided ring by ring outwards, for
    the objects where some pixel lacks both neighbours (for the others, every pixel).

    Parameters
    ----------
    labels : (S,) int ndarray
        Flat image, each object (1..n) alone in a box with background around it.
    cols : int
        Its row length.
    index, obj, di, dj : (M,) int ndarray
        Each pixel's flat index, object (0-based) and offset from the centre (rows, columns).

    Returns
    -------
    dist : (M,) float64 ndarray
    exact : (M,) bool ndarray
        Whether ``dist`` is the geodesic distance.
    """
    ai, aj = np.abs(di), np.abs(dj)
    lo = np.minimum(ai, aj)
    dist = (np.maximum(ai, aj) - lo) + lo * SQRT2
    si, sj = np.sign(di), np.sign(dj)
    has_diagonal, has_straight = lo > 0, ai != aj
    diagonal = index - si * cols - sj
    straight = index + np.where(ai > aj, -si * cols, -sj)
    own = obj + 1
    ok = ((has_diagonal & (labels[diagonal] == own)) | (has_straight & (labels[straight] == own))
          | ((ai == 0) & (aj == 0)))
    if ok.all():
        return dist, ok
    bad = np.zeros(int(obj.max()) + 1, dtype=bool)
    bad[obj[~ok]] = True
    sel = np.flatnonzero(bad[obj])
    ring = np.maximum(ai[sel], aj[sel])
    order = sel[np.argsort(ring.astype(np.uint16 if ring.max() < 2 ** 16 else np.int64),
                           kind="stable")]
    ends = np.cumsum(np.bincount(ring))
    exact_at = np.zeros(labels.size, dtype=bool)  # only the object's own pixels in its box
    exact_at[index[order[:ends[0]]]] = True  # the centres
    for a, b in zip(ends[:-1].tolist(), ends[1:].tolist()):
        px = order[a:b]
        exact_at[index[px]] = ((has_diagonal[px] & exact_at[diagonal[px]])
                               | (has_straight[px] & exact_at[straight[px]]))
    exact = np.ones(index.size, dtype=bool)
    exact[sel] = exact_at[index[sel]]
    return dist, exact


def geodesic(mask: np.ndarray, cols: int, seeds: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Geodesic distance inside ``mask`` (8-connected steps of 1 and sqrt 2) from ``seeds``.

    Parameters
    ----------
    mask : (S,) bool ndarray
        Flat image of the pixels to reach, False on its first and last row and column.
    cols : int
        Its row length.
    seeds : (K,) int ndarray
        Distinct flat indices outside ``mask`` where the distance is known,
    start : (K,) float ndarray
        and that distance.

    Returns
    -------
    (S,) float64 ndarray: the distance in ``mask`` (inf where not reached), ``start`` at the
    seeds, -inf elsewhere.
    """
    dist = np.where(mask, np.inf, -np.inf)
    dist[seeds] = start
    offsets = np.array([-cols - 1, -cols, -cols + 1, -1, 1, cols - 1, cols, cols + 1])
    steps = np.array([SQRT2, 1.0, SQRT2, 1.0, 1.0, SQRT2, 1.0, SQRT2])
    stamp = np.zeros(dist.size, np.int64)
    queued = np.zeros(dist.size, dtype=bool)
    pending = np.asarray(seeds, dtype=np.int64)
    queued[pending] = True
    while pending.size:
        d = dist[pending]
        # every step is >= 1: a pixel within 1 of the nearest pending one is final
        final = d < d.min() + 1.0
        done, pending = pending[final], pending[~final]
        queued[done] = False
        nb = (done[:, None] + offsets).ravel()
        cand = (d[final][:, None] + steps).ravel()
        better = cand < dist[nb]  # -inf outside the mask: never better
        nb, cand = nb[better], cand[better]
        np.minimum.at(dist, nb, cand)
        first = np.arange(nb.size)
        stamp[nb] = first
        nb = nb[(stamp[nb] == first) & ~queued[nb]]  # each new pixel once
        queued[nb] = True
        pending = np.concatenate([pending, nb])
    return dist
