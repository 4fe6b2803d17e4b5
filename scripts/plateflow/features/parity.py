"""Parity with CellProfiler: our per-object features against a CellProfiler per-object table.

CellProfiler's ExportToSpreadsheet writes one CSV per object set (``Nuclei.csv``: columns
``AreaShape_Area``, ``Intensity_MeanIntensity_DNA``, ``Location_Center_X``...). Our table names
the same measurement ``Nuclei_AreaShape_Area`` and so on. :func:`match_objects` pairs our objects
with CellProfiler's; :func:`identical_masks` keeps the pairs whose masks are (almost surely) the
same; :func:`parity_table` gives, per feature both tables have, the Pearson r and the median
relative difference over the pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["common_features", "from_cellprofiler_406", "identical_masks", "match_objects",
           "parity_table"]

#: CellProfiler's columns that are ids or bookkeeping, not measurements.
_NOT_FEATURES = ("ImageNumber", "ObjectNumber", "Number_Object_Number")


def common_features(ours: pd.DataFrame, reference: pd.DataFrame, compartment: str) -> list[str]:
    """Reference columns (CellProfiler's names, without the compartment) that ``ours`` has as
    ``<compartment>_<name>``, in the reference's order."""
    return [c for c in reference.columns
            if c not in _NOT_FEATURES and f"{compartment}_{c}" in ours.columns
            and pd.api.types.is_numeric_dtype(reference[c])]


def match_objects(ours_xy: np.ndarray, reference_xy: np.ndarray,
                  *, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours by centre, closer than ``max_distance`` pixels.

    Parameters
    ----------
    ours_xy, reference_xy : (N, 2), (M, 2) float ndarray
        Object centres (X, Y); NaN rows never match.

    Returns
    -------
    (K,) int ndarray, (K,) int ndarray
        Row indices into ours and into the reference, one pair per match.
    """
    ours_xy = np.asarray(ours_xy, np.float64)
    reference_xy = np.asarray(reference_xy, np.float64)
    if len(ours_xy) == 0 or len(reference_xy) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    distance = np.linalg.norm(ours_xy[:, None, :] - reference_xy[None, :, :], axis=2)
    distance = np.where(np.isnan(distance), np.inf, distance)
    nearest_ref = distance.argmin(axis=1)
    nearest_ours = distance.argmin(axis=0)
    rows = np.arange(len(ours_xy))
    mutual = (nearest_ours[nearest_ref] == rows) & (distance[rows, nearest_ref] < max_distance)
    return rows[mutual], nearest_ref[mutual]


def identical_masks(ours: pd.DataFrame, reference: pd.DataFrame, compartment: str,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with the same centre (to 1e-6 px) and the same area: the same mask, almost surely.

    Returns
    -------
    (K,) int ndarray, (K,) int ndarray
        Row indices into ``ours`` and ``reference``.
    """
    xy = [f"{compartment}_AreaShape_Center_X", f"{compartment}_AreaShape_Center_Y"]
    if not set(xy) <= set(ours.columns):
        xy = [f"{compartment}_Location_Center_X", f"{compartment}_Location_Center_Y"]
    mine, theirs = match_objects(
        ours[xy].to_numpy(), reference[["Location_Center_X", "Location_Center_Y"]].to_numpy(),
        max_distance=1e-6)
    same = (ours[f"{compartment}_AreaShape_Area"].to_numpy()[mine]
            == reference["AreaShape_Area"].to_numpy()[theirs])
    return mine[same], theirs[same]


def parity_table(ours: pd.DataFrame, reference: pd.DataFrame, compartment: str,
                 pairs: tuple[np.ndarray, np.ndarray], *,
                 features: Sequence[str] | None = None) -> pd.DataFrame:
    """Per feature: how closely our values follow CellProfiler's over the matched objects.

    The relative difference of a pair is ``|a - b| / max(|a|, |b|)`` (0 when both are 0), so a
    feature near zero is not inflated by a tiny denominator on one side only.

    Parameters
    ----------
    ours, reference : DataFrame
        Our per-object table (``<compartment>_...`` columns) and CellProfiler's.
    compartment : str
    pairs : ((K,), (K,)) int ndarrays
        Matched rows (:func:`match_objects` or :func:`identical_masks`).
    features : sequence of str, optional
        CellProfiler column names; default :func:`common_features`.

    Returns
    -------
    DataFrame
        One row per feature: ``feature`` (CellProfiler's name), ``n`` (pairs with both values
        finite), ``pearson_r`` (NaN when either side is constant), ``median_rel_diff``,
        ``max_rel_diff``, ``identical`` (every pair equal to 1e-9 relative or 1e-12 absolute).
    """
    mine, theirs = pairs
    rows = []
    for feature in features if features is not None else common_features(ours, reference,
                                                                          compartment):
        a = ours[f"{compartment}_{feature}"].to_numpy(np.float64)[mine]
        b = reference[feature].to_numpy(np.float64)[theirs]
        finite = np.isfinite(a) & np.isfinite(b)
        a, b = a[finite], b[finite]
        scale = np.maximum(np.abs(a), np.abs(b))
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(scale > 0, np.abs(a - b) / scale, 0.0)
            r = (float(np.corrcoef(a, b)[0, 1])
                 if a.size > 1 and a.std() > 0 and b.std() > 0 else np.nan)
        rows.append({
            "feature": feature,
            "n": int(a.size),
            "pearson_r": r,
            "median_rel_diff": float(np.median(rel)) if rel.size else np.nan,
            "max_rel_diff": float(rel.max()) if rel.size else np.nan,
            # equal to 1e-9 relative, or both rounding noise around a true 0 (odd Zernike
            # moments of symmetric objects)
            "identical": bool(rel.size) and bool(((rel <= 1e-9) | (np.abs(a - b) <= 1e-12)).all()),
        })
    return pd.DataFrame(rows, columns=["feature", "n", "pearson_r", "median_rel_diff",
                                       "max_rel_diff", "identical"])


def from_cellprofiler_406(reference: pd.DataFrame) -> pd.DataFrame:
    """CellProfiler 4.0.6's table in the current release's conventions (ours).

    4.0.6 wrote ``AreaShape_Orientation`` in radians, although its documentation promised
    degrees; later releases (and we) write degrees. Nothing else is converted.
    """
    out = reference.copy()
    if "AreaShape_Orientation" in out:
        out["AreaShape_Orientation"] = np.degrees(out["AreaShape_Orientation"])
    return out
