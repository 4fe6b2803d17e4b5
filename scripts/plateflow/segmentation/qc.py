"""Plate-level segmentation QC: per-site statistics gathered, collapses and outliers flagged.

:func:`collect_segmentation_qc` (rule ``collect_segmentation_qc``) reads only the metadata of
every label stack of a plate (``segmentation.info``, written by the batch job with
:func:`plateflow.segmentation.statistics.site_statistics`, and the per-object ``objects``),
and the plate's QC table, and writes one row per site to
``results/segmentation/{plate}/sites.parquet`` and the flagged sites to
``results/segmentation/{plate}/reacquire.csv`` (the columns of QC's re-acquisition list).

A segmented site is flagged (``SegQC_Status`` ``flagged``) when

* **its count disagrees with QC**: the ratio of nuclei found to QC's foreground object count
  of the nuclei channel (``QC_ObjectCount_<channel>``, connected components of the foreground,
  so touching nuclei count once and the ratio of a good site is about 1 or more) lies outside
  ``[min_count_ratio, max_count_ratio]``; judged only where QC counts at least
  ``min_qc_objects``. This is what catches a collapse: one saturated blob that leaves 1-3
  objects where QC sees 40-75;
* **it is an outlier against its plate**: the robust z (median and
  :func:`plateflow.core.stats.mad_sigma` over the plate's segmented sites, the spread at least
  ``min_relative_spread`` x the median) of a metric of ``metrics`` lies beyond
  ``max_robust_z`` in the metric's bad direction, as QC's plate step judges its metrics.

Flags are for review and re-acquisition: they do not stop the site. A site the QC gate stopped
is listed as ``not segmented``; a label stack that cannot be read is ``error`` and listed too:
one bad site never stops the plate's step.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from plateflow.core.confidence import DEFAULT_LOW_CONFIDENCE, low_confidence_fraction
from plateflow.core.contract import REACQUIRE_COLUMNS, SITE_KEYS, site_path, skipped
from plateflow.core.imageio import read_stack_metadata
from plateflow.core.provenance import add_provenance, read_file_metadata, read_table, write_table
from plateflow.core.stats import mad_sigma, median
from plateflow.segmentation.statistics import STATISTICS

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PARAMS", "REACQUIRE_COLUMNS", "collect_segmentation_qc", "plate_flags"]

DEFAULT_PARAMS: dict = {
    # flag sites at all (the table of statistics is written either way)
    "enabled": True,
    # nuclei found / QC's foreground object count below this: a collapse
    "min_count_ratio": 0.25,
    # ... above this: fragments (null: no upper bound)
    "max_count_ratio": 10.0,
    # the ratio is judged only where QC counts at least this many objects
    "min_qc_objects": 10,
    # robust z beyond which a site is a plate outlier, in the metric's bad direction
    "max_robust_z": 6.0,
    # plates with fewer segmented sites get no plate-relative flags
    "min_sites": 10,
    # the spread used is at least this fraction of the plate median
    "min_relative_spread": 0.1,
    # metrics judged against the plate
    "metrics": ["NucleiCount", "MedianNucleusArea"],
    # confidence column (name or fnmatch pattern) -> below this an object is of low confidence
    "low_confidence": dict(DEFAULT_LOW_CONFIDENCE),
}

#: Status of a site: segmented and unflagged, flagged, stopped by QC, label stack unreadable.
OK, FLAGGED, NOT_SEGMENTED, ERROR = "pass", "flagged", "not segmented", "error"

#: Table column of each judged metric, and which side of the plate is bad.
METRICS = {
    "NucleiCount": ("both", "nuclei count"),
    "CellsCount": ("both", "cells count"),
    "MedianNucleusArea": ("both", "median nucleus area"),
    "MatchRate": ("low", "nucleus-cell match rate"),
    "BorderAreaFraction": ("high", "area fraction in border objects"),
    "LowConfidenceFraction": ("high", "low-confidence fraction"),
}
#: Table column (``SegQC_<name>``) -> the ``segmentation.info`` key it comes from.
_FROM_INFO = {"NucleiCount": "n_nuclei", "CellsCount": "n_cells",
              "MedianNucleusArea": "median_nucleus_area", "MatchRate": "match_rate",
              "BorderAreaFraction": "border_area_fraction"}
_NO_SEGMENTATION = {"method": None, "model": None, "weights_sha256": None}


def _number(value) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def _site_row(meta: Mapping, thresholds: Mapping) -> dict:
    """The statistics of one segmented site from its label stack's metadata."""
    info = dict((meta.get("segmentation") or {}).get("info") or {})
    row = {f"SegQC_{name}": _number(info.get(key)) for name, key in _FROM_INFO.items()}
    objects = {k: np.asarray(v, dtype=np.float64) for k, v in (meta.get("objects") or {}).items()}
    row["SegQC_LowConfidenceFraction"] = _number(low_confidence_fraction(objects, thresholds))
    for key, value in info.items():
        if key not in STATISTICS:
            row[f"SegQC_Info_{key}"] = value
    return row


