"""Per-site segmentation statistics, recorded in every label stack for the segmentation QC."""

from __future__ import annotations

import numpy as np

from plateflow.segmentation.base import Segmentation

__all__ = ["site_statistics"]


def site_statistics(result: Segmentation) -> dict:
    """Scalars that describe one site's segmentation.

    Returns
    -------
    dict
        ``n_nuclei``, ``n_cells`` and ``median_nucleus_area`` (px; None without nuclei).
    """
    nuclei = np.asarray(result.nuclei)
    areas = np.bincount(nuclei.ravel())[1:]
    areas = areas[areas > 0]
    return {
        "n_nuclei": int(areas.size),
        "n_cells": len(np.unique(result.cells[result.cells > 0])),
        "median_nucleus_area": float(np.median(areas)) if areas.size else None,
    }
