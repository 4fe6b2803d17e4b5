"""Per-object segmentation confidence: which objects count as low, shared by the segmentation
QC (per site) and the well profiles (per well).

A segmentation method may give every object confidence columns named
``<Compartment>_Segmentation_<Name>``. Config ``segmentation_qc.low_confidence`` maps a column
name or an ``fnmatch`` pattern to the value below which an object is of low confidence; an
object is low when any of its confidence columns is below its threshold.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

import numpy as np

__all__ = ["DEFAULT_LOW_CONFIDENCE", "is_segmentation_column", "low_confidence_fraction",
           "threshold_for"]

#: The schema default of ``segmentation_qc.low_confidence``. Classical contrast is
#: (mean inside - local background) / noise; Cellpose probability is the mean cell probability
#: inside the mask; ensemble agreement is the mean best IoU across members.
DEFAULT_LOW_CONFIDENCE: dict[str, float] = {
    "*_Segmentation_Agreement": 0.5,
    "*_Segmentation_Probability": 0.5,
    "Nuclei_Segmentation_Contrast": 3.0,
}
_SEGMENTATION = re.compile(r"^(Nuclei|Cells|Cytoplasm)_Segmentation_")


def is_segmentation_column(column: str) -> bool:
    """Whether a column is a per-object segmentation column (``<Compartment>_Segmentation_*``)."""
    return bool(_SEGMENTATION.match(column))


def threshold_for(column: str, thresholds: Mapping[str, float]) -> float | None:
    """The low-confidence threshold of a column: its exact entry, else the first pattern (in
    sorted order) that matches it; None when none does (the column is not a confidence)."""
    if column in thresholds:
        return float(thresholds[column])
    for pattern in sorted(thresholds):
        if fnmatch.fnmatchcase(column, pattern):
            return float(thresholds[pattern])
    return None


def low_confidence_fraction(
    columns: Mapping[str, np.ndarray], thresholds: Mapping[str, float]
) -> float | None:
    """Fraction of the objects with a confidence value that some confidence column calls low.

    Parameters
    ----------
    columns : mapping of str to (N,) array
        Per-object columns (all of length N); those that are not segmentation columns or have
        no threshold are ignored.
    thresholds : mapping of str to float
        See :data:`DEFAULT_LOW_CONFIDENCE`.

    Returns
    -------
    float or None
        Low objects / objects with a finite value in some confidence column; None when there is
        no such object (no confidence column, or no objects).
    """
    low = judged = None
    for name, values in columns.items():
        limit = threshold_for(name, thresholds) if is_segmentation_column(name) else None
        if limit is None:
            continue
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        below = finite & (values < limit)
        low = below if low is None else low | below
        judged = finite if judged is None else judged | finite
    n = 0 if judged is None else int(judged.sum())
    return float(low.sum() / n) if n else None