def _well_dirs(label_dirs: Sequence[str | Path]) -> dict[str, Path]:
    """Well -> the batch folder holding its label stacks."""
    found: dict[str, Path] = {}
    for folder in map(Path, label_dirs):
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.is_dir():
                    found[entry.name] = folder
    return found


def plate_flags(table: pd.DataFrame, *, params: Mapping, channel: str) -> list[dict]:
    """The flags of a plate's segmented sites (``SegQC_Status == "pass"`` on entry).

    Parameters
    ----------
    table : DataFrame
        One row per site: ``SegQC_Status``, ``SegQC_NucleiCount``, ``SegQC_QCObjectCount``
        and the ``SegQC_<Metric>`` of ``params["metrics"]``. ``SegQC_CountRatio`` and
        ``SegQC_PlateZ_<Metric>`` columns are added in place.
    params : mapping
        The ``segmentation_qc:`` section (:data:`DEFAULT_PARAMS`).
    channel : str
        The nuclei channel (named in the flags).

    Returns
    -------
    list of dict
        One per flag: ``row`` (index label), ``channel``, ``metric``, ``value``,
        ``threshold``, ``reason``.
    """
    flags: list[dict] = []
    segmented = table["SegQC_Status"] == OK
    qc_count = table["SegQC_QCObjectCount"].astype("float64")
    count = table["SegQC_NucleiCount"].astype("float64")
    judged = segmented & (qc_count >= float(params["min_qc_objects"]))
    table["SegQC_CountRatio"] = (count / qc_count).where(judged)
    lo, hi = params["min_count_ratio"], params["max_count_ratio"]
    for row, ratio in table["SegQC_CountRatio"].items():
        if not math.isfinite(ratio):
            continue
        limit = lo if lo is not None and ratio < lo else (
            hi if hi is not None and ratio > hi else None)
        if limit is not None:
            word = "collapse" if ratio < 1 else "over-segmentation"
            flags.append({"row": row, "channel": channel, "metric": "SegQC_CountRatio",
                          "value": float(ratio), "threshold": float(limit), "reason": (
                              f"{channel}: {count[row]:.0f} nuclei segmented where QC counts "
                              f"{qc_count[row]:.0f} foreground objects (ratio {ratio:.2g}, "
                              f"{'below' if ratio < limit else 'above'} {limit:g}: "
                              f"segmentation {word}?)")})
    reference = table[segmented]
    enough = len(reference) >= int(params["min_sites"])
    if not enough:
        logger.info("only %d segmented sites: no plate-relative segmentation QC (needs %d)",
                    len(reference), params["min_sites"])
    z_limit = float(params["max_robust_z"])
    for metric in params["metrics"]:
        direction, words = METRICS[metric]
        column = f"SegQC_{metric}"
        z = pd.Series(np.nan, index=table.index, dtype="float64")
        values = reference[column].astype("float64").to_numpy()
        values = values[np.isfinite(values)]
        if enough and values.size:
            centre = float(median(values))
            spread = max(mad_sigma(values), float(params["min_relative_spread"]) * abs(centre))
            if spread > 0 and math.isfinite(spread):
                z = ((table[column].astype("float64") - centre) / spread).where(segmented)
        table[f"SegQC_PlateZ_{metric}"] = z
        for row, value in z.items():
            if not math.isfinite(value):
                continue
            if (direction == "low" and value < -z_limit) or (
                    direction == "high" and value > z_limit) or (
                    direction == "both" and abs(value) > z_limit):
                side = "below" if value < 0 else "above"
                flags.append({"row": row, "channel": channel, "metric": f"PlateZ_{metric}",
                              "value": float(value),
                              "threshold": -z_limit if value < 0 else z_limit, "reason": (
                                  f"{channel}: {words} {table.at[row, column]:.3g} is "
                                  f"{abs(value):.1f} robust SDs {side} the plate median "
                                  f"{centre:.3g} (segmentation plate outlier)")})
    return flags


