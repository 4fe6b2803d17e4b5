"""Location: where each object is, and where its intensity is (CellProfiler's ``Location_*``).

``Center_X/Y`` = centroid of the compartment's pixels, ``Center_Z`` = 0 (written by
CellProfiler's object identification, Z included for a 2-D image). Per channel, as CellProfiler's MeasureObjectIntensity:
``CenterMassIntensity_X|Y|Z_<ch>`` = the intensity-weighted centre (NaN where the object's
integrated intensity is 0) and ``MaxIntensity_X|Y|Z_<ch>`` = the position of the object's
brightest pixel (the first in raster order when several are equally bright, as cp_measure).
0-based pixel coordinates, X = column, Y = row; Z is 0 for a 2-D image, as CellProfiler and
cp_measure write it. Columns are feature-major (``CenterMassIntensity_X_DNA``,
``CenterMassIntensity_X_ER``, ...). The work is shared with the Intensity family (see
:mod:`plateflow.features.intensity_stats`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from plateflow.features.intensity_stats import object_stats
from plateflow.features.registry import Images, Objects, register_family

__all__ = ["LOCATION_CHANNEL_FEATURES", "LOCATION_FEATURES", "location"]

LOCATION_FEATURES = ("Center_X", "Center_Y", "Center_Z")
LOCATION_CHANNEL_FEATURES = (
    "CenterMassIntensity_X",
    "CenterMassIntensity_Y",
    "CenterMassIntensity_Z",
    "MaxIntensity_X",
    "MaxIntensity_Y",
    "MaxIntensity_Z",
)


def _columns(channels: Sequence[str], params: Mapping) -> list[str]:
    return [*LOCATION_FEATURES,
            *(f"{f}_{ch}" for f in LOCATION_CHANNEL_FEATURES for ch in channels)]


@register_family("Location", columns=_columns, order=20)
def location(objects: Objects, images: Images, params: Mapping) -> dict[str, np.ndarray]:
    """Centroid, centre of mass and brightest pixel of each object in one compartment.

    Parameters
    ----------
    objects : Objects
        (Y, X) labels and the N object numbers (rows).
    images : Images
        (C, Y, X) float64 pixels and the channel names.
    params : mapping
        ``features.Location`` (no options).

    Returns
    -------
    dict of str to (N,) float64 ndarray
        NaN for an object without pixels.
    """
    stats = object_stats(objects, images)
    out = {"Center_X": stats.center_x, "Center_Y": stats.center_y,
           "Center_Z": np.where(np.isnan(stats.center_x), np.nan, 0.0)}
    for feature in LOCATION_CHANNEL_FEATURES:
        for c, ch in enumerate(images.channels):
            out[f"{feature}_{ch}"] = stats.channels[c][feature]
    return out
