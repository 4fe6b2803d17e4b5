"""Segmentation accuracy against hand-labelled masks: the ``validate_segmentation`` job.

Input, per ground-truth site: its label stack
``results/segmentation/{plate}/{batch}/{well}/s{site}.tiff`` (pages named by ``compartments``
in its metadata, see :mod:`plateflow.segmentation.run`) and its masks (``nuclei``, optionally
``cells``: label images at the site's size, 0 = background). Output:
``results/validation/{plate}/segmentation_accuracy.parquet``, one row per site and compartment:

* ``Metadata_Plate``, ``Metadata_Well``, ``Metadata_Site``, ``Metadata_Compartment``
  (``Nuclei`` or ``Cells``), ``Metadata_GroundTruth`` (the mask file) and
  ``Metadata_GroundTruthSHA256``;
* ``Metadata_Segmented`` (False for a site the QC gate stopped: it has a placeholder instead of
  labels, see :mod:`plateflow.core.contract`) and ``Metadata_NotSegmentedReason``;
* the figures of :func:`plateflow.segmentation.metrics.score`: ``AP_50``, ``AP_50_95``,
  ``Dice``, ``Precision_50``, ``Recall_50``, ``TP_50``, ``FP_50``, ``FN_50``, ``N_True``,
  ``N_Predicted`` (missing for a site not segmented, except ``N_True``);
* the provenance columns (:mod:`plateflow.core.provenance`).

Pool sites with :func:`plateflow.segmentation.metrics.pooled` (sums TP, FP and FN first).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from plateflow.core.contract import SITE_KEYS, skipped
from plateflow.core.imageio import UnreadableImageError, read_image, read_stack, sha256_file
from plateflow.core.provenance import add_provenance, write_table
from plateflow.segmentation.metrics import pooled, score

logger = logging.getLogger(__name__)

__all__ = ["ACCURACY_COLUMNS", "COUNT_COLUMNS", "score_site", "validate_segmentation"]

#: Ground-truth columns -> the label stack page they are compared with.
TRUTH_PAGES = {"nuclei": "Nuclei", "cells": "Cells"}
#: The ratio columns of the accuracy table (floats).
ACCURACY_COLUMNS = ["AP_50", "AP_50_95", "Dice", "Precision_50", "Recall_50"]
#: The count columns of the accuracy table (integers, missing where a site was not segmented).
COUNT_COLUMNS = ["TP_50", "FP_50", "FN_50", "N_True", "N_Predicted"]
STEP = "validate_segmentation"


def score_site(labels: Mapping[str, np.ndarray] | None,
               truth: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """Accuracy of one site's labels, per compartment that has a ground-truth mask.

    Parameters
    ----------
    labels : mapping of str to (Y, X) int ndarray, or None
        The site's label pages by compartment (``Nuclei``, ``Cells``, ...); None for a site
        that was not segmented.
    truth : mapping of str to (Y, X) int ndarray
        Ground-truth masks by compartment.

    Returns
    -------
    dict
        compartment -> the figures of :func:`~plateflow.segmentation.metrics.score`; for a
        site not segmented only ``N_True`` (the others are missing).
    """
    out = {}
    for compartment, mask in truth.items():
        mask = np.asarray(mask)
        if labels is None:
            out[compartment] = {"N_True": int(np.unique(mask[mask > 0]).size)}
            continue
        predicted = np.asarray(labels[compartment])
        if predicted.shape != mask.shape:
            raise ValueError(f"the {compartment.lower()} mask is {mask.shape[0]}x{mask.shape[1]}"
                             f" px but the site's labels are "
                             f"{predicted.shape[0]}x{predicted.shape[1]} px")
        out[compartment] = score(mask, predicted)
    return out


def _read_truth(row: Mapping, where: str) -> dict[str, np.ndarray]:
    truth = {}
    for column, compartment in TRUTH_PAGES.items():
        path = row.get(column)
        if not path:
            continue
        try:
            mask = read_image(path)
        except UnreadableImageError as err:
            raise ValueError(f"{where}: cannot read the {column} mask '{path}': "
                             f"{err.reason}") from err
        if mask.dtype.kind not in "uib":
            raise ValueError(f"{where}: the {column} mask '{path}' holds {mask.dtype} values; "
                             f"a label mask holds integers (0 = background)")
        truth[compartment] = mask.astype(np.int64)
    return truth


def _site_rows(plate: str, row: Mapping) -> tuple[list[dict], dict]:
    """The table rows of one ground-truth site, and its label stack's metadata."""
    well, site = str(row["well"]), str(row["site"])
    where = f"plate {plate}, well {well}, site {site}"
    stack, meta = read_stack(row["labels"])
    reason = skipped(meta)
    truth = _read_truth(row, where)
    labels = None if reason is not None else dict(zip(meta["compartments"], stack))
    try:
        figures = score_site(labels, truth)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from err
    if reason is not None:
        logger.warning("%s: not segmented (%s); it has ground truth but no accuracy", where,
                       reason)
    rows = []
    for compartment, values in figures.items():
        column = {v: k for k, v in TRUTH_PAGES.items()}[compartment]
        rows.append({
            "Metadata_Plate": plate, "Metadata_Well": well, "Metadata_Site": site,
            "Metadata_Compartment": compartment,
            "Metadata_GroundTruth": str(row[column]),
            "Metadata_GroundTruthSHA256": sha256_file(row[column]),
            "Metadata_Segmented": reason is None,
            "Metadata_NotSegmentedReason": reason,
            "Metadata_ImageSHA256": meta.get("image_sha256"),
            **values,
        })
    return rows, meta


