"""RadialDistribution: CellProfiler MeasureObjectIntensityDistribution (FracAtD, MeanFrac,
RadialCV), as cp_measure 0.3 computes it (``get_radial_distribution``).

Each object's centre is its pixel farthest from the edge (Euclidean distance to the nearest
pixel of the image outside the object; the first in C order on ties). Each pixel's distance
from the centre is the geodesic distance inside the object in 8-connected steps of 1 and
sqrt 2 (what centrosome's ``propagate`` computes in cp_measure). With ``scaled`` (default) it is
normalised by distance-from-centre + distance-to-edge + 0.001, so it lies in [0, 1), and cut
into ``bin_count`` rings; else it is divided by ``maximum_radius`` and rings beyond the last go
to an ``Overflow`` bin. Per ring and channel:

- ``FracAtD`` = the ring's share of the object's total intensity;
- ``MeanFrac`` = FracAtD / (the ring's share of the object's pixels + machine epsilon);
- ``RadialCV`` = SD / mean (ddof 0) of the mean intensities of the ring's 8 wedges around the
  centre (wedges without pixels left out; 0 where the ring has no pixel).

Columns are ``<Feature>_<Channel>_<ring>of<bin_count>`` (``FracAtD_DNA_1of4``), CellProfiler's
``RadialDistribution_FracAtD_DNA_1of4`` once the registry adds the prefix; with ``scaled``
false, ``<Feature>_<Channel>_Overflow`` follows. Labels of the label image that are not rows
are ignored (treated as background).

cp_measure colours the objects so that touching ones differ and runs a whole-image distance
transform and ``propagate`` per colour. Here the geometry (centres, distances, rings, wedges) is
computed once per compartment for all objects and channels
(:mod:`~plateflow.features.radial_geometry`): every object is copied alone into its bounding
box on one packed canvas, so one distance transform serves all objects; the geodesic distance is
the closed form max - min + sqrt(2) min of the offsets wherever that is exact (checked pixel by
pixel), and Dijkstra, vectorised in rounds, only where it is not (rings, concave shapes). The
per-object sums are ``bincount``s. The numbers are cp_measure's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from plateflow.features.radial_geometry import closed_form, distance_to_edge, geodesic, pack
from plateflow.features.registry import Images, Objects, register_family

__all__ = ["RADIAL_DEFAULTS", "RADIAL_FEATURES", "radial_distribution"]

#: Options of ``features.RadialDistribution`` (CellProfiler's and cp_measure's defaults).
RADIAL_DEFAULTS = {"bin_count": 4, "scaled": True, "maximum_radius": 100}
RADIAL_FEATURES = ("FracAtD", "MeanFrac", "RadialCV")


def _bins(params: Mapping) -> list[str]:
    n = int(params.get("bin_count", 4))
    names = [f"{b}of{n}" for b in range(1, n + 1)]
    return names if params.get("scaled", True) else [*names, "Overflow"]


def _columns(channels: Sequence[str], params: Mapping) -> list[str]:
    return [f"{f}_{ch}_{b}" for f in RADIAL_FEATURES for ch in channels for b in _bins(params)]


def _octagonal(lab: np.ndarray, ci: np.ndarray, cj: np.ndarray):
    """Octagonal distance from each pixel to its object's centre (``ci``, ``cj`` indexed by
    label), as an image; and which labels it is not the geodesic distance for (each object
    alone in the image)."""
    canvas = pack(lab, int(lab.max(initial=0)))
    cols = canvas.shape[1]
    ci, cj = ci[canvas.obj + 1], cj[canvas.obj + 1]  # centres in the image
    i, j = np.divmod(canvas.pixels, lab.shape[1])
    di, dj = i - ci, j - cj
    d, exact = closed_form(canvas.labels, cols, canvas.index, canvas.obj, di, dj)
    dist = np.zeros(lab.size)
    dist[canvas.pixels] = d
    bad = np.zeros(int(lab.max(initial=0)) + 1, dtype=bool)
    bad[canvas.obj[~exact] + 1] = True
    return dist.reshape(lab.shape), bad


def _geometry(lab: np.ndarray, n: int, p: Mapping, pixels=None, obj=None):
    """Image flat index, object (0-based), ring and wedge of every measured pixel."""
    canvas = pack(lab, n, pixels, obj)
    cols = canvas.shape[1]
    d_to_edge = distance_to_edge(canvas, lab)
    # centre: the first (C order) pixel of the greatest distance to the edge, per object
    maxima = np.zeros(n)
    np.maximum.at(maxima, canvas.obj, d_to_edge)
    cand = np.flatnonzero(d_to_edge == maxima[canvas.obj])
    objs, first = np.unique(canvas.obj[cand], return_index=True)
    centre = np.zeros(n, dtype=canvas.index.dtype)
    centre[objs] = canvas.index[cand[first]]
    ci, cj = np.divmod(centre, cols)
    di, dj = canvas.r - ci[canvas.obj], canvas.c - cj[canvas.obj]
    # geodesic distance from the centre: the closed form where it is exact, else Dijkstra from
    # the exact pixels next to the others (left unreached where not connected to the centre)
    d_from_centre, exact = closed_form(canvas.labels, cols, canvas.index, canvas.obj, di, dj)
    if not exact.all():
        redo = canvas.index[~exact].astype(np.int64)
        mask = np.zeros(canvas.labels.size, dtype=bool)
        mask[redo] = True
        known = np.full(canvas.labels.size, -1.0)  # -1: background, NaN: not exact
        known[canvas.index] = np.where(exact, d_from_centre, np.nan)
        around = (redo[:, None] + np.array([-cols - 1, -cols, -cols + 1, -1, 1, cols - 1,
                                            cols, cols + 1])).ravel()
        seeds = np.unique(around[known[around] >= 0])
        far = geodesic(mask, cols, seeds, known[seeds])
        d_from_centre[~exact] = far[redo]
    good = np.isfinite(d_from_centre)
    dc = d_from_centre[good]
    if p["scaled"]:
        norm = dc / (dc + d_to_edge[good] + 0.001)
    else:
        norm = dc / p["maximum_radius"]
    n_bins = int(p["bin_count"])
    ring = np.minimum((norm * n_bins).astype(np.int32), n_bins)
    # wedge: which side of the centre in i and j, and whether |di| > |dj| (cp_measure's order)
    di, dj = di[good], dj[good]
    wedge = (di > 0).view(np.int8) + 2 * (dj > 0).view(np.int8)
    wedge += 4 * (np.abs(di) > np.abs(dj)).view(np.int8)
    return canvas.pixels[good], canvas.obj[good], ring, wedge


@register_family("RadialDistribution", columns=_columns, order=60,
                 defaults=RADIAL_DEFAULTS)
def radial_distribution(objects: Objects, images: Images,
                        params: Mapping) -> dict[str, np.ndarray]:
    """Radial intensity distribution of each object of one compartment, per channel.

    Parameters
    ----------
    objects : Objects
        (Y, X) labels and the N object numbers (rows).
    images : Images
        (C, Y, X) float64 pixels and the channel names.
    params : mapping
        ``features.RadialDistribution``: ``bin_count``, ``scaled``, ``maximum_radius``.

    Returns
    -------
    dict of str to (N,) float64 ndarray; NaN for an object without pixels.
    """
    p = {**RADIAL_DEFAULTS, **params}
    n = objects.n
    out = {name: np.full(n, np.nan) for name in _columns(images.channels, p)}
    if n == 0 or objects.labels.max(initial=0) == 0:
        return out
    labels = objects.labels
    flat = labels.ravel()
    fg = np.flatnonzero(flat)
    rows = objects.rows(flat[fg])
    if (rows < 0).any():  # labels that are not rows are background
        fg, rows = fg[rows >= 0], rows[rows >= 0]
    lab = np.zeros(labels.size, dtype=np.int32)
    lab[fg] = rows + 1  # rows as labels 1..n
    good, obj, ring, wedge = _geometry(lab.reshape(labels.shape), n, p, fg, rows)
    n_bins = int(p["bin_count"])
    nb = n_bins + 1  # the last is the overflow ring
    present = np.bincount(obj, minlength=n) > 0
    obw = (obj * nb + ring) * 8 + wedge
    count_obw = np.bincount(obw, minlength=n * nb * 8).reshape(n, nb, 8)
    count_ob = count_obw.sum(2)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac_pixels = count_ob / count_ob.sum(1, keepdims=True)
    has = count_obw > 0
    n_wedges = has.sum(2)
    values = images.pixels.reshape(len(images.channels), -1)[:, good]
    bins = _bins(p)
    for c, ch in enumerate(images.channels):
        sums = np.bincount(obw, weights=values[c], minlength=n * nb * 8).reshape(n, nb, 8)
        total = sums.sum(2)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = total / total.sum(1, keepdims=True)
            mean_frac = frac / (frac_pixels + np.finfo(float).eps)
            means = np.where(has, sums / np.where(has, count_obw, 1), 0.0)
            mu = means.sum(2) / n_wedges
            sd = np.sqrt((np.where(has, means - mu[..., None], 0.0) ** 2).sum(2) / n_wedges)
            cv = np.where(n_wedges > 0, sd / mu, 0.0)
        for b, name in enumerate(bins):
            for feature, value in (("FracAtD", frac), ("MeanFrac", mean_frac),
                                   ("RadialCV", cv)):
                column = value[:, b].copy()
                column[~present] = np.nan
                out[f"{feature}_{ch}_{name}"] = column
    return out
