"""Per-object intensity statistics shared by the Intensity and Location families.

CellProfiler's MeasureObjectIntensity writes both ``Intensity_*`` and ``Location_*`` columns
from one pass over the pixels. :func:`object_stats` does the same: whichever family runs first
on a compartment groups its pixels by object once and computes every statistic of every
channel, vectorised over all objects; the (small) results stay in ``images.cache`` for the
other family, whatever order the compartments and families are called in:

* sum, mean, population SD, min, max, the first maximum pixel in raster order, the
  intensity-weighted centre, mass displacement, and the same five statistics over the
  object's edge pixels;
* quartiles, median and MAD by CellProfiler's rule (position ``n * q`` in the sorted values,
  0-based, linear interpolation, the last value when there is no upper neighbour; MAD is that
  median of ``|value - median|``).

Edge pixels are CellProfiler's ``skimage.segmentation.find_boundaries(labels, mode="inner")``:
object pixels with a 4-connected neighbour of another label (or background); outside the
image does not count, so an image-border pixel is an edge pixel only if it has such a
neighbour inside the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plateflow.features.registry import Images, Objects

__all__ = ["CHANNEL_STATS", "CompartmentStats", "edge_mask", "object_stats"]

_CACHE_KEY = "intensity_stats"
_SIGN = np.uint32(0x80000000)

#: The per-channel statistics, in the order :func:`object_stats` computes them.
CHANNEL_STATS = (
    "IntegratedIntensity", "MeanIntensity", "StdIntensity", "MinIntensity", "MaxIntensity",
    "MedianIntensity", "LowerQuartileIntensity", "UpperQuartileIntensity", "MADIntensity",
    "IntegratedIntensityEdge", "MeanIntensityEdge", "StdIntensityEdge", "MinIntensityEdge",
    "MaxIntensityEdge", "MassDisplacement",
    "CenterMassIntensity_X", "CenterMassIntensity_Y", "CenterMassIntensity_Z",
    "MaxIntensity_X", "MaxIntensity_Y", "MaxIntensity_Z",
)  # fmt: skip


@dataclass(frozen=True)
class CompartmentStats:
    """Everything Intensity and Location report for one compartment.

    Attributes
    ----------
    center_x, center_y : (N,) float64 ndarray
        Centroid (0-based pixel coordinates, X = column); NaN for an object without pixels.
    channels : list of dict of str to (N,) float64 ndarray
        Per channel (image order), each of :data:`CHANNEL_STATS`. NaN for an object without
        pixels; edge statistics NaN without edge pixels (only an object filling the image);
        centre of mass and mass displacement NaN where the integrated intensity is 0.
        Coordinates are 0-based, X = column; Z is 0 for a 2-D image, as CellProfiler writes.
    """

    center_x: np.ndarray
    center_y: np.ndarray
    channels: list


def object_stats(objects: Objects, images: Images) -> CompartmentStats:
    """The statistics of one compartment, computed once per site (``images.cache``)."""
    done = images.cache.setdefault(_CACHE_KEY, [])
    for labels, numbers, stats in done:
        if (labels is objects.labels or np.array_equal(labels, objects.labels)) and \
                np.array_equal(numbers, objects.numbers):
            return stats
    stats = _Grouped(objects).measure(images.pixels)
    done.append((objects.labels, objects.numbers, stats))
    return stats


def edge_mask(labels: np.ndarray) -> np.ndarray:
    """Object pixels with a 4-connected neighbour of another label, inside the image.

    Parameters
    ----------
    labels : (Y, X) int ndarray

    Returns
    -------
    (Y, X) bool ndarray
        Equal to ``skimage.segmentation.find_boundaries(labels, mode="inner")``.
    """
    edge = np.zeros(labels.shape, dtype=bool)
    diff = labels[1:] != labels[:-1]
    edge[1:] |= diff
    edge[:-1] |= diff
    diff = labels[:, 1:] != labels[:, :-1]
    edge[:, 1:] |= diff
    edge[:, :-1] |= diff
    edge &= labels != 0
    return edge


class _Grouped:
    """One compartment's pixels grouped by object (raster order within an object)."""

    def __init__(self, objects: Objects):
        n = self.n = objects.n
        flat = objects.labels.ravel()
        pix = np.flatnonzero(flat)
        rows = objects.rows(flat[pix]) if pix.size else pix
        if (rows < 0).any():
            keep = rows >= 0
            pix, rows = pix[keep], rows[keep]
        # stable, so raster order is kept within an object and the first maximum found is the
        # first in raster order (cp_measure's maximum position); uint16 keys sort by radix
        self.row_key = rows.astype(np.uint16) if n < 2**16 else rows
        by_row = np.argsort(self.row_key, kind="stable")
        self.pix = pix[by_row]
        self.rows = rows[by_row]
        self.row_key = self.row_key[by_row]
        counts = np.bincount(self.rows, minlength=n)
        self.present = counts > 0
        self.npix = counts[self.present]
        self.count = self.npix.astype(np.float64)
        self.seg = (np.cumsum(counts) - counts)[self.present]
        y, x = np.divmod(self.pix, objects.labels.shape[1])
        self.x = x.astype(np.float64)
        self.y = y.astype(np.float64)
        # edge pixels: a subsequence of the grouped pixels, so still grouped
        self.edge = np.flatnonzero(edge_mask(objects.labels).ravel()[self.pix])
        edge_counts = np.bincount(self.rows[self.edge], minlength=n)
        self.edge_present = edge_counts > 0
        self.edge_npix = edge_counts[self.edge_present]
        self.edge_seg = (np.cumsum(edge_counts) - edge_counts)[self.edge_present]

    def scatter(self, values: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        """Per-object values of the present objects onto all N rows (NaN elsewhere)."""
        out = np.full(self.n, np.nan)
        out[self.present if present is None else present] = values
        return out

    def measure(self, pixels: np.ndarray) -> CompartmentStats:
        """Every statistic of every channel of ``pixels`` ((C, Y, X) float64)."""
        if self.pix.size == 0:
            return CompartmentStats(
                np.full(self.n, np.nan), np.full(self.n, np.nan),
                [{name: np.full(self.n, np.nan) for name in CHANNEL_STATS} for _ in pixels])
        cm_x = np.add.reduceat(self.x, self.seg) / self.count
        cm_y = np.add.reduceat(self.y, self.seg) / self.count
        rowkey = self.rows.astype(np.uint64) << np.uint64(32)
        channels = []
        for plane in pixels:
            values = plane.ravel()[self.pix]
            stats = self._moments(values, cm_x, cm_y)
            stats.update(self._edge_stats(values))
            stats.update(self._order_stats(values, rowkey))
            channels.append({name: stats[name] for name in CHANNEL_STATS})
        return CompartmentStats(self.scatter(cm_x), self.scatter(cm_y), channels)

    def _moments(self, v: np.ndarray, cm_x: np.ndarray, cm_y: np.ndarray) -> dict:
        seg = self.seg
        total = np.add.reduceat(v, seg)
        mean = total / self.count
        deviation = v - np.repeat(mean, self.npix)
        maximum = np.maximum.reduceat(v, seg)
        with np.errstate(divide="ignore", invalid="ignore"):
            cmi_x = np.add.reduceat(self.x * v, seg) / total
            cmi_y = np.add.reduceat(self.y * v, seg) / total
        # first maximum in raster order: candidates are ascending and grouped by object
        candidates = np.flatnonzero(v == np.repeat(maximum, self.npix))
        cand_rows = self.rows[candidates]
        first = candidates[np.r_[True, cand_rows[1:] != cand_rows[:-1]]]
        out = {
            "IntegratedIntensity": total,
            "MeanIntensity": mean,
            "StdIntensity": np.sqrt(np.add.reduceat(deviation * deviation, seg) / self.count),
            "MinIntensity": np.minimum.reduceat(v, seg),
            "MaxIntensity": maximum,
            "MassDisplacement": np.hypot(cmi_x - cm_x, cmi_y - cm_y),
            "CenterMassIntensity_X": cmi_x,
            "CenterMassIntensity_Y": cmi_y,
            "CenterMassIntensity_Z": np.where(np.isnan(cmi_x), np.nan, 0.0),
            "MaxIntensity_X": self.x[first],
            "MaxIntensity_Y": self.y[first],
            "MaxIntensity_Z": np.zeros(first.size),
        }
        return {name: self.scatter(value) for name, value in out.items()}

    def _edge_stats(self, v: np.ndarray) -> dict:
        """Sum, mean, SD, min and max of each object's edge pixels."""
        names = ("IntegratedIntensityEdge", "MeanIntensityEdge", "StdIntensityEdge",
                 "MinIntensityEdge", "MaxIntensityEdge")
        if self.edge.size == 0:
            return {name: np.full(self.n, np.nan) for name in names}
        ev = v[self.edge]
        seg = self.edge_seg
        count = self.edge_npix.astype(np.float64)
        total = np.add.reduceat(ev, seg)
        mean = total / count
        deviation = ev - np.repeat(mean, self.edge_npix)
        std = np.sqrt(np.add.reduceat(deviation * deviation, seg) / count)
        values = (total, mean, std, np.minimum.reduceat(ev, seg), np.maximum.reduceat(ev, seg))
        return {name: self.scatter(value, self.edge_present)
                for name, value in zip(names, values)}

    def _order_stats(self, v: np.ndarray, rowkey: np.ndarray) -> dict:
        """Median, quartiles and MAD, CellProfiler's rule (see the module docstring)."""
        ordered = _sort_within(v, self.row_key, rowkey)
        median = _quantile(ordered, self.seg, self.npix, 0.5)
        out = {
            "MedianIntensity": median,
            "LowerQuartileIntensity": _quantile(ordered, self.seg, self.npix, 0.25),
            "UpperQuartileIntensity": _quantile(ordered, self.seg, self.npix, 0.75),
            "MADIntensity": _median_deviation(ordered, self.seg, self.npix, median),
        }
        return {name: self.scatter(value) for name, value in out.items()}


def _sort_within(v: np.ndarray, rows: np.ndarray, rowkey: np.ndarray) -> np.ndarray:
    """The values ``v`` (grouped by ``rows``, any integer type) sorted within each group.

    Corrected images are float32 (cast to float64): then one ``np.sort`` of the 64-bit key
    ``row << 32 | order-preserving bits of the float32 value`` sorts by row and value, and the
    values are read back from the key exactly. Other values take two argsorts (by value, then
    stably by row).
    """
    v32 = v.astype(np.float32)
    if not np.array_equal(v32, v):
        by_value = np.argsort(v)
        return v[by_value[np.argsort(rows[by_value], kind="stable")]]
    bits = v32.view(np.uint32)
    if int(bits.max()) < _SIGN:  # no negative value (nor -0.0): the bits sort as the values
        low = np.sort(rowkey | bits).astype(np.uint32)
    else:  # IEEE order as unsigned integers: flip all bits of negatives, the sign of others
        flip = (bits >> np.uint32(31)) * np.uint32(0x7FFFFFFF) | _SIGN
        low = np.sort(rowkey | (bits ^ flip)).astype(np.uint32)
        low ^= ((low >> np.uint32(31)) ^ np.uint32(1)) * np.uint32(0x7FFFFFFF) | _SIGN
    return low.view(np.float32).astype(np.float64)


def _quantile(ordered: np.ndarray, starts: np.ndarray, counts: np.ndarray,
              fraction: float) -> np.ndarray:
    """Per-object quantile of group-sorted values, CellProfiler's rule (position ``n * q``).

    ``starts``/``counts`` describe non-empty groups.
    """
    position = counts * fraction
    index = np.floor(position).astype(np.int64)
    frac = position - index
    last = starts + counts - 1
    lower = ordered[starts + index]
    upper = ordered[np.minimum(starts + index + 1, last)]
    return np.where(index < counts - 1, lower * (1 - frac) + upper * frac, lower)


def _median_deviation(ordered: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                      median: np.ndarray) -> np.ndarray:
    """CellProfiler's MAD: the ``n * 0.5`` quantile of ``|value - median|``, without a sort.

    The ``w = k + 1`` values nearest the median form a window of the sorted values, found by
    one binary search per object (all objects at once); the k-th smallest deviation is the
    larger end of that window and the (k+1)-th the nearer of its two outside neighbours.
    """
    k = np.floor(counts * 0.5).astype(np.int64)
    frac = counts * 0.5 - k
    w = k + 1
    lo = np.zeros_like(counts)
    hi = counts - w
    active = np.flatnonzero(lo < hi)
    while active.size:
        mid = (lo[active] + hi[active]) // 2
        base = starts[active] + mid
        m = median[active]
        right_closer = m - ordered[base] > ordered[base + w[active]] - m
        lo[active] = np.where(right_closer, mid + 1, lo[active])
        hi[active] = np.where(right_closer, hi[active], mid)
        active = active[lo[active] < hi[active]]
    first = starts + lo
    kth = np.maximum(np.abs(ordered[first] - median), np.abs(ordered[first + w - 1] - median))
    end = starts + counts
    left = np.where(lo > 0, np.abs(ordered[np.maximum(first - 1, starts)] - median), np.inf)
    after = first + w
    right = np.where(after < end, np.abs(ordered[np.minimum(after, end - 1)] - median), np.inf)
    nxt = np.minimum(left, right)
    with np.errstate(invalid="ignore"):
        return np.where(k < counts - 1, kth * (1 - frac) + nxt * frac, kth)
