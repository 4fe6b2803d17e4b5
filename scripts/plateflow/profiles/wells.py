"""The cells of one well summarised into one profile row.

Follows pycytominer's conventions (see :mod:`plateflow.profiles`): the cell count of a well is
``Metadata_Object_Count``, and each feature is summarised by its median (or mean) over the
well's cells.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["OPERATIONS", "aggregate_well"]

#: The per-feature summaries over a well's cells that ``aggregate.operation`` names.
OPERATIONS = ("median", "mean")


def aggregate_well(
    cells: pd.DataFrame,
    *,
    features: Sequence[str],
    operation: str = "median",
) -> dict[str, float]:
    """Summarise the cells of one well.

    Parameters
    ----------
    cells : DataFrame
        One row per cell (may be empty).
    features : sequence of str
        Feature columns to summarise; missing ones come out NaN.
    operation : {"median", "mean"}

    Returns
    -------
    dict
        ``Metadata_Object_Count`` and one value per feature.
    """
    if operation not in OPERATIONS:
        raise ValueError(f"aggregate operation must be 'median' or 'mean', not '{operation}'")
    present = [f for f in features if f in cells.columns]
    if len(cells) and present:
        values = getattr(cells[present].astype("float64"), operation)(skipna=True)
    else:
        values = pd.Series(dtype="float64")
    out = {"Metadata_Object_Count": len(cells)}
    for feature in features:
        value = values.get(feature, np.nan)
        out[feature] = float(value) if pd.notna(value) else np.nan
    return out
