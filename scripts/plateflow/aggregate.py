"""Cells to wells, wells to normalised plate profiles.

Follows pycytominer's conventions so its tools run on our tables unchanged: metadata columns
start with ``Metadata_``, everything else is a feature, and the cell count of a well is
``Metadata_Object_Count``. We do not call pycytominer itself: its ``aggregate``/``normalize``
pull in a large dependency tree for two short, well-defined operations (a per-well median and a
robust z-score against the plate's negative controls), which are written and tested here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["MAD_SCALE", "aggregate_well", "feature_columns_of", "normalize_plate"]

#: Scales the median absolute deviation to the standard deviation of a normal distribution.
MAD_SCALE = 1.4826


def feature_columns_of(table: pd.DataFrame) -> list[str]:
    """Feature columns: every column that is not ``Metadata_*``."""
    return [c for c in table.columns if not c.startswith("Metadata_")]


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
    if operation not in ("median", "mean"):
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


def normalize_plate(
    wells: pd.DataFrame,
    *,
    control_role: str = "negative_control",
    method: str = "robust_z",
    plate: str = "",
) -> pd.DataFrame:
    """Normalise a plate's well profiles against its control wells.

    ``robust_z``: (x - median of controls) / (1.4826 * MAD of controls), per feature. A feature
    whose controls have no spread (MAD = 0) becomes NaN rather than infinite.
    ``standardize``: the same with mean and standard deviation.

    Parameters
    ----------
    wells : DataFrame
        One row per well of ONE plate, with ``Metadata_Role``.
    control_role : str
        Role of the wells that define "normal".
    method : {"robust_z", "standardize"}

    Raises
    ------
    ValueError
        If the plate has no control well with a measured cell.
    """
    if method not in ("robust_z", "standardize"):
        raise ValueError(f"normalize method must be 'robust_z' or 'standardize', not '{method}'")
    features = feature_columns_of(wells)
    controls = wells[(wells["Metadata_Role"] == control_role) & (wells["Metadata_Object_Count"] > 0)]
    if controls.empty:
        raise ValueError(
            f"plate {plate}: no '{control_role}' well with cells to normalise against "
            f"(control wells: {', '.join(wells.loc[wells['Metadata_Role'] == control_role, 'Metadata_Well']) or 'none'})"
        )
    values = wells[features].astype("float64")
    reference = controls[features].astype("float64")
    if method == "robust_z":
        centre = reference.median()
        spread = MAD_SCALE * (reference - centre).abs().median()
    else:
        centre = reference.mean()
        spread = reference.std(ddof=1)
    spread = spread.where(spread > 0)
    flat = spread.index[spread.isna()].tolist()
    if flat:
        logger.warning(
            "plate %s: %d feature(s) do not vary across control wells and are set to NaN: %s",
            plate, len(flat), ", ".join(flat[:5]) + (" ..." if len(flat) > 5 else ""),
        )
    normalized = (values - centre) / spread
    out = wells.copy()
    out[features] = normalized
    return out
