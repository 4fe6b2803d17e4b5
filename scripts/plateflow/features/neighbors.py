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
#: Up to this many labels, neighbour pairs are marked in a (labels x labels) boolean matrix.
_MATRIX_LABELS = 4096


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


def _touching(labels: np.ndarray, size: int, distance: int):
    """Per label: neighbours within ``distance``, outline pixels, and outline pixels within
    ``distance + 0.5`` of another label (CellProfiler's PercentTouching numerator).

    Two labels are within a distance exactly when two of their outline pixels are (from an
    interior pixel, a step towards the other object stays inside and gets closer), and the
    relation is symmetric: each offset and its opposite are one search, from the outline
    pixels to the outline pixels at that offset, marking both ends. (CellProfiler's search
    window, the object's bounding box grown by the distance, holds every offset of the disk.)
    """
    outline = _outline(labels)
    pad = distance + 1
    h, w = labels.shape
    stride = w + 2 * pad
    target = np.zeros((h + 2 * pad, stride), dtype=np.int64 if size > 2**31 - 1 else np.int32)
    target[pad:pad + h, pad:pad + w] = np.where(outline, labels, 0)
    target = target.ravel()
    flat = np.flatnonzero(target)  # outline pixels, in the padded image
    own = target[flat]
    index = np.full(target.size, -1, dtype=np.int32 if flat.size < 2**31 else np.int64)
    index[flat] = np.arange(flat.size)
    touched = np.zeros(flat.size, bool)
    pairs = np.zeros((size, size), bool) if size <= _MATRIX_LABELS else None
    codes = []
    for dy, dx in _disk_offsets(distance + 0.5):
        if dy < 0 or (dy == 0 and dx < 0):
            continue  # the opposite offset finds the same pairs
        at = flat + (dy * stride + dx)
        value = target[at]
        hit = np.flatnonzero((value != own) & (value != 0))
        if hit.size == 0:
            continue
        touched[hit] = True
        touched[index[at[hit]]] = True
        if dy * dy + dx * dx <= distance * distance:
            a, b = own[hit], value[hit]
            if pairs is not None:
                pairs[a, b] = True
            else:
                codes.append(np.unique(a.astype(np.int64) * size + b))
    if pairs is None:
        pairs = np.zeros(0, np.int64) if not codes else np.unique(np.concatenate(codes))
        first, second = pairs // size, pairs % size
        both = np.unique(np.concatenate([first * size + second, second * size + first]))
        count = np.bincount(both // size, minlength=size).astype(np.float64)
    else:
        count = (pairs | pairs.T).sum(1).astype(np.float64)
    perimeter = np.bincount(own, minlength=size)
    overlap = np.bincount(own[touched], minlength=size)
    return count, perimeter, overlap


@register_family("Neighbors", columns=_columns, order=80,
                 defaults=NEIGHBORS_DEFAULTS)
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
    w = labels.shape[1]
    flat_labels = labels.ravel()
    pixels = np.flatnonzero(flat_labels)
    own_pixels = flat_labels[pixels]
    size = int(own_pixels.max()) + 1
    area = np.bincount(own_pixels, minlength=size)
    present_labels = np.flatnonzero(area)
    rows = objects.rows(present_labels)
    on_row = rows >= 0
    has = np.zeros(n, bool)
    has[rows[on_row]] = True

    count, perimeter, overlap = _touching(labels, size, distance)

    # Closest object centres (all objects of the label image): mean pixel coordinates.
    y, x = np.divmod(pixels, w)
    centres = np.stack([np.bincount(own_pixels, y, size), np.bincount(own_pixels, x, size)], 1)
    centres = centres[present_labels] / area[present_labels, None]
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
