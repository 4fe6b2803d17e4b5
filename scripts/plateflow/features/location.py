"""Location: where each object is (CellProfiler's ``Location_Center_X|Y``).

``Center_X/Y`` = centroid of the compartment's pixels, 0-based pixel coordinates (X = column,
Y = row), like CellProfiler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from plateflow.features.registry import Images, Objects, register_family

__all__ = ["LOCATION_FEATURES", "location"]

LOCATION_FEATURES = ("Center_X", "Center_Y")


def _columns(channels: Sequence[str], params: Mapping) -> list[str]:
    return list(LOCATION_FEATURES)


@register_family("Location", columns=_columns, order=20)
def location(objects: Objects, images: Images, params: Mapping) -> dict[str, np.ndarray]:
    """Centroid of each object in one compartment.

    Parameters
    ----------
    objects : Objects
        (Y, X) labels and the N object numbers (rows).
    images : Images
        Unused.
    params : mapping
        ``features.Location`` (no options).

    Returns
    -------
    dict of str to (N,) float64 ndarray
    """
    out = {name: np.full(objects.n, np.nan) for name in LOCATION_FEATURES}
    found = objects.regionprops(("centroid",))
    if found is None:
        return out
    props, rows, keep = found
    out["Center_X"][rows] = props["centroid-1"][keep]
    out["Center_Y"][rows] = props["centroid-0"][keep]
    return out
