"""The cells of one well summarised into one profile row.

Follows pycytominer's conventions (see :mod:`plateflow.profiles`): the cell count of a well is
``Metadata_Object_Count``, and each feature is summarised by its median (or mean) over the
well's cells.

The segmentation's per-object confidence columns (``<Compartment>_Segmentation_<Name>``) say
how sure the segmentation is of an object, not what the cell looks like: they are not
summarised as features (their median would be normalised and profiled like a phenotype).
Instead the well reports ``Metadata_Segmentation_LowConfidenceFraction``, the fraction of its
objects that some confidence column calls low (config ``segmentation_qc.low_confidence``:
column name or ``fnmatch`` pattern -> threshold; an object is low when any of its confidence
columns is below its threshold). A ``Metadata_`` column, so normalisation leaves it alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from plateflow.core.confidence import (
    DEFAULT_LOW_CONFIDENCE,
    is_segmentation_column,
    low_confidence_fraction,
)

logger = logging.getLogger(__name__)

__all__ = ["LOW_CONFIDENCE_FRACTION", "OPERATIONS", "aggregate_well"]

#: The per-feature summaries over a well's cells that ``aggregate.operation`` names.
OPERATIONS = ("median", "mean")
#: The well column with the fraction of low-confidence objects.
LOW_CONFIDENCE_FRACTION = "Metadata_Segmentation_LowConfidenceFraction"
def aggregate_well(
    cells: pd.DataFrame,
    *,
    features: Sequence[str],
    operation: str = "median",
    low_confidence: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Summarise the cells of one well.

    Parameters
    ----------
    cells : DataFrame
        One row per cell (may be empty).
    features : sequence of str
        Feature columns to summarise; missing ones come out NaN. Segmentation columns
        (:func:`is_segmentation_column`) are left out.
    operation : {"median", "mean"}
    low_confidence : mapping, optional
        Thresholds of the confidence columns (default :data:`DEFAULT_LOW_CONFIDENCE`).

    Returns
    -------
    dict
        ``Metadata_Object_Count``, :data:`LOW_CONFIDENCE_FRACTION` and one value per feature.
    """
    if operation not in OPERATIONS:
        raise ValueError(f"aggregate operation must be 'median' or 'mean', not '{operation}'")
    features = [f for f in features if not is_segmentation_column(f)]
    present = [f for f in features if f in cells.columns]
    if len(cells) and present:
        values = getattr(cells[present].astype("float64"), operation)(skipna=True)
    else:
        values = pd.Series(dtype="float64")
    out = {"Metadata_Object_Count": len(cells)}
    fraction = low_confidence_fraction(
        {c: cells[c].to_numpy() for c in cells.columns},
        DEFAULT_LOW_CONFIDENCE if low_confidence is None else low_confidence)
    out[LOW_CONFIDENCE_FRACTION] = np.nan if fraction is None else fraction
    for feature in features:
        value = values.get(feature, np.nan)
        out[feature] = float(value) if pd.notna(value) else np.nan
    return out
