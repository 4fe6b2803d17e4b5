"""Neighbors: how each object sits among the others of its compartment (CellProfiler
MeasureObjectNeighbors, neighbours = the same objects).

Columns are ``<Feature>_<scale>``, the scale being the distance in pixels (``method:
Within``, default 5), ``Adjacent`` (touching, distance 1) or ``Expanded`` (every object first
grown into the background to the nearest other object, then distance 1):

- ``NumberOfNeighbors``: other objects with a pixel within the distance (a disk of that
  radius, CellProfiler's ``strel_disk``) of one of the object's pixels.
- ``PercentTouching``: percent of the object's outline pixels (8-connected outline, image
  border included) within a disk of radius distance + 0.5 of another object, searched, as
  CellProfiler does, within the object's bounding box grown by the distance.
- ``FirstClosestDistance`` / ``SecondClosestDistance`` and ``FirstClosestObjectNumber`` /
  ``SecondClosestObjectNumber``: nearest other object centres (centroid of the label's pixels;
  of the expanded label for ``Expanded``), whatever the distance setting.
- ``AngleBetweenNeighbors``: degrees between the vectors to the first and second closest.

An object without pixels, and a closest/second-closest/angle that does not exist (fewer than
two/three objects), is NaN (CellProfiler writes 0). Differences from cp_measure 0.3.0: its
``FirstClosestObjectNumber`` is the object itself and its ``SecondClosestObjectNumber`` the
first closest (it forgets to skip self); for ``Expanded`` it looks for neighbours in the
unexpanded labels. We follow CellProfiler in both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.ndimage as ndi
from scipy.spatial import cKDTree

from plateflow.features.registry import Images, Objects, register_family

__all__ = ["NEIGHBORS_DEFAULTS", "NEIGHBORS_FEATURES", "neighbors"]

#: Options of ``features.Neighbors`` (the schema holds the same defaults).
NEIGHBORS_DEFAULTS = {"method": "Within", "distance": 5}

NEIGHBORS_FEATURES = (
    "NumberOfNeighbors",
    "PercentTouching",
    "FirstClosestObjectNumber",
    "FirstClosestDistance",
    "SecondClosestObjectNumber",
    "SecondClosestDistance",
    "AngleBetweenNeighbors",
)
_METHODS = ("Within", "Adjacent", "Expanded")


def _scale(params: Mapping) -> str:
    method = params.get("method", NEIGHBORS_DEFAULTS["method"])
    if method not in _METHODS:
        raise ValueError(f"features.Neighbors.method must be one of {_METHODS}, not {method!r}")
    if method == "Within":
        return str(int(params.get("distance", NEIGHBORS_DEFAULTS["distance"])))
    return method


def _columns(channels: Sequence[str], params: Mapping) -> list[str]:
    scale = _scale(params)
    return [f"{feature}_{scale}" for feature in NEIGHBORS_FEATURES]


def _disk_offsets(radius: float) -> np.ndarray:
    """(K, 2) offsets of CellProfiler's ``strel_disk(radius)`` without the centre."""
    r = int(radius)
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = (dy * dy + dx * dx <= radius * radius) & ((dy != 0) | (dx != 0))
    return np.stack([dy[keep], dx[keep]], axis=1)


def _outline(labels: np.ndarray) -> np.ndarray:
    """Non-zero pixels with an 8-neighbour of another value, or on the image border."""
    padded = np.pad(labels, 1, mode="edge")
    h, w = labels.shape
    different = np.zeros(labels.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                different |= padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] != labels
    different[0, :] = different[-1, :] = different[:, 0] = different[:, -1] = True
    return different & (labels > 0)


@register_family("Neighbors", columns=_columns, order=80,
                 defaults=NEIGHBORS_DEFAULTS, enabled=False)
