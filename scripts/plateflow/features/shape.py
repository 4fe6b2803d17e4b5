"""AreaShape: size and shape of each object (CellProfiler MeasureObjectSizeShape subset).

Features come from :func:`skimage.measure.regionprops_table`, as in CellProfiler 4:
``Area`` = pixel count, ``Perimeter`` = skimage's perimeter (4-connected boundary estimate),
``FormFactor`` = 4*pi*Area/Perimeter**2, ``Compactness`` = Perimeter**2/(4*pi*Area) (the
inverse of FormFactor; CellProfiler's exported ExampleHuman tables satisfy exactly this),
``Eccentricity``, ``Solidity``, ``Extent``, ``MajorAxisLength``/``MinorAxisLength``
(ellipse with the same second moments), ``EquivalentDiameter`` = diameter of the disk with the
same area, ``EulerNumber`` (8-connected objects), ``BoundingBoxArea``.
``Orientation`` is skimage's orientation converted to degrees, in [-90, 90]: the angle between
the image's row (Y) axis and the major axis. CellProfiler's documentation promises degrees;
the CellProfiler 4 tables shipped with the test data hold the same quantity in radians.
FormFactor/Compactness are NaN for objects with zero perimeter (a single pixel).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from plateflow.features.registry import Images, Objects, register_family

__all__ = ["SHAPE_FEATURES", "area_shape"]

SHAPE_FEATURES = (
    "Area",
    "Perimeter",
    "FormFactor",
    "Compactness",
    "Eccentricity",
    "Solidity",
    "Extent",
    "MajorAxisLength",
    "MinorAxisLength",
    "Orientation",
    "EquivalentDiameter",
    "EulerNumber",
    "BoundingBoxArea",
)

# skimage regionprops property -> CellProfiler AreaShape name (the rest are derived).
_REGIONPROPS = {
    "area": "Area",
    "perimeter": "Perimeter",
    "eccentricity": "Eccentricity",
    "solidity": "Solidity",
    "extent": "Extent",
    "axis_major_length": "MajorAxisLength",
    "axis_minor_length": "MinorAxisLength",
    "orientation": "Orientation",
    "equivalent_diameter_area": "EquivalentDiameter",
    "euler_number": "EulerNumber",
    "area_bbox": "BoundingBoxArea",
}


def _columns(channels: Sequence[str], params: Mapping) -> list[str]:
    return list(SHAPE_FEATURES)


@register_family("AreaShape", columns=_columns, order=10)
def area_shape(objects: Objects, images: Images, params: Mapping) -> dict[str, np.ndarray]:
    """AreaShape features of one compartment.

    Parameters
    ----------
    objects : Objects
        (Y, X) labels and the N object numbers (rows).
    images : Images
        Unused.
    params : mapping
        ``features.AreaShape`` (no options).

    Returns
    -------
    dict of str to (N,) float64 ndarray
    """
    out = {name: np.full(objects.n, np.nan) for name in SHAPE_FEATURES}
    found = objects.regionprops(tuple(_REGIONPROPS))
    if found is None:
        return out
    props, rows, keep = found

    def put(name: str, values: np.ndarray) -> None:
        out[name][rows] = np.asarray(values, np.float64)[keep]

    for prop, name in _REGIONPROPS.items():
        put(name, props[prop])
    area = np.asarray(props["area"], np.float64)
    perimeter = np.asarray(props["perimeter"], np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        put("FormFactor", np.where(perimeter > 0, 4 * np.pi * area / perimeter**2, np.nan))
        put("Compactness", np.where(perimeter > 0, perimeter**2 / (4 * np.pi * area), np.nan))
    put("Orientation", np.degrees(props["orientation"]))
    return out
