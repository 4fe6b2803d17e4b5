"""RadialDistribution: CellProfiler MeasureObjectIntensityDistribution (FracAtD, MeanFrac,
RadialCV), as cp_measure 0.3 computes it (``get_radial_distribution``).

Each object's centre is its pixel farthest from the edge (the first in C order on ties). Each
pixel's distance from the centre is the geodesic distance inside the object in 8-connected
steps of 1 and sqrt 2 (centrosome's ``propagate``, one pass per colour of a colouring in which
touching objects differ). Where the closed form max - min + sqrt(2) min of the offsets is that
distance (checked for every pixel: it has a neighbour in its object exactly one step closer),
it is used, and ``propagate`` runs only on the other objects (rings, concave shapes); with
``scaled`` (default) it is normalised by distance-from-centre + distance-to-edge + 0.001, so it
lies in [0, 1), and cut into ``bin_count`` rings; else it is divided by ``maximum_radius`` and
rings beyond the last go to an ``Overflow`` bin. Per ring and channel:

- ``FracAtD`` = the ring's share of the object's total intensity;
- ``MeanFrac`` = FracAtD / (the ring's share of the object's pixels + machine epsilon);
- ``RadialCV`` = SD / mean (ddof 0) of the mean intensities of the ring's 8 wedges around the
  centre (wedges without pixels left out; 0 where the ring has no pixel).

Columns are ``<Feature>_<Channel>_<ring>of<bin_count>`` (``FracAtD_DNA_1of4``), CellProfiler's
``RadialDistribution_FracAtD_DNA_1of4`` once the registry adds the prefix; with ``scaled``
false, ``<Feature>_<Channel>_Overflow`` follows. The geometry (centres, distances, rings,
wedges) is computed once per compartment for all objects and channels; the per-object sums are
``bincount``s. Labels of the label image that are not rows are ignored (treated as background).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import centrosome.cpmorphology as cpm
import centrosome.propagate as cpp
import numpy as np
import scipy.ndimage as ndi

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
    """Distance from each pixel to its object's centre in 8-connected steps (1 and sqrt 2), as
    if the object were convex; and which objects that is not their geodesic distance for."""
    i, j = np.indices(lab.shape)
    di, dj = np.abs(i - ci[lab]), np.abs(j - cj[lab])
    lo = np.minimum(di, dj)
    dist = np.where(lab > 0, (np.maximum(di, dj) - lo) + lo * np.sqrt(2.0), 0.0)
    # geodesic iff every pixel but the centre has a neighbour in its object one step closer
    pad_l = np.pad(lab, 1)
    pad_d = np.pad(dist, 1)
    ok = (di == 0) & (dj == 0)
    h, w = lab.shape
    for a in (-1, 0, 1):
        for b in (-1, 0, 1):
            if a == b == 0:
                continue
            step = np.sqrt(2.0) if a and b else 1.0
            nb_l = pad_l[1 + a:1 + a + h, 1 + b:1 + b + w]
            nb_d = pad_d[1 + a:1 + a + h, 1 + b:1 + b + w]
            ok |= (nb_l == lab) & (np.abs(nb_d + step - dist) < 1e-9)
    bad = np.zeros(int(lab.max()) + 1, dtype=bool)
    bad[lab[(lab > 0) & ~ok]] = True
    return dist, bad


def _geometry(lab: np.ndarray, n: int, p: Mapping):
    """Flat pixel index, object (0-based), ring and wedge of every measured pixel."""
    colors = cpm.color_labels(lab)
    d_to_edge = np.zeros(lab.shape)
    for color in range(1, int(colors.max(initial=0)) + 1):  # centrosome's distance_to_edge
        mask = colors == color
        d_to_edge[mask] = ndi.distance_transform_edt(mask)[mask]
    # centre: first C-order maximum of the distance to the edge, per object
    maxima = np.asarray(ndi.maximum(d_to_edge, lab, np.arange(1, n + 1)), dtype=float)
    flat_lab, flat_d = lab.ravel(), d_to_edge.ravel()
    fg = np.flatnonzero(flat_lab)
    cand = fg[flat_d[fg] == maxima[flat_lab[fg] - 1]]
    objs, first = np.unique(flat_lab[cand], return_index=True)
    ci = np.zeros(n + 1, dtype=np.int64)
    cj = np.zeros(n + 1, dtype=np.int64)
    ci[objs], cj[objs] = np.divmod(cand[first], lab.shape[1])
    # geodesic distance from the centre: the closed form where it is exact, else centrosome's
    # propagate (one pass per colour, over the objects that need it)
    d_from_centre, bad = _octagonal(lab, ci, cj)
    owner = lab.copy()
    if bad.any():
        redo = bad[lab]
        owner[redo] = 0
        centres = np.zeros(lab.shape, dtype=np.int64)
        keep = bad[objs]
        centres[ci[objs[keep]], cj[objs[keep]]] = objs[keep]
        zeros = np.zeros(lab.shape)
        for color in range(1, int(colors.max(initial=0)) + 1):
            mask = (colors == color) & redo
            if not mask.any():
                continue
            got, dist = cpp.propagate(zeros, centres, mask, 1)
            d_from_centre[mask] = dist[mask]
            owner[mask] = got[mask]
    good = np.flatnonzero(owner.ravel() > 0)
    obj = owner.ravel()[good]
    dc = d_from_centre.ravel()[good]
    if p["scaled"]:
        norm = dc / (dc + d_to_edge.ravel()[good] + 0.001)
    else:
        norm = dc / p["maximum_radius"]
    n_bins = int(p["bin_count"])
    ring = np.minimum((norm * n_bins).astype(np.int64), n_bins)
    # wedge: which side of the centre in i and j, and whether |di| > |dj| (cp_measure's order)
    i, j = np.divmod(good, lab.shape[1])
    di, dj = i - ci[obj], j - cj[obj]
    wedge = (di > 0).astype(np.int64) + 2 * (dj > 0) + 4 * (np.abs(di) > np.abs(dj))
    return good, obj - 1, ring, wedge


@register_family("RadialDistribution", columns=_columns, order=60,
                 defaults=RADIAL_DEFAULTS, enabled=False)
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
    lab = np.zeros(labels.size, dtype=np.int64)
    lab[fg] = rows + 1  # rows as labels 1..n; labels that are not rows become background
    lab = lab.reshape(labels.shape)
    good, obj, ring, wedge = _geometry(lab, n, p)
    n_bins = int(p["bin_count"])
    nb = n_bins + 1  # the last is the overflow ring
    present = np.bincount(obj, minlength=n) > 0
    ob = obj * nb + ring
    obw = ob * 8 + wedge
    count_ob = np.bincount(ob, minlength=n * nb).reshape(n, nb)
    count_obw = np.bincount(obw, minlength=n * nb * 8).reshape(n, nb, 8)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac_pixels = count_ob / count_ob.sum(1, keepdims=True)
    has = count_obw > 0
    n_wedges = has.sum(2)
    bins = _bins(p)
    for c, ch in enumerate(images.channels):
        values = images.pixels[c].ravel()[good]
        with np.errstate(divide="ignore", invalid="ignore"):
            total = np.bincount(ob, weights=values, minlength=n * nb).reshape(n, nb)
            frac = total / total.sum(1, keepdims=True)
            mean_frac = frac / (frac_pixels + np.finfo(float).eps)
            sums = np.bincount(obw, weights=values, minlength=n * nb * 8).reshape(n, nb, 8)
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
