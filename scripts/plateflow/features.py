"""Per-object features (CellProfiler MeasureObjectSizeShape / MeasureObjectIntensity subset).

:func:`measure_objects` turns a :class:`plateflow.segmentation.Segmentation` and the site image
into one row per cell. Column names follow CellProfiler:
``<Compartment>_AreaShape_<Feature>``, ``<Compartment>_Location_Center_X|Y`` and
``<Compartment>_Intensity_<Feature>_<Channel>``; :func:`feature_columns` gives the exact list.

Definitions (CellProfiler 4 where known; assumptions stated):

* Shape features come from :func:`skimage.measure.regionprops_table`, as in CellProfiler 4:
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
* ``Location_Center_X/Y`` = centroid of the compartment's pixels, 0-based pixel coordinates
  (X = column, Y = row), like CellProfiler.
* Intensities are the image values as given (preprocessed, 0..1). ``IntegratedIntensity`` = sum,
  ``MeanIntensity``, ``StdIntensity`` (population SD, ddof=0), ``Min``/``MaxIntensity``;
  ``LowerQuartile``/``Median``/``UpperQuartileIntensity`` use CellProfiler's quantile rule: with
  the n pixel values sorted (0-based), position q*n, linearly interpolated between the two
  neighbouring values (the last value when there is no upper neighbour). This is not numpy's
  default (which uses q*(n-1)). ``MADIntensity`` = the same median of |value - median|
  (unscaled, as CellProfiler).
* A compartment with no pixels for an object (e.g. a cell whose nucleus fills it has no
  cytoplasm) gives NaN for all that compartment's features; the row is kept.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import pandas as pd
from skimage.measure import regionprops_table

logger = logging.getLogger(__name__)

COMPARTMENTS = ("Nuclei", "Cells", "Cytoplasm")
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
LOCATION_FEATURES = ("Center_X", "Center_Y")
INTENSITY_FEATURES = (
    "IntegratedIntensity",
    "MeanIntensity",
    "StdIntensity",
    "MinIntensity",
    "MaxIntensity",
    "MedianIntensity",
    "LowerQuartileIntensity",
    "UpperQuartileIntensity",
    "MADIntensity",
)
OBJECT_NUMBER = "Metadata_ObjectNumber"

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


class _Labelled(Protocol):
    nuclei: np.ndarray
    cells: np.ndarray
    cytoplasm: np.ndarray


def feature_columns(channels: list[str]) -> list[str]:
    """Exact, ordered column list of :func:`measure_objects` for these channels.

    Parameters
    ----------
    channels : list of str
        Channel names, in image order.

    Returns
    -------
    list of str
        ``Metadata_ObjectNumber``, then per compartment (Nuclei, Cells, Cytoplasm): the AreaShape
        features, ``Location_Center_X``, ``Location_Center_Y``, then each intensity feature for
        each channel (feature-major).
    """
    _check_channels(channels)
    columns = [OBJECT_NUMBER]
    for compartment in COMPARTMENTS:
        columns += [f"{compartment}_AreaShape_{f}" for f in SHAPE_FEATURES]
        columns += [f"{compartment}_Location_{f}" for f in LOCATION_FEATURES]
        columns += [
            f"{compartment}_Intensity_{f}_{ch}" for f in INTENSITY_FEATURES for ch in channels
        ]
    return columns


def measure_objects(image: np.ndarray, channels: list[str], seg: _Labelled) -> pd.DataFrame:
    """Measure shape, location and intensity of every cell's nucleus, cell and cytoplasm.

    Parameters
    ----------
    image : (C, Y, X) float ndarray
        Preprocessed site image, intensities in [0, 1].
    channels : list of str
        Channel names, one per plane of ``image``.
    seg : Segmentation
        Anything with int label images ``nuclei``, ``cells``, ``cytoplasm`` of shape (Y, X)
        sharing label numbers.

    Returns
    -------
    pandas.DataFrame
        One row per object number present in ``nuclei`` or ``cells`` (sorted ascending), columns
        :func:`feature_columns` (``Metadata_ObjectNumber`` int64, all features float64). With no
        objects: an empty frame with the same columns and dtypes.
    """
    image = np.asarray(image)
    _check_channels(channels)
    if image.ndim != 3 or image.shape[0] != len(channels):
        raise ValueError(
            f"measure_objects expects a (channels, Y, X) image with {len(channels)} channels "
            f"({list(channels)}); got shape {image.shape}"
        )
    labels = {
        "Nuclei": np.asarray(seg.nuclei),
        "Cells": np.asarray(seg.cells),
        "Cytoplasm": np.asarray(seg.cytoplasm),
    }
    for name, lab in labels.items():
        if lab.shape != image.shape[1:]:
            raise ValueError(
                f"The {name} label image has shape {lab.shape}, but the image planes are "
                f"{image.shape[1:]}"
            )
        if lab.size and lab.min() < 0:
            raise ValueError(f"The {name} label image has negative labels")

    object_numbers = _object_numbers(labels["Nuclei"], labels["Cells"])
    n = object_numbers.size
    columns = feature_columns(channels)
    data: dict[str, np.ndarray] = {OBJECT_NUMBER: object_numbers.astype(np.int64)}
    if n:
        image64 = image.astype(np.float64, copy=False)
        for compartment in COMPARTMENTS:
            lab = labels[compartment]
            data.update(_shape_features(lab, object_numbers, compartment))
            data.update(_intensity_features(lab, image64, channels, object_numbers, compartment))
    else:
        data.update({c: np.empty(0, np.float64) for c in columns[1:]})
    frame = pd.DataFrame(data, columns=columns)
    return frame.astype({c: np.float64 for c in columns[1:]} | {OBJECT_NUMBER: np.int64})


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _check_channels(channels: list[str]) -> None:
    names = list(channels)
    if any(not isinstance(c, str) or not c for c in names):
        raise ValueError(f"Channel names must be non-empty strings; got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"Channel names must be unique; got {names}")


def _object_numbers(nuclei: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Sorted label numbers present in nuclei or cells."""
    top = int(max(nuclei.max(initial=0), cells.max(initial=0)))
    present = np.bincount(nuclei.ravel(), minlength=top + 1) > 0
    present |= np.bincount(cells.ravel(), minlength=top + 1) > 0
    present[0] = False
    return np.flatnonzero(present)