def collect_segmentation_qc(
    *,
    label_dirs: Sequence[str | Path],
    qc_table: str | Path,
    plate: str,
    nuclei_channel: str,
    params: Mapping,
    out_sites: str | Path,
    out_reacquire: str | Path,
) -> pd.DataFrame:
    """Gather a plate's segmentation statistics, flag collapses and outliers.

    Parameters
    ----------
    label_dirs : sequence of path
        The plate's batch folders of label stacks (``<dir>/<well>/s<site>.tiff``).
    qc_table : path
        The plate's QC table (``results/qc/{plate}/sites.parquet``): its rows are the sites.
    plate : str
    nuclei_channel : str
        The channel segmented for nuclei, whose ``QC_ObjectCount_<channel>`` is compared.
    params : mapping
        The ``segmentation_qc:`` config section (:data:`DEFAULT_PARAMS`).
    out_sites : path
        The table (Parquet): site keys, ``SegQC_Status``, ``SegQC_Reasons``, ``SegQC_Flags``
        (JSON records), ``SegQC_<Metric>``, ``SegQC_QCObjectCount``, ``SegQC_CountRatio``,
        ``SegQC_PlateZ_<Metric>``, the method's own ``SegQC_Info_<key>``, provenance.
    out_reacquire : path
        The flagged sites, one row per flag (:data:`REACQUIRE_COLUMNS`).

    Returns
    -------
    DataFrame
        The table as written.
    """
    qc = read_table(qc_table)
    count_column = f"QC_ObjectCount_{nuclei_channel}"
    dirs = _well_dirs(label_dirs)
    thresholds = params["low_confidence"]
    rows, segmentations, lineage = [], [], {}
    for record in qc.to_dict("records"):
        well, site = str(record["Metadata_Well"]), str(record["Metadata_Site"])
        row: dict = {"Metadata_Plate": plate, "Metadata_Well": well, "Metadata_Site": site,
                     "SegQC_Status": OK, "SegQC_Reasons": "",
                     "SegQC_QCObjectCount": _number(record.get(count_column))}
        segmentation = dict(_NO_SEGMENTATION)
        try:
            if well not in dirs:
                raise FileNotFoundError(f"no label stacks of well {well} in any batch folder")
            meta = read_stack_metadata(site_path(dirs[well], well, site, ".tiff"))
            segmentation = {k: (meta.get("segmentation") or {}).get(k) for k in _NO_SEGMENTATION}
            lineage.update(meta.get("lineage") or {})
            reason = skipped(meta)
            if reason is not None:
                row.update(SegQC_Status=NOT_SEGMENTED, SegQC_Reasons=f"not segmented: {reason}")
            else:
                row.update(_site_row(meta, thresholds))
        except Exception as err:  # noqa: BLE001 - one bad site must not stop the plate
            logger.error("plate %s, well %s, site %s: cannot read the segmentation: %s", plate,
                         well, site, err)
            row.update(SegQC_Status=ERROR,
                       SegQC_Reasons=f"label stack unreadable: {type(err).__name__}: {err}")
        rows.append(row)
        segmentations.append(segmentation)
    table = _tidy(pd.DataFrame(rows))
    flags: list[list[dict]] = [[] for _ in range(len(table))]
    for index, row in table.iterrows():
        if row["SegQC_Status"] == ERROR:
            flags[index].append({"channel": "", "metric": "SegQC_Readable", "value": None,
                                 "threshold": None, "reason": row["SegQC_Reasons"]})
    found = plate_flags(table, params=params, channel=nuclei_channel)
    if params["enabled"]:
        for flag in found:
            flags[flag.pop("row")].append(flag)
    for index, site_flags in enumerate(flags):
        if site_flags and table.at[index, "SegQC_Status"] == OK:
            table.at[index, "SegQC_Status"] = FLAGGED
            table.at[index, "SegQC_Reasons"] = "; ".join(f["reason"] for f in site_flags)
    table["SegQC_Flags"] = [json.dumps(f, default=float) for f in flags]
    step_params = {"segmentation_qc": dict(params), "nuclei_channel": nuclei_channel}
    lineage.update(read_file_metadata(qc_table).get("lineage") or {})
    lineage.pop("collect_segmentation_qc", None)
    image_sha = qc["Metadata_Provenance_ImageSHA256"].astype(str).reset_index(drop=True)
    out = add_provenance(table, step="collect_segmentation_qc", params=step_params,
                         image_sha256=image_sha, lineage=lineage, segmentation={
                             k: pd.Series([s[k] for s in segmentations], dtype="object")
                             for k in _NO_SEGMENTATION})
    write_table(out, out_sites, step="collect_segmentation_qc", params=step_params,
                lineage=lineage)
    _write_reacquire(table, flags, image_sha, out_reacquire)
    counts = table["SegQC_Status"].value_counts().to_dict()
    logger.info("plate %s: segmentation QC of %d sites: %s", plate, len(table),
                ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return out


def _tidy(table: pd.DataFrame) -> pd.DataFrame:
    """Columns Parquet can store: each method-info column one type (text where any is text)."""
    for column in [c for c in table.columns if c.startswith("SegQC_Info_")]:
        values = table[column]
        if any(isinstance(v, str) for v in values):
            table[column] = [None if v is None or (isinstance(v, float) and math.isnan(v))
                             else str(v) for v in values]
        else:
            table[column] = [_number(v) for v in values]
    for metric in METRICS:
        if f"SegQC_{metric}" not in table.columns:
            table[f"SegQC_{metric}"] = math.nan
    return table


def _write_reacquire(table: pd.DataFrame, flags: list[list[dict]], image_sha: pd.Series,
                     path: str | Path) -> None:
    """The flagged sites as QC's re-acquisition list: one row per flag."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REACQUIRE_COLUMNS)
        for index, site_flags in enumerate(flags):
            key = table.loc[index, SITE_KEYS].tolist()
            status = ("segmentation error" if table.at[index, "SegQC_Status"] == ERROR
                      else "segmentation flag")
            for f in site_flags:
                writer.writerow([*key, f["channel"], f["metric"], _fmt(f["value"]),
                                 _fmt(f["threshold"]), f["reason"], status, image_sha[index]])


def _fmt(value) -> str:
    """A CSV cell: floats to 6 significant digits, None and NaN empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