def neighbors(objects: Objects, images: Images, params: Mapping) -> dict[str, np.ndarray]:
    """Neighbour counts, touching percentage and closest objects of one compartment.

    Parameters
    ----------
    objects : Objects
        (Y, X) labels and the N object numbers (rows).
    images : Images
        Unused.
    params : mapping
        ``features.Neighbors``: ``method`` (``Within``, ``Adjacent``, ``Expanded``) and
        ``distance`` (pixels, for ``Within``).

    Returns
    -------
    dict of str to (N,) float64 ndarray
    """
    params = {**NEIGHBORS_DEFAULTS, **params}
    scale = _scale(params)
    n = objects.n
    out = {name: np.full(n, np.nan) for name in _columns(images.channels, params)}
    labels = np.asarray(objects.labels)
    if labels.max(initial=0) == 0 or n == 0:
        return out
    if params["method"] == "Expanded":
        _, (ii, jj) = ndi.distance_transform_edt(labels == 0, return_indices=True)
        labels = labels[ii, jj]
    distance = int(params["distance"]) if params["method"] == "Within" else 1
    present_labels = np.unique(labels)
    present_labels = present_labels[present_labels > 0]
    rows = objects.rows(present_labels)
    on_row = rows >= 0
    has = np.zeros(n, bool)
    has[rows[on_row]] = True

    # Neighbour pairs (a, b): a pixel of b at an offset inside the disk from a pixel of a. It
    # suffices to start from a's outline pixels: from an interior pixel, a diagonal step
    # towards b's pixel stays in a and shortens the offset.
    size = int(labels.max()) + 1
    h, w = labels.shape
    outline = _outline(labels)
    oy, ox = np.nonzero(outline)
    own = labels[oy, ox]
    slices = ndi.find_objects(labels)
    lo_y = np.array([s[0].start if s else 0 for s in slices]) - distance
    hi_y = np.array([s[0].stop if s else 0 for s in slices]) + distance
    lo_x = np.array([s[1].start if s else 0 for s in slices]) - distance
    hi_x = np.array([s[1].stop if s else 0 for s in slices]) + distance
    lo_y, hi_y = np.maximum(lo_y, 0)[own - 1], np.minimum(hi_y, h)[own - 1]
    lo_x, hi_x = np.maximum(lo_x, 0)[own - 1], np.minimum(hi_x, w)[own - 1]
    pad = int(distance) + 1
    padded = np.pad(labels, pad).ravel()  # 0 outside the image
    stride = w + 2 * pad
    flat = (oy + pad) * stride + ox + pad
    codes = []
    touched = np.zeros(oy.size, bool)
    for dy, dx in _disk_offsets(distance + 0.5):
        value = padded[flat + (dy * stride + dx)]
        other = (value > 0) & (value != own)
        if dy * dy + dx * dx <= distance * distance:
            codes.append(own[other].astype(np.int64) * size + value[other])
            touched |= other
        else:  # CellProfiler searches only the bounding box grown by the distance
            ty, tx = oy + dy, ox + dx
            touched |= other & (ty >= lo_y) & (ty < hi_y) & (tx >= lo_x) & (tx < hi_x)
    pairs = np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)
    first, second = pairs // size, pairs % size
    both = np.unique(np.concatenate([first * size + second, second * size + first]))
    count = np.bincount(both // size, minlength=size).astype(np.float64)
    perimeter = np.bincount(own, minlength=size)
    overlap = np.bincount(own[touched], minlength=size)

    # Closest object centres (all objects of the label image).
    centres = np.array(ndi.center_of_mass(np.ones(labels.shape), labels, present_labels))
    centres = centres.reshape(-1, 2)
    k = min(3, present_labels.size)
    dist, idx = cKDTree(centres).query(centres, k=k)
    dist, idx = dist.reshape(-1, k), idx.reshape(-1, k)
    not_self = idx != np.arange(present_labels.size)[:, None]
    # drop self (normally column 0) and keep the next two, in distance order
    order = np.argsort(~not_self, axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)[:, :max(k - 1, 0)]
    dist = np.take_along_axis(dist, order, axis=1)[:, :max(k - 1, 0)]

    r = rows[on_row]
    lab = present_labels[on_row]
    out[f"NumberOfNeighbors_{scale}"][r] = count[lab]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[f"PercentTouching_{scale}"][r] = overlap[lab] * 100.0 / perimeter[lab]
    if idx.shape[1] >= 1:
        out[f"FirstClosestObjectNumber_{scale}"][r] = present_labels[idx[on_row, 0]]
        out[f"FirstClosestDistance_{scale}"][r] = dist[on_row, 0]
    if idx.shape[1] >= 2:
        out[f"SecondClosestObjectNumber_{scale}"][r] = present_labels[idx[on_row, 1]]
        out[f"SecondClosestDistance_{scale}"][r] = dist[on_row, 1]
        v1 = centres[idx[:, 0]] - centres
        v2 = centres[idx[:, 1]] - centres
        cos = (v1 * v2).sum(1) / np.sqrt((v1 * v1).sum(1) * (v2 * v2).sum(1))
        out[f"AngleBetweenNeighbors_{scale}"][r] = np.degrees(np.arccos(cos))[on_row]
    out[f"NumberOfNeighbors_{scale}"][~has] = np.nan
    return out