def _row_lookup(object_numbers: np.ndarray, top_label: int) -> np.ndarray:
    """Array mapping label -> row index in ``object_numbers`` (-1 where absent)."""
    size = max(top_label, int(object_numbers[-1])) + 1
    lut = np.full(size, -1, dtype=np.int64)
    lut[object_numbers] = np.arange(object_numbers.size)
    return lut


def _shape_features(
    lab: np.ndarray, object_numbers: np.ndarray, compartment: str
) -> dict[str, np.ndarray]:
    n = object_numbers.size
    out = {f"{compartment}_AreaShape_{f}": np.full(n, np.nan) for f in SHAPE_FEATURES}
    out |= {f"{compartment}_Location_{f}": np.full(n, np.nan) for f in LOCATION_FEATURES}
    if lab.max(initial=0) == 0:
        return out
    props = regionprops_table(lab, properties=("label", "centroid", *_REGIONPROPS))
    lut = _row_lookup(object_numbers, int(lab.max()))
    rows = lut[props["label"]]
    keep = rows >= 0  # labels in a compartment but not in nuclei/cells are ignored
    rows = rows[keep]

    def put(name: str, values: np.ndarray) -> None:
        out[f"{compartment}_AreaShape_{name}"][rows] = np.asarray(values, np.float64)[keep]

    for prop, name in _REGIONPROPS.items():
        put(name, props[prop])
    area = np.asarray(props["area"], np.float64)
    perimeter = np.asarray(props["perimeter"], np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        put("FormFactor", np.where(perimeter > 0, 4 * np.pi * area / perimeter**2, np.nan))
        put("Compactness", np.where(perimeter > 0, perimeter**2 / (4 * np.pi * area), np.nan))
    put("Orientation", np.degrees(props["orientation"]))
    out[f"{compartment}_Location_Center_X"][rows] = props["centroid-1"][keep]
    out[f"{compartment}_Location_Center_Y"][rows] = props["centroid-0"][keep]
    return out


def _intensity_features(
    lab: np.ndarray,
    image: np.ndarray,
    channels: list[str],
    object_numbers: np.ndarray,
    compartment: str,
) -> dict[str, np.ndarray]:
    n = object_numbers.size
    out = {
        f"{compartment}_Intensity_{f}_{ch}": np.full(n, np.nan)
        for f in INTENSITY_FEATURES
        for ch in channels
    }
    flat = lab.ravel()
    pixels = np.flatnonzero(flat)
    if pixels.size == 0:
        return out
    lut = _row_lookup(object_numbers, int(flat.max()))
    rows = lut[flat[pixels]]
    if (rows < 0).any():
        keep = rows >= 0
        pixels, rows = pixels[keep], rows[keep]
    # Group pixels by object once (order within an object is irrelevant, so no stable sort);
    # within-object sorting by value is then done per channel below.
    by_row = np.argsort(rows)
    pixels, rows = pixels[by_row], rows[by_row]
    counts = np.bincount(rows, minlength=n)
    present = counts > 0
    starts = np.cumsum(counts) - counts

    for c, ch in enumerate(channels):
        values = image[c].ravel()[pixels]
        total = np.bincount(rows, weights=values, minlength=n)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = total / counts
            deviation = values - mean[rows]
            std = np.sqrt(np.bincount(rows, weights=deviation**2, minlength=n) / counts)
        ordered = values[_sort_within_groups(rows, values)]
        lower = _cp_quantile(ordered, starts, counts, 0.25)
        median = _cp_quantile(ordered, starts, counts, 0.5)
        upper = _cp_quantile(ordered, starts, counts, 0.75)
        abs_dev = np.abs(values - median[rows])
        mad = _cp_quantile(abs_dev[_sort_within_groups(rows, abs_dev)], starts, counts, 0.5)
        minimum = np.full(n, np.nan)
        maximum = np.full(n, np.nan)
        minimum[present] = ordered[starts[present]]
        maximum[present] = ordered[starts[present] + counts[present] - 1]
        stats = {
            "IntegratedIntensity": np.where(present, total, np.nan),
            "MeanIntensity": mean,
            "StdIntensity": std,
            "MinIntensity": minimum,
            "MaxIntensity": maximum,
            "MedianIntensity": median,
            "LowerQuartileIntensity": lower,
            "UpperQuartileIntensity": upper,
            "MADIntensity": mad,
        }
        for feature, value in stats.items():
            out[f"{compartment}_Intensity_{feature}_{ch}"] = value
    return out


def _sort_within_groups(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Permutation that sorts ``values`` within each group of ``rows`` (rows already sorted).

    scipy.ndimage has per-label sums/min/max but no per-label quantiles, and
    ``ndimage.labeled_comprehension`` is a Python-level loop over objects (slow with hundreds of
    cells x channels x compartments). Instead one argsort of the composite key
    ``row + scaled value`` (value rescaled to [0, 0.5]) orders pixels by object, then by value.
    In float64 the key keeps ~2**-38 relative resolution for up to ~16000 objects; values closer
    than that may swap, which changes no quantile by more than that amount.
    """
    lo = float(values.min())
    span = float(values.max()) - lo
    if span > 0:
        key = rows + (values - lo) * (0.5 / span)
    else:
        key = rows.astype(np.float64)
    # Equal keys mean equal values, so an unstable (faster, SIMD) sort is fine.
    return np.argsort(key)


def _cp_quantile(
    ordered: np.ndarray, starts: np.ndarray, counts: np.ndarray, fraction: float
) -> np.ndarray:
    """Per-group quantile of group-sorted values, CellProfiler's rule (see module docstring)."""
    result = np.full(counts.shape, np.nan)
    present = counts > 0
    position = starts + counts * fraction
    index = np.floor(position).astype(np.int64)
    frac = position - index
    interpolate = present & (index < starts + counts - 1)
    i = index[interpolate]
    f = frac[interpolate]
    result[interpolate] = ordered[i] * (1 - f) + ordered[i + 1] * f
    last = present & ~interpolate
    result[last] = ordered[index[last]]
    return result
