"""The profiles stage's I/O: cells to wells (per batch), wells to plates, plates to experiment.

:func:`aggregate_wells` reads a batch's per-site feature tables
(``results/features/{plate}/{batch}/{well}/s{site}.parquet``) and writes one row per well
(``results/wells/{plate}/{batch}.parquet``); a site the QC gate stopped has an empty table
whose metadata says why (:func:`plateflow.core.contract.skipped`), and is counted as excluded.
:func:`normalize_plate_profiles` gathers a plate's wells, raw and normalised against its
control wells; :func:`merge_experiment` puts every plate in one table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from plateflow.core.contract import parse_site_ids, site_path, skipped
from plateflow.core.provenance import (
    add_provenance,
    combine_hashes,
    read_file_metadata,
    read_table,
    without_provenance,
    write_table,
)
from plateflow.profiles.normalize import feature_columns_of, normalize_plate
from plateflow.profiles.wells import LOW_CONFIDENCE_FRACTION, aggregate_well

logger = logging.getLogger(__name__)

__all__ = ["aggregate_wells", "merge_experiment", "normalize_plate_profiles", "well_profile"]

_PREFIX = "Metadata_Provenance_"


def _lineage_of(paths: Sequence[str | Path]) -> dict:
    lineage: dict = {}
    for path in paths:
        lineage.update(read_file_metadata(path).get("lineage", {}))
    return lineage


def _segmentation_of(table: pd.DataFrame) -> dict:
    """The segmentation provenance of a table's first row."""
    return {
        "method": table[_PREFIX + "SegmentationMethod"].iloc[0],
        "model": table[_PREFIX + "Model"].iloc[0],
        "weights_sha256": table[_PREFIX + "WeightsSHA256"].iloc[0],
    }


