"""AreaShape: CellProfiler's MeasureObjectSizeShape, as cp_measure 0.3.0 computes it.

The columns are CellProfiler's (``get_sizeshape`` with ``calculate_advanced``, ``get_feret``
and ``get_zernike`` of cp_measure; cp_measure's two extra ``new_features``, FilledArea and
PerimeterCrofton, are not CellProfiler's and are left out). The numbers are cp_measure's, which
takes most of them from scikit-image 0.26 ``regionprops``; here everything is computed for all
objects at once from the label image's row runs (:mod:`~plateflow.features.shape_runs`), their
convex hulls (:mod:`~plateflow.features.shape_hull`), an exact Euclidean distance transform
(:mod:`~plateflow.features.shape_radius`) and closed-form Zernike sums
(:mod:`~plateflow.features.shape_zernike`).

- ``Area`` pixel count; ``Perimeter`` scikit-image's (4-connected border, weighted by the
  border's local shape); ``FormFactor`` = 4*pi*Area/Perimeter**2 (NaN for a zero perimeter,
  where cp_measure divides by zero and writes inf); ``Compactness`` =
  Perimeter**2/max(4*pi*Area, 1), as CellProfiler (0 for a zero perimeter).
- ``ConvexArea`` = pixel centres inside or on the hull of the pixels' edge midpoints
  (scikit-image's ``convex_hull_image``); ``Solidity`` = Area/ConvexArea; ``Extent`` =
  Area/BoundingBoxArea; ``EulerNumber`` 8-connected objects minus holes;
  ``EquivalentDiameter`` = sqrt(4*Area/pi).
- ``MajorAxisLength``, ``MinorAxisLength``, ``Eccentricity``: the ellipse with the same
  second central moments. ``Orientation``: degrees in [-90, 90], the angle between the image's
  row (Y) axis and the major axis (scikit-image's orientation, which CellProfiler's documentation
  calls "between the x-axis and the major axis"); positive when the major axis turns from +Y
  towards +X. An object with equal row and column variance gets +-45 as in cp_measure.
  CellProfiler 4.0.6 wrote the same angle in radians in its tables.
- ``Center_X``/``Center_Y`` centroid; ``BoundingBoxMinimum_X|Y`` first column/row,
  ``BoundingBoxMaximum_X|Y`` last column/row + 1 (scikit-image's exclusive bound, as
  CellProfiler).
- ``MaximumRadius``, ``MeanRadius``, ``MedianRadius``: distance of each pixel to the nearest
  pixel outside the object (other objects and the image border count as outside).
- ``MinFeretDiameter``, ``MaxFeretDiameter``: smallest and largest caliper width of the convex
  hull of the pixel centres (0 and the length for a line, 0 and 0 for one pixel).
- ``SpatialMoment_p_q`` (p <= 2, q <= 3) in the bounding box's frame, ``CentralMoment_p_q``,
  ``NormalizedMoment_p_q`` (p, q <= 3; NaN for p + q < 2, as scikit-image), ``HuMoment_0..6``,
  ``InertiaTensor_i_j`` and ``InertiaTensorEigenvalues_0|1``; p is the power of the row.
- ``Zernike_n_m`` (n <= ``zernike_degree``): see :mod:`~plateflow.features.shape_zernike`
  (NaN for a one-pixel object, as cp_measure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from plateflow.features.registry import Images, Objects, register_family
from plateflow.features.shape_hull import (
    convex_areas,
    enclosing_circles,
    feret_diameters,
    pixel_hulls,
)
from plateflow.features.shape_radius import ObjectPixels, radii
from plateflow.features.shape_runs import Runs, euler_numbers, moments, perimeters
from plateflow.features.shape_zernike import zernike_indexes, zernike_moments

__all__ = ["BASIC_FEATURES", "DEFAULTS", "MOMENT_FEATURES", "SHAPE_FEATURES", "area_shape",
           "shape_columns"]

#: The features computed whatever the options.
BASIC_FEATURES = (
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
    "ConvexArea",
    "BoundingBoxMinimum_X",
    "BoundingBoxMaximum_X",
    "BoundingBoxMinimum_Y",
    "BoundingBoxMaximum_Y",
    "Center_X",
    "Center_Y",
    "MaximumRadius",
    "MeanRadius",
    "MedianRadius",
    "MinFeretDiameter",
    "MaxFeretDiameter",
)

#: CellProfiler's "advanced" features (``advanced: true``), in cp_measure's order.
MOMENT_FEATURES = (
    *(f"SpatialMoment_{p}_{q}" for p in range(3) for q in range(4)),
    *(f"CentralMoment_{p}_{q}" for p in range(3) for q in range(4)),
    *(f"NormalizedMoment_{p}_{q}" for p in range(4) for q in range(4)),
    *(f"HuMoment_{k}" for k in range(7)),
    "InertiaTensor_0_0",
    "InertiaTensor_0_1",
    "InertiaTensor_1_0",
    "InertiaTensor_1_1",
    "InertiaTensorEigenvalues_0",
    "InertiaTensorEigenvalues_1",
)

#: ``features.AreaShape`` options (the schema holds the same defaults).
DEFAULTS = {"advanced": True, "zernike": True, "zernike_degree": 9}


def shape_columns(channels: Sequence[str], params: Mapping) -> list[str]:
    """AreaShape's column names (without ``<Compartment>_AreaShape_``) for ``params``."""
    params = {**DEFAULTS, **params}
    names = list(BASIC_FEATURES)
    if params["advanced"]:
        names += MOMENT_FEATURES
    if params["zernike"]:
        names += [f"Zernike_{n}_{m}" for n, m in zernike_indexes(int(params["zernike_degree"]))]
    return names


