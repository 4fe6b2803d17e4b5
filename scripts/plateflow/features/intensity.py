"""Intensity: CellProfiler's MeasureObjectIntensity statistics of each object, per channel.

Intensities are the image values as given (corrected, 0..1). ``IntegratedIntensity`` = sum,
``MeanIntensity``, ``StdIntensity`` (population SD, ddof=0), ``Min``/``MaxIntensity``;
``LowerQuartile``/``Median``/``UpperQuartileIntensity`` use CellProfiler's quantile rule: with
the n pixel values sorted (0-based), position q*n, linearly interpolated between the two
neighbouring values (the last value when there is no upper neighbour). This is not numpy's
default (which uses q*(n-1)); cp_measure calls it ``legacy=True``. ``MADIntensity`` = the same
median of |value - median| (unscaled, as CellProfiler). The five ``*IntensityEdge`` statistics
are the same over the object's edge pixels: pixels with a 4-connected neighbour of another
label or background inside the image (CellProfiler's ``find_boundaries(mode="inner")``; the
image border itself is not an edge). ``MassDisplacement`` = distance between the object's
centroid and its intensity-weighted centre, in pixels. Columns are ``<Feature>_<Channel>``,
feature-major. The work is shared with the Location family (see
:mod:`plateflow.features.intensity_stats`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from plateflow.features.intensity_stats import object_stats
from plateflow.features.registry import Images, Objects, register_family

__all__ = ["INTENSITY_FEATURES", "intensity"]

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
    "IntegratedIntensityEdge",
    "MeanIntensityEdge",
    "StdIntensityEdge",
    "MinIntensityEdge",
    "MaxIntensityEdge",
    "MassDisplacement",
)

def _columns(channels: Sequence[str], params: Mapping) -> list[str]:
    return [f"{f}_{ch}" for f in INTENSITY_FEATURES for ch in channels]


@register_family("Intensity", columns=_columns, order=30)
def intensity(objects: Objects, images: Images, params: Mapping) -> dict[str, np.ndarray]:
    """Intensity statistics of each object of one compartment, per channel.

    Parameters
    ----------
    objects : Objects
        (Y, X) labels and the N object numbers (rows).
    images : Images
        (C, Y, X) float64 pixels and the channel names.
    params : mapping
        ``features.Intensity`` (no options).

    Returns
    -------
    dict of str to (N,) float64 ndarray
        NaN for an object without pixels; edge statistics NaN for an object without edge
        pixels (only one filling the whole image); ``MassDisplacement`` NaN where the
        integrated intensity is 0.
    """
    stats = object_stats(objects, images).channels
    return {f"{feature}_{ch}": stats[c][feature]
            for feature in INTENSITY_FEATURES for c, ch in enumerate(images.channels)}