def aggregate_wells(
    *,
    sites: Sequence[str],
    features_dir: str | Path,
    channels: Sequence[str] | None = None,
    platemap: Mapping[str, Mapping],
    plate: str,
    params: Mapping,
    output: str | Path,
    low_confidence: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One profile row per well of a batch, from the per-site feature tables of its sites.

    Parameters
    ----------
    sites : sequence of str
        The batch's sites as ``"well/site"`` strings.
    features_dir : path
        The batch's feature folder (``<features_dir>/<well>/s<site>.parquet``).
    channels : sequence of str, optional
        Not used: the feature columns come from the site tables (see :func:`well_profile`).
    platemap : mapping
        Each well of the batch -> its platemap row.
    plate : str
    params : mapping
        The ``aggregate`` config section (``operation``).
    output : path
        The batch's well table.
    low_confidence : mapping, optional
        Confidence column -> low-confidence threshold (config ``segmentation_qc.low_confidence``,
        see :func:`plateflow.profiles.wells.aggregate_well`).

    Returns
    -------
    DataFrame
        One row per well (see :func:`well_profile`), as written.
    """
    by_well: dict[str, list[Path]] = {}
    for well, site in parse_site_ids(sites):
        by_well.setdefault(well, []).append(site_path(features_dir, well, site, ".parquet"))
    rows = [well_profile(feature_tables=tables, platemap_row=platemap[well], plate=plate,
                         well=well, params=params, low_confidence=low_confidence)
            for well, tables in by_well.items()]
    table = pd.concat(rows, ignore_index=True)
    step_params = {"aggregate": dict(params),
                   "platemap": {w: dict(platemap[w]) for w in by_well},
                   "low_confidence": dict(low_confidence or {})}
    lineage = _lineage_of([t for tables in by_well.values() for t in tables[:1]])
    write_table(table, output, step="aggregate_wells", params=step_params, lineage=lineage)
    return table


def well_profile(
    *,
    feature_tables: Sequence[str | Path],
    channels: Sequence[str] | None = None,
    platemap_row: Mapping,
    plate: str,
    well: str,
    params: Mapping,
    low_confidence: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One well: cell count, per-feature summary over its QC-passed sites, and QC counts.

    ``feature_tables`` holds every site of the well; a site the QC gate stopped has an empty
    table whose metadata says why, so the counts report what really happened. The features
    are the non-``Metadata_`` columns of the site tables: an empty table still has every
    column, so a well whose every site was stopped has them too (all NaN).

    Parameters
    ----------
    feature_tables : sequence of path
        The well's per-site feature tables, one row per cell.
    channels : sequence of str, optional
        Not used (the feature columns come from the tables).
    platemap_row : mapping
        The well's platemap row (``Metadata_*`` columns).
    plate, well : str
    params : mapping
        The ``aggregate`` config section: ``operation`` (``median`` or ``mean``).
    low_confidence : mapping, optional
        Confidence column -> low-confidence threshold (None: the defaults).

    Returns
    -------
    DataFrame
        One row: the site keys and platemap columns, ``Metadata_Object_Count``,
        ``Metadata_Sites_Used``, ``Metadata_Sites_Excluded``, ``Metadata_QC_Exclusions``,
        one column per feature, and provenance.
    """
    step_params = {"aggregate": dict(params), "platemap": dict(platemap_row),
                   "low_confidence": dict(low_confidence or {})}
    cells, hashes, all_hashes, exclusions, lineage = [], [], [], [], {}
    names: dict[str, None] = {}  # the feature columns, in table order
    for path in feature_tables:
        meta = read_file_metadata(path)
        lineage.update(meta.get("lineage", {}))
        all_hashes.append(meta["image_sha256"])
        table = read_table(path)
        names.update(dict.fromkeys(feature_columns_of(table)))
        reason = skipped(meta)
        if reason:
            exclusions.append(f"site {meta['site']}: {reason}")
            continue
        cells.append(table)
        hashes.append(meta["image_sha256"])
    features = list(names)
    all_cells = pd.concat(cells, ignore_index=True) if cells else pd.DataFrame(columns=features)
    summary = aggregate_well(all_cells, features=features, operation=params["operation"],
                             low_confidence=low_confidence)

    row = {"Metadata_Plate": plate, "Metadata_Well": well}
    row.update({k: v for k, v in platemap_row.items() if k != "Metadata_Well"})
    row["Metadata_Object_Count"] = summary.pop("Metadata_Object_Count")
    row["Metadata_Sites_Used"] = len(cells)
    row["Metadata_Sites_Excluded"] = len(exclusions)
    row["Metadata_QC_Exclusions"] = " | ".join(exclusions)
    row[LOW_CONFIDENCE_FRACTION] = summary.pop(LOW_CONFIDENCE_FRACTION)
    row.update(summary)
    out = pd.DataFrame([row])

    # every site excluded: the row still names the images it is about
    hashes = hashes or all_hashes
    first = next((c for c in cells if len(c)), None)
    segmentation_info = _segmentation_of(first) if first is not None else {}
    return add_provenance(out, step="aggregate_wells", params=step_params,
                          image_sha256=combine_hashes(hashes), lineage=lineage,
                          segmentation=segmentation_info)


def normalize_plate_profiles(
    *,
    well_tables: Sequence[str | Path],
    plate: str,
    params: Mapping,
    out_profiles: str | Path,
    out_normalized: str | Path,
) -> pd.DataFrame:
    """A plate's well profiles, raw and normalised against its control wells.

    Parameters
    ----------
    well_tables : sequence of path
        The plate's batch well tables from :func:`aggregate_wells`.
    plate : str
    params : mapping
        The ``normalize`` config section: ``method``, ``control_role``.
    out_profiles, out_normalized : path
        The plate's raw and normalised profiles (one row per well).

    Returns
    -------
    DataFrame
        The normalised profiles, as written.
    """
    wells = pd.concat([read_table(p) for p in well_tables], ignore_index=True)
    hashes = wells[_PREFIX + "ImageSHA256"]
    segmentation_info = _segmentation_of(wells)
    lineage = _lineage_of(well_tables[:1])
    data = without_provenance(wells)
    profiles = add_provenance(data, step="normalize_plate", params=params, image_sha256=hashes,
                              lineage=lineage, segmentation=segmentation_info)
    write_table(profiles, out_profiles, step="normalize_plate", params=params, lineage=lineage)
    normalized = normalize_plate(
        data, control_role=params["control_role"], method=params["method"], plate=plate
    )
    normalized = add_provenance(normalized, step="normalize_plate", params=params,
                                image_sha256=hashes, lineage=lineage,
                                segmentation=segmentation_info)
    write_table(normalized, out_normalized, step="normalize_plate", params=params,
                lineage=lineage)
    return normalized


def merge_experiment(*, plate_tables: Sequence[str | Path], output: str | Path) -> pd.DataFrame:
    """All plates in one table; rows keep the provenance of the plate step that made them.

    Parameters
    ----------
    plate_tables : sequence of path
        One profile table per plate (raw or normalised, from :func:`normalize_plate_profiles`).
    output : path

    Returns
    -------
    DataFrame
        The plates' rows, one after the other, as written.
    """
    table = pd.concat([read_table(p) for p in plate_tables], ignore_index=True)
    lineage = _lineage_of(plate_tables)
    params = {"plates": sorted(table["Metadata_Plate"].unique().tolist())}
    table = add_provenance(
        table, step="merge_experiment", params=params,
        image_sha256=table[_PREFIX + "ImageSHA256"], lineage=lineage,
        segmentation={"method": table[_PREFIX + "SegmentationMethod"],
                      "model": table[_PREFIX + "Model"],
                      "weights_sha256": table[_PREFIX + "WeightsSHA256"]},
    )
    write_table(table, output, step="merge_experiment", params=params, lineage=lineage)
    return table
