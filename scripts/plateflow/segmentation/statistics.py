"""Per-site segmentation statistics, recorded in every label stack for the segmentation QC.

:func:`site_statistics` describes one site's segmentation in a few scalars, from label counts
(``np.bincount``, a few milliseconds on a 1080² site); the batch job merges them into the label
stack's metadata ``segmentation.info`` and the plate's segmentation QC
(:mod:`plateflow.segmentation.qc`) gathers them. Which objects count as of low confidence is
:func:`plateflow.core.confidence.low_confidence_fraction`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from plateflow.core.confidence import DEFAULT_LOW_CONFIDENCE, low_confidence_fraction
from plateflow.segmentation.base import Segmentation

__all__ = ["STATISTICS", "site_statistics"]

#: The keys :func:`site_statistics` writes.
STATISTICS = ("n_nuclei", "n_cells", "median_nucleus_area", "match_rate",
              "border_area_fraction", "low_confidence_fraction")


def site_statistics(
    result: Segmentation, *, thresholds: Mapping[str, float] | None = None
) -> dict:
    """Scalars that describe one site's segmentation.

    Parameters
    ----------
    result : Segmentation
    thresholds : mapping, optional
        Low-confidence thresholds (default :data:`DEFAULT_LOW_CONFIDENCE`; the plate's
        segmentation QC recomputes the fraction with the configured ones).

    Returns
    -------
    dict
        ``n_nuclei``, ``n_cells``: objects in each label image.
        ``median_nucleus_area``: px; None without nuclei.
        ``match_rate``: fraction of nuclei whose cell (same label) covers at least half of the
        nucleus and is larger than it, i.e. a cell was found around the nucleus; a cell that is
        only its nucleus, or none, does not match. None without nuclei.
        ``border_area_fraction``: fraction of the objects' area (cells; nuclei where there are
        no cells) in objects that touch the image border. None without objects.
        ``low_confidence_fraction``: fraction of the objects with a confidence value that some
        confidence column (``result.objects``) calls low; None without such a column.
    """
    nuclei = np.asarray(result.nuclei).ravel()
    cells = np.asarray(result.cells).ravel()
    top = int(max(nuclei.max(initial=0), cells.max(initial=0)))
    nucleus_area = np.bincount(nuclei, minlength=top + 1)[1:]
    cell_area = np.bincount(cells, minlength=top + 1)[1:]
    on_nucleus = nuclei > 0
    same = np.bincount(nuclei[on_nucleus & (cells == nuclei)], minlength=top + 1)[1:]
    has_nucleus = nucleus_area > 0
    n_nuclei = int(has_nucleus.sum())
    matched = has_nucleus & (2 * same >= nucleus_area) & (cell_area > nucleus_area)

    objects = np.asarray(result.cells if cell_area.any() else result.nuclei)
    areas = cell_area if cell_area.any() else nucleus_area
    total = int(areas.sum())
    border = np.zeros(top + 1, dtype=bool)
    if objects.ndim == 2 and objects.size:
        for edge in (objects[0], objects[-1], objects[:, 0], objects[:, -1]):
            border[edge] = True
    border_area = int(areas[border[1:]].sum())

    low_fraction = low_confidence_fraction(
        result.objects, DEFAULT_LOW_CONFIDENCE if thresholds is None else thresholds)
    return {
        "n_nuclei": n_nuclei,
        "n_cells": int(np.count_nonzero(cell_area)),
        "median_nucleus_area": (float(np.median(nucleus_area[has_nucleus])) if n_nuclei
                                else None),
        "match_rate": float(matched.sum() / n_nuclei) if n_nuclei else None,
        "border_area_fraction": border_area / total if total else None,
        "low_confidence_fraction": low_fraction,
    }
