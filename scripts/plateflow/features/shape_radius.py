"""Maximum, mean and median radius: each pixel's distance to the nearest pixel not in its object.

cp_measure (as CellProfiler) runs ``scipy.ndimage.distance_transform_edt`` on every object's
mask, cropped and padded with one pixel of background, so other objects and the image border
count as outside. Here the same exact Euclidean distance is found for all objects at once, in
two separable passes over the runs of the label image:

1. along each column, the distance ``g`` to the nearest pixel of another label (or the border);
2. along each row, ``d**2 = min over columns c' of (c - c')**2 + g(c')**2``, bounded by the
   distance to the ends of the pixel's run; only columns closer than the best distance so far
   are tried.

Distances squared are integers, so the median is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ObjectPixels", "radii"]


def _distance_to_change(labels: np.ndarray, axis: int, out: np.ndarray) -> None:
    """Write into ``out`` (Y, X) the distance along ``axis`` to the nearest pixel of another
    label (or beyond the image's edge)."""
    lab, res = np.moveaxis(labels, axis, 0), np.moveaxis(out, axis, 0)
    size = lab.shape[0]
    index = np.arange(size, dtype=out.dtype).reshape(-1, 1)
    change = np.empty(lab.shape, bool)  # the line differs from the previous one
    change[0] = True
    np.not_equal(lab[1:], lab[:-1], out=change[1:])
    np.multiply(change, index, out=res)
    np.maximum.accumulate(res, axis=0, out=res)  # the stretch's first line
    np.subtract(index, res, out=res)  # lines since the stretch's start
    back = np.empty(lab.shape, out.dtype)  # the same with the lines reversed
    back[0] = 0
    np.multiply(change[:0:-1], index[1:], out=back[1:])
    np.maximum.accumulate(back, axis=0, out=back)
    np.subtract(index, back, out=back)
    np.minimum(res, back[::-1], out=res)
    res += 1


@dataclass(frozen=True)
class ObjectPixels:
    """The measured objects' pixels, in the image framed by one pixel (flat indices).

    Attributes
    ----------
    width : int
        Width of the framed image (X + 2).
    tags : ((Y + 2) * (X + 2),) int32 ndarray
        Object index (0..m-1) of every pixel; -1 for background, labels not measured and the
        frame.
    column_distance : ((Y + 2) * (X + 2),) int ndarray
        ``g``: distance along the pixel's column to the nearest pixel of another label (or
        beyond the image); 0 on the frame.
    pixels : (P,) int64 ndarray
        Flat index of every pixel of a measured object (raster order).
    obj : (P,) int32 ndarray
        Its object index.
    edge : (P,) int ndarray
        ``min(g, distance along the row)``: 1 on the 4-connected border.
    """

    width: int
    tags: np.ndarray
    column_distance: np.ndarray
    pixels: np.ndarray
    obj: np.ndarray
    edge: np.ndarray

    @classmethod
    def from_labels(cls, labels: np.ndarray, lut: np.ndarray) -> ObjectPixels:
        """``lut``: object index of each label value, -1 for background and unmeasured labels."""
        y, x = labels.shape
        framed = (y + 2, x + 2)
        tags = np.full(framed, -1, np.int32)
        np.take(lut.astype(np.int32), labels, out=tags[1:-1, 1:-1])
        dtype = np.int16 if max(framed) < np.iinfo(np.int16).max else np.int32
        g = np.zeros(framed, dtype)
        _distance_to_change(labels, 0, g[1:-1, 1:-1])
        h = np.zeros(framed, dtype)
        _distance_to_change(labels, 1, h[1:-1, 1:-1])
        tags, g = tags.ravel(), g.ravel()
        pixels = np.flatnonzero(tags >= 0)
        edge = np.minimum(g[pixels], h.ravel()[pixels])
        return cls(x + 2, tags, g, pixels, tags[pixels], edge)


def radii(px: ObjectPixels, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MaximumRadius, MeanRadius and MedianRadius of every object.

    Parameters
    ----------
    px : ObjectPixels
    m : int
        Number of objects (each has pixels).

    Returns
    -------
    maximum, mean, median : (m,) float64 ndarray
    """
    g, pixels, obj = px.column_distance, px.pixels, px.obj
    best = px.edge.astype(np.int32)
    best *= best
    # At offset k a pixel's best can still improve while best > k**2 + 1 (g >= 1 inside the
    # run, and pixels +-k are in the run while k is below the distance to its ends). Finished
    # pixels are dropped only when a quarter of the active ones are: until then they are
    # harmless, because beyond their run's ends the candidates exceed their best (and the
    # offsets stay within the framed image).
    ids = np.flatnonzero(best > 2)
    at, cur = pixels[ids], best[ids]
    k = 1
    while ids.size:
        near = np.minimum(g[at - k], g[at + k]).astype(np.int32)
        near *= near
        near += k * k
        np.minimum(cur, near, out=cur)
        k += 1
        keep = cur > k * k + 1
        left = np.count_nonzero(keep)
        if left < 0.75 * keep.size:
            best[ids] = cur
            ids, at, cur = ids[keep], at[keep], cur[keep]
    count = np.bincount(obj, minlength=m)
    mean = np.bincount(obj, weights=np.sqrt(best), minlength=m) / count
    scale = int(best.max()) + 1
    keys = obj.astype(np.int32 if m * scale < 2**31 else np.int64) * scale + best
    ordered = np.sort(keys)
    first = np.cumsum(count) - count
    ordered -= np.repeat(np.arange(m, dtype=ordered.dtype) * scale, count)  # d**2 per object
    maximum = np.sqrt(ordered[first + count - 1])
    median = (np.sqrt(ordered[first + (count - 1) // 2]) + np.sqrt(ordered[first + count // 2])) / 2
    return maximum, mean, median
