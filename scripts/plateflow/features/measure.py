"""One row per cell: every enabled feature family over the Nuclei, Cells and Cytoplasm labels.

Column names follow CellProfiler, ``<Compartment>_<Family>_<Feature>[_<Channel>]`` (for
example ``Nuclei_AreaShape_Area``, ``Cells_Location_Center_X``,
``Cytoplasm_Intensity_MeanIntensity_DNA``), after ``ObjectNumber``;
:func:`feature_columns` gives the exact list. A compartment with no pixels for an object (e.g.
a cell whose nucleus fills it has no cytoplasm) gives NaN for all that compartment's features;
the row is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd

from plateflow.features.registry import Images, Objects, enabled_families

logger = logging.getLogger(__name__)

__all__ = ["COMPARTMENTS", "OBJECT_NUMBER", "SiteLabels", "feature_columns", "measure_objects"]

COMPARTMENTS = ("Nuclei", "Cells", "Cytoplasm")
#: The object id column, CellProfiler's own name (its per-object tables have ``ObjectNumber``;
#: pycytominer treats it as neither metadata nor a feature).
OBJECT_NUMBER = "ObjectNumber"


class _Labelled(Protocol):
    nuclei: np.ndarray
    cells: np.ndarray
    cytoplasm: np.ndarray


class SiteLabels(NamedTuple):
    """A site's label images, each (Y, X) int, sharing label numbers."""

    nuclei: np.ndarray
    cells: np.ndarray
    cytoplasm: np.ndarray


def feature_columns(channels: Sequence[str], *, params: Mapping | None = None) -> list[str]:
    """Exact, ordered column list of :func:`measure_objects` for these channels.

    Parameters
    ----------
    channels : sequence of str
        Channel names, in image order.
    params : mapping, optional
        The ``features:`` config section (which families are enabled); None: all families.

    Returns
    -------
    list of str
        ``ObjectNumber``, then per compartment (Nuclei, Cells, Cytoplasm) the columns
        of each enabled family in family order (AreaShape, Location, Intensity, ...).
    """
    _check_channels(channels)
    families = enabled_families(params)
    columns = [OBJECT_NUMBER]
    for compartment in COMPARTMENTS:
        for family, section in families:
            prefix = f"{compartment}_{family.name}_"
            columns += [prefix + c for c in family.columns(list(channels), section)]
    return columns


def measure_objects(
    image: np.ndarray, channels: Sequence[str], seg: _Labelled, *, params: Mapping | None = None,
    dtype: type = np.float64,
) -> pd.DataFrame:
    """Measure every cell's nucleus, cell and cytoplasm with every enabled feature family.

    Parameters
    ----------
    image : (C, Y, X) float ndarray
        Preprocessed site image, intensities in [0, 1].
    channels : sequence of str
        Channel names, one per plane of ``image``.
    seg : Segmentation or SiteLabels
        Anything with int label images ``nuclei``, ``cells``, ``cytoplasm`` of shape (Y, X)
        sharing label numbers.
    params : mapping, optional
        The ``features:`` config section; None: every family with its defaults.
    dtype : numpy dtype
        Of the feature columns (families compute in float64; the batch job stores float32).

    Returns
    -------
    pandas.DataFrame
        One row per object number present in ``nuclei`` or ``cells`` (sorted ascending), columns
        :func:`feature_columns` (``ObjectNumber`` int64, all features ``dtype``). With no
        objects: an empty frame with the same columns and dtypes.
    """
    image = np.asarray(image)
    _check_channels(channels)
    channels = list(channels)
    if image.ndim != 3 or image.shape[0] != len(channels):
        raise ValueError(
            f"measure_objects expects a (channels, Y, X) image with {len(channels)} channels "
            f"({channels}); got shape {image.shape}"
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

    families = enabled_families(params)
    columns = feature_columns(channels, params=params)
    numbers = _object_numbers(labels["Nuclei"], labels["Cells"]).astype(np.int64)
    # One (N, features) block: a frame of thousands of separate columns is slow to build.
    block = np.empty((numbers.size, len(columns) - 1), dtype=dtype)
    if numbers.size:
        images = Images(image.astype(np.float64, copy=False), tuple(channels))
        at = 0
        for compartment in COMPARTMENTS:
            objects = Objects(labels[compartment], numbers)
            for family, section in families:
                values = family.measure(objects, images, section)
                expected = family.columns(channels, section)
                if list(values) != expected:
                    raise RuntimeError(f"feature family {family.name} returned columns "
                                       f"{list(values)}, but lists {expected}")
                for value in values.values():
                    block[:, at] = value
                    at += 1
    frame = pd.DataFrame(block, columns=columns[1:])
    frame.insert(0, OBJECT_NUMBER, numbers)
    return frame


def _check_channels(channels: Sequence[str]) -> None:
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