def _table(rows: list[dict]) -> pd.DataFrame:
    columns = [*SITE_KEYS, "Metadata_Compartment", "Metadata_GroundTruth",
               "Metadata_GroundTruthSHA256", "Metadata_Segmented", "Metadata_NotSegmentedReason",
               "Metadata_ImageSHA256", *ACCURACY_COLUMNS, *COUNT_COLUMNS]
    table = pd.DataFrame(rows).reindex(columns=columns)
    for column in ACCURACY_COLUMNS:
        table[column] = table[column].astype("float64")
    for column in COUNT_COLUMNS:
        table[column] = table[column].astype("Int64")
    table["Metadata_Segmented"] = table["Metadata_Segmented"].astype(bool)
    table["Metadata_NotSegmentedReason"] = table["Metadata_NotSegmentedReason"].astype(object)
    return table


def validate_segmentation(*, plate: str, sites: Sequence[Mapping], params: Mapping,
                          output: str | Path) -> pd.DataFrame:
    """Score the segmentation of a plate's ground-truth sites; write the accuracy table.

    Parameters
    ----------
    plate : str
        The plate.
    sites : sequence of mapping
        One per ground-truth site: ``well``, ``site``, ``labels`` (its label stack),
        ``nuclei`` and optionally ``cells`` (mask files; None = no mask).
    params : mapping
        What the step depends on (recorded in the provenance).
    output : path
        The Parquet table to write (module docstring).

    Returns
    -------
    DataFrame
        The table written.
    """
    if not sites:
        raise ValueError(f"plate {plate}: no ground-truth sites to validate")
    rows, metas = [], []
    for row in sites:
        site_rows, meta = _site_rows(plate, row)
        rows += site_rows
        metas.append(meta)
    table = _table(rows)
    hashes = table.pop("Metadata_ImageSHA256").fillna("").astype(str)
    lineage: dict = {}
    for meta in metas:
        lineage.update(meta.get("lineage") or {})
    segmented = [m["segmentation"] for m in metas if skipped(m) is None]
    segmentation = {k: v for k, v in (segmented[0] if segmented else {}).items() if k != "info"}
    table = add_provenance(table, step=STEP, params=params, image_sha256=hashes,
                           lineage=lineage, segmentation=segmentation)
    write_table(table, output, step=STEP, params=params, lineage=lineage)
    done = table[table["Metadata_Segmented"]]
    for compartment, group in done.groupby("Metadata_Compartment", sort=False):
        total = pooled(group.to_dict("records"))
        logger.info("plate %s, %s: %d site(s), pooled AP@0.5 %.3f (TP %d, FP %d, FN %d)",
                    plate, compartment, len(group), total["AP_50"], total["TP_50"],
                    total["FP_50"], total["FN_50"])
    return table
