"""A plate's well profiles normalised against its control wells (a robust z-score).

Follows pycytominer's conventions (see :mod:`plateflow.profiles`): metadata columns start with
``Metadata_``; CellProfiler's object id ``ObjectNumber`` is neither; everything else is a
feature.
"""

from __future__ import annotations

import logging

import pandas as pd

from plateflow.core.stats import MAD_SCALE

logger = logging.getLogger(__name__)

__all__ = ["ID_COLUMNS", "feature_columns_of", "normalize_plate"]

#: CellProfiler's per-object id columns: carried by the cell tables, never summarised.
ID_COLUMNS = frozenset({"ObjectNumber", "ImageNumber"})


def feature_columns_of(table: pd.DataFrame) -> list[str]:
    """Feature columns: every column that is not ``Metadata_*`` nor an object id."""
    return [c for c in table.columns if not c.startswith("Metadata_") and c not in ID_COLUMNS]


def normalize_plate(
    wells: pd.DataFrame,
    *,
    control_role: str = "negative_control",
    method: str = "robust_z",
    plate: str = "",
) -> pd.DataFrame:
    """Normalise a plate's well profiles against its control wells.

    ``robust_z``: (x - median of controls) / (``MAD_SCALE`` x MAD of controls), per feature. A feature
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