#: Every column with the default options.
SHAPE_FEATURES = tuple(shape_columns((), DEFAULTS))


def _hu(nu: np.ndarray) -> np.ndarray:
    """(M, 7) Hu invariants from (M, 4, 4) normalized central moments."""
    n20, n02, n11 = nu[:, 2, 0], nu[:, 0, 2], nu[:, 1, 1]
    n30, n03, n21, n12 = nu[:, 3, 0], nu[:, 0, 3], nu[:, 2, 1], nu[:, 1, 2]
    a, b = n30 + n12, n21 + n03
    return np.column_stack([
        n20 + n02,
        (n20 - n02) ** 2 + 4 * n11**2,
        (n30 - 3 * n12) ** 2 + (3 * n21 - n03) ** 2,
        a**2 + b**2,
        (n30 - 3 * n12) * a * (a**2 - 3 * b**2) + (3 * n21 - n03) * b * (3 * a**2 - b**2),
        (n20 - n02) * (a**2 - b**2) + 4 * n11 * a * b,
        (3 * n21 - n03) * a * (a**2 - 3 * b**2) - (n30 - 3 * n12) * b * (3 * a**2 - b**2),
    ])


def _moment_features(raw: np.ndarray, central: np.ndarray) -> dict[str, np.ndarray]:
    """Ellipse, moment and inertia features from (M, 4, 4) raw and central moments."""
    mu00 = central[:, 0, 0]
    a, b, c = central[:, 2, 0] / mu00, central[:, 1, 1] / mu00, central[:, 0, 2] / mu00
    half_trace = (a + c) / 2
    disc = np.sqrt(((c - a) / 2) ** 2 + b**2)
    major = np.clip(half_trace + disc, 0.0, None)
    minor = np.clip(half_trace - disc, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        eccentricity = np.where(major == 0, 0.0, np.sqrt(1 - minor / major))
    # cp_measure: tensor [[c, -b], [-b, a]]; a == c falls back to +-pi/4
    orientation = np.where(a - c == 0, np.where(-b < 0, np.pi / 4, -np.pi / 4),
                           0.5 * np.arctan2(2 * b, a - c))
    out = {
        "MajorAxisLength": 4 * np.sqrt(major),
        "MinorAxisLength": 4 * np.sqrt(minor),
        "Eccentricity": eccentricity,
        "Orientation": orientation * (180 / np.pi),
    }
    nu = np.full(central.shape, np.nan)
    for p in range(4):
        for q in range(4):
            if p + q >= 2:
                nu[:, p, q] = central[:, p, q] / mu00 ** ((p + q) / 2 + 1)
    for p in range(4):
        for q in range(4):
            if p < 3:
                out[f"SpatialMoment_{p}_{q}"] = raw[:, p, q]
                out[f"CentralMoment_{p}_{q}"] = central[:, p, q]
            out[f"NormalizedMoment_{p}_{q}"] = nu[:, p, q]
    for k, values in enumerate(_hu(nu).T):
        out[f"HuMoment_{k}"] = values
    out.update({"InertiaTensor_0_0": c, "InertiaTensor_0_1": -b, "InertiaTensor_1_0": -b,
                "InertiaTensor_1_1": a, "InertiaTensorEigenvalues_0": major,
                "InertiaTensorEigenvalues_1": minor})
    return out


def _measure(labels: np.ndarray, runs: Runs, lut: np.ndarray, params: Mapping
             ) -> dict[str, np.ndarray]:
    """Every AreaShape feature of the objects that have pixels (table rows ``runs.rows``);
    ``lut`` maps each label value to its index among them (-1: none)."""
    m = runs.m
    top, left, bottom, right = runs.bbox()
    raw, central = moments(runs, top, left)
    out = _moment_features(raw, central)
    area = raw[:, 0, 0]
    px = ObjectPixels.from_labels(labels, lut)
    border = px.pixels[px.edge == 1]
    perimeter = perimeters(px.tags, border, px.width, m)
    obj, row, first, last = runs.row_extremes()
    convex = convex_areas(obj, row, first, last, top, bottom - 1).astype(np.float64)
    _, vrow, vcol, count = pixel_hulls(obj, row, first, last, m)
    bbox_area = ((bottom - top) * (right - left)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["FormFactor"] = np.where(perimeter > 0, 4 * np.pi * area / perimeter**2, np.nan)
    out["MinFeretDiameter"], out["MaxFeretDiameter"] = feret_diameters(vrow, vcol, count)
    out["MaximumRadius"], out["MeanRadius"], out["MedianRadius"] = radii(px, m)
    out.update({
        "Area": area,
        "Perimeter": perimeter,
        "Compactness": perimeter**2 / np.maximum(4 * np.pi * area, 1),
        "Solidity": area / convex,
        "Extent": area / bbox_area,
        "EquivalentDiameter": np.sqrt(4 * area / np.pi),
        "EulerNumber": euler_numbers(px.tags, border, px.width, m),
        "BoundingBoxArea": bbox_area,
        "ConvexArea": convex,
        "BoundingBoxMinimum_X": left,
        "BoundingBoxMaximum_X": right,
        "BoundingBoxMinimum_Y": top,
        "BoundingBoxMaximum_Y": bottom,
        "Center_X": left + raw[:, 0, 1] / area,
        "Center_Y": top + raw[:, 1, 0] / area,
    })
    if params["zernike"]:
        degree = int(params["zernike_degree"])
        centres, circle = enclosing_circles(vrow, vcol, count)
        scores = zernike_moments(runs, centres, circle, degree)
        for k, (n, mm) in enumerate(zernike_indexes(degree)):
            out[f"Zernike_{n}_{mm}"] = scores[:, k]
    return out


@register_family("AreaShape", columns=shape_columns, order=10, defaults=DEFAULTS)
def area_shape(objects: Objects, images: Images, params: Mapping) -> dict[str, np.ndarray]:
    """AreaShape features of one compartment.

    Parameters
    ----------
    objects : Objects
        (Y, X) labels and the N object numbers (rows).
    images : Images
        Unused (shape only).
    params : mapping
        ``features.AreaShape``: ``advanced`` (moments and inertia tensor), ``zernike`` and
        ``zernike_degree``.

    Returns
    -------
    dict of str to (N,) float64 ndarray
        NaN for an object without pixels in the compartment.
    """
    params = {**DEFAULTS, **params}
    names = shape_columns(images.channels, params)
    out = {name: np.full(objects.n, np.nan) for name in names}
    if objects.n == 0:
        return out
    labels = objects.labels
    lut = np.full(max(int(labels.max(initial=0)), int(objects.numbers.max())) + 1, -1, np.int64)
    lut[objects.numbers] = np.arange(objects.n)
    runs = Runs.from_labels(labels, lut)
    if runs.m == 0:
        return out
    present = np.full(lut.size, -1, np.int64)
    present[objects.numbers[runs.rows]] = np.arange(runs.m)
    values = _measure(labels, runs, present, params)
    for name in names:
        out[name][runs.rows] = values[name]
    return out
