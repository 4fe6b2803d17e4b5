"""One function per workflow step: read the step's inputs, call the logic, write its outputs.

The Snakemake entry scripts in ``scripts/`` only unpack ``snakemake.input/output/params`` and
call these, so every step can be run and tested without Snakemake.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from plateflow import aggregate, features, illumination, qc, segmentation
from plateflow.imageio import (
    UnreadableImageError,
    dtype_max,
    read_image,
    read_site,
    read_stack,
    sha256_file,
    sha256_site,
    write_stack,
)
from plateflow.provenance import (
    PROVENANCE_COLUMNS,
    add_provenance,
    combine_hashes,
    params_hash,
    read_file_metadata,
    read_table,
    write_table,
)

logger = logging.getLogger(__name__)

SITE_KEYS = ["Metadata_Plate", "Metadata_Well", "Metadata_Site"]
QC_PASS = "pass"


def _site_frame(plate: str, well: str, site: str, n: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"Metadata_Plate": [plate] * n, "Metadata_Well": [well] * n,
                         "Metadata_Site": [str(site)] * n})


def _without_provenance(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in PROVENANCE_COLUMNS if c in table.columns])


# --------------------------------------------------------------------------------------- QC --
def measure_site_qc(
    *,
    files: Mapping[str, str],
    channels: Sequence[str],
    plate: str,
    well: str,
    site: str,
    params: Mapping,
    bit_depth: int | None,
    output: str | Path,
) -> pd.DataFrame:
    """QC one site: metrics per channel, a pass/fail/unreadable status and its reasons."""
    step_params = {"qc": dict(params), "channels": list(channels), "bit_depth": bit_depth}
    image_sha = sha256_site(files, channels)
    try:
        image = read_site(files, channels)
    except UnreadableImageError as err:
        logger.error("plate %s, well %s, site %s: %s", plate, well, site, err)
        metrics = qc.unreadable_metrics(channels)
        status, reasons = "unreadable", [str(err)]
    else:
        metrics = qc.measure_site(
            image, channels, dtype_max=dtype_max(image.dtype, bit_depth=bit_depth), params=params
        )
        status, reasons = qc.decide(metrics, channels, params=params)
    logger.info("plate %s, well %s, site %s: QC %s %s", plate, well, site, status,
                "; ".join(reasons))
    row = _site_frame(plate, well, site)
    row["QC_Status"] = status
    row["QC_Reasons"] = "; ".join(reasons)
    for key, value in metrics.items():
        row[key] = float(value)
    row = add_provenance(row, step="measure_site_qc", params=step_params, image_sha256=image_sha)
    write_table(row, output, step="measure_site_qc", params=step_params)
    return row


def collect_plate_qc(
    *,
    qc_tables: Sequence[str | Path],
    plate: str,
    out_sites: str | Path,
    out_reacquire: str | Path,
) -> pd.DataFrame:
    """Gather a plate's site QC into the plate QC table and the re-acquisition list.

    The re-acquisition CSV lists every site that did not pass, one row per reason.
    """
    table = pd.concat([read_table(p) for p in qc_tables], ignore_index=True)
    params = {"plate": plate}
    lineage = {"measure_site_qc": read_file_metadata(qc_tables[0])["lineage"]["measure_site_qc"]}
    out = add_provenance(
        _without_provenance(table), step="collect_plate_qc", params=params,
        image_sha256=table["Metadata_Provenance_ImageSHA256"], lineage=lineage,
    )
    write_table(out, out_sites, step="collect_plate_qc", params=params, lineage=lineage)

    with open(out_reacquire, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["plate", "well", "site", "status", "reason", "image_sha256"])
        failed = table[table["QC_Status"] != QC_PASS]
        for row in failed.itertuples(index=False):
            for reason in (row.QC_Reasons or "unspecified").split("; "):
                writer.writerow([row.Metadata_Plate, row.Metadata_Well, row.Metadata_Site,
                                 row.QC_Status, reason, row.Metadata_Provenance_ImageSHA256])
    n_failed = int((table["QC_Status"] != QC_PASS).sum())
    logger.info("plate %s: %d of %d sites pass QC, %d go to the re-acquisition list",
                plate, len(table) - n_failed, len(table), n_failed)
    return out


def site_qc_status(qc_table: str | Path) -> tuple[str, str]:
    """``(status, reasons)`` of one site's QC table."""
    row = read_table(qc_table).iloc[0]
    return str(row["QC_Status"]), str(row["QC_Reasons"])


# ---------------------------------------------------------------------------- illumination --
def _evenly_spaced(items: list, n: int) -> list:
    """At most ``n`` items spread evenly over the list (all of them when there are fewer)."""
    if len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def estimate_plate_illumination(
    *,
    sites: Mapping[str, Mapping[str, str]],
    channels: Sequence[str],
    plate: str,
    qc_sites_table: str | Path,
    params: Mapping,
    out_image: str | Path,
    out_table: str | Path,
) -> np.ndarray:
    """Estimate one flat-field per channel from the plate's QC-passed sites.

    ``sites`` maps ``"well/site"`` to the channel files of every site of the plate; the plate
    QC table says which passed.
    """
    step_params = {"illumination": dict(params), "channels": list(channels)}
    qc_table = read_table(qc_sites_table)
    passed = qc_table[qc_table["QC_Status"] == QC_PASS]
    passed_files = [sites[f"{w}/{s}"] for w, s in
                    zip(passed["Metadata_Well"], passed["Metadata_Site"])]
    if not passed_files:
        raise ValueError(f"plate {plate}: no site passed QC, so no flat-field can be estimated; "
                         f"see the QC table '{qc_sites_table}'")
    chosen = _evenly_spaced(passed_files, params["max_sites"])
    fields = []
    for channel in channels:
        planes = (read_image(files[channel]) for files in chosen)
        fields.append(illumination.estimate_flatfield(planes, params=params))
    stack = np.stack(fields).astype(np.float32)
    write_stack(out_image, stack, metadata={"plate": plate, "channels": list(channels),
                                            "n_sites": len(chosen),
                                            "params_hash": params_hash(step_params)})
    rows = pd.DataFrame({
        "Metadata_Plate": plate,
        "Metadata_Channel": list(channels),
        "Metadata_Sites_Used": len(chosen),
        "Illumination_Min": stack.reshape(len(channels), -1).min(axis=1),
        "Illumination_Max": stack.reshape(len(channels), -1).max(axis=1),
        "Illumination_CornerToCentre": [illumination.corner_to_centre_ratio(f) for f in stack],
    })
    rows = add_provenance(
        rows, step="estimate_illumination", params=step_params,
        image_sha256=combine_hashes(passed["Metadata_Provenance_ImageSHA256"]),
    )
    write_table(rows, out_table, step="estimate_illumination", params=step_params)
    return stack


# --------------------------------------------------------------------------- preprocessing --
def correct_site_illumination(
    *,
    files: Mapping[str, str],
    channels: Sequence[str],
    plate: str,
    well: str,
    site: str,
    flatfield: str | Path,
    qc_table: str | Path,
    params: Mapping,
    bit_depth: int | None,
    output: str | Path,
) -> np.ndarray | None:
    """Divide a site by its plate's flat-fields and scale to float32 in [0, 1].

    This is the QC gate: a site that did not pass QC is not read; its output is an empty
    placeholder that says why, and segmentation and feature extraction skip it too.
    """
    step_params = {"preprocess": dict(params), "channels": list(channels), "bit_depth": bit_depth}
    status, reasons = site_qc_status(qc_table)
    if status != QC_PASS:
        logger.warning("plate %s, well %s, site %s: skipped, QC %s: %s", plate, well, site,
                       status, reasons)
        write_stack(output, np.zeros((len(channels), 1, 1), np.float32), metadata={
            "plate": plate, "well": well, "site": str(site), "channels": list(channels),
            "image_sha256": sha256_site(files, channels), "skipped": f"QC {status}: {reasons}",
            "lineage": {"correct_illumination": params_hash(step_params)},
        })
        return None
    fields, field_meta = read_stack(flatfield)
    if list(field_meta.get("channels", channels)) != list(channels):
        raise ValueError(f"plate {plate}: flat-field '{flatfield}' has channels "
                         f"{field_meta.get('channels')}, expected {list(channels)}")
    image = read_site(files, channels)
    if image.shape[1:] != fields.shape[1:]:
        raise ValueError(
            f"plate {plate}, well {well}, site {site}: image size {image.shape[1:]} differs from "
            f"the plate's flat-field {fields.shape[1:]} ('{files[channels[0]]}')"
        )
    corrected = illumination.correct_site(
        image, fields, dtype_max=dtype_max(image.dtype, bit_depth=bit_depth)
    )
    lineage = {
        "estimate_illumination": field_meta.get("params_hash"),
        "correct_illumination": params_hash(step_params),
    }
    write_stack(output, corrected, metadata={
        "plate": plate, "well": well, "site": str(site), "channels": list(channels),
        "image_sha256": sha256_site(files, channels),
        "flatfield_sha256": sha256_file(flatfield),
        "lineage": lineage,
    })
    return corrected


# ---------------------------------------------------------------------------- segmentation --
def segment_site(*, preprocessed: str | Path, params: Mapping, output: str | Path):
    """Segment nuclei, cells and cytoplasm; write them as one 3-page label stack.

    Sites the QC gate stopped are not segmented (no model is loaded for them).
    """
    image, meta = read_stack(preprocessed)
    lineage = dict(meta["lineage"], segment_site=params_hash(dict(params)))
    keep = {k: meta[k] for k in ("plate", "well", "site", "channels", "image_sha256")}
    if meta.get("skipped"):
        logger.warning("plate %s, well %s, site %s: not segmented, %s", meta["plate"],
                       meta["well"], meta["site"], meta["skipped"])
        write_stack(output, np.zeros((3, 1, 1), np.int32), metadata={
            **keep, "skipped": meta["skipped"], "lineage": lineage,
            "segmentation": {"method": None, "model": None, "weights_sha256": None},
        })
        return None
    result = segmentation.segment_site(image, meta["channels"], params=params)
    labels = np.stack([result.nuclei, result.cells, result.cytoplasm]).astype(np.int32)
    write_stack(output, labels, metadata={
        **keep,
        "compartments": ["Nuclei", "Cells", "Cytoplasm"],
        "segmentation": {"method": result.method, "model": result.model,
                         "weights_sha256": result.weights_sha256},
        "lineage": lineage,
    })
    logger.info("plate %s, well %s, site %s: %d nuclei, %d cells (%s)", meta["plate"],
                meta["well"], meta["site"], int(result.nuclei.max()), int(result.cells.max()),
                result.method)
    return result


# -------------------------------------------------------------------------------- features --
def extract_site_features(
    *, preprocessed: str | Path, labels: str | Path, params: Mapping, output: str | Path
) -> pd.DataFrame:
    """Measure every cell of a site: one row per cell, CellProfiler-style columns."""
    image, _ = read_stack(preprocessed)
    stack, meta = read_stack(labels)
    if meta.get("skipped"):
        # No cells: an empty table with every column, so the gathers need no special case.
        table = pd.DataFrame({c: pd.Series(dtype="float64")
                              for c in features.feature_columns(meta["channels"])})
        table["Metadata_ObjectNumber"] = table["Metadata_ObjectNumber"].astype("int64")
    else:
        seg = segmentation.Segmentation(
            nuclei=stack[0], cells=stack[1], cytoplasm=stack[2], **meta["segmentation"]
        )
        table = features.measure_objects(image, meta["channels"], seg)
    keys = _site_frame(meta["plate"], meta["well"], meta["site"], len(table))
    table = pd.concat([keys, table.reset_index(drop=True)], axis=1)
    lineage = dict(meta["lineage"])
    table = add_provenance(table, step="extract_features", params=params,
                           image_sha256=meta["image_sha256"], lineage=lineage,
                           segmentation=meta["segmentation"])
    write_table(table, output, step="extract_features", params=params, lineage=lineage)
    return table


# ------------------------------------------------------------------------------- gathering --
def aggregate_well_profile(
    *,
    qc_tables: Sequence[str | Path],
    feature_tables: Sequence[str | Path],
    channels: Sequence[str],
    platemap_row: Mapping,
    plate: str,
    well: str,
    params: Mapping,
    output: str | Path,
) -> pd.DataFrame:
    """One well: cell count, per-feature summary over its QC-passed sites, and QC counts.

    ``feature_tables`` may include the (empty) tables of sites the QC gate stopped.
    """
    step_params = {"aggregate": dict(params), "platemap": dict(platemap_row)}
    site_qc = pd.concat([read_table(p) for p in qc_tables], ignore_index=True)
    cells = [read_table(p) for p in feature_tables]
    excluded = site_qc[site_qc["QC_Status"] != QC_PASS]
    used = site_qc[site_qc["QC_Status"] == QC_PASS]
    used_sites = set(used["Metadata_Site"].astype(str))
    cells = [t for t in cells if len(t) and str(t["Metadata_Site"].iloc[0]) in used_sites]
    names = features.feature_columns(channels)
    all_cells = pd.concat(cells, ignore_index=True) if cells else pd.DataFrame(columns=names)
    summary = aggregate.aggregate_well(all_cells, features=names, operation=params["operation"])

    row = {"Metadata_Plate": plate, "Metadata_Well": well}
    row.update({k: v for k, v in platemap_row.items() if k != "Metadata_Well"})
    row["Metadata_Object_Count"] = summary.pop("Metadata_Object_Count")
    row["Metadata_Sites_Used"] = len(used)
    row["Metadata_Sites_Excluded"] = len(excluded)
    row["Metadata_QC_Exclusions"] = " | ".join(
        f"site {r.Metadata_Site} {r.QC_Status}: {r.QC_Reasons}" for r in excluded.itertuples()
    )
    row.update(summary)
    table = pd.DataFrame([row])

    hashes = (used if len(used) else site_qc)["Metadata_Provenance_ImageSHA256"]
    segmentation_info, lineage = {}, {}
    if feature_tables:
        lineage = _lineage_of(feature_tables)
    if cells:
        first = cells[0]
        segmentation_info = {
            "method": first["Metadata_Provenance_SegmentationMethod"].iloc[0],
            "model": first["Metadata_Provenance_Model"].iloc[0],
            "weights_sha256": first["Metadata_Provenance_WeightsSHA256"].iloc[0],
        }
    table = add_provenance(table, step="aggregate_well", params=step_params,
                           image_sha256=combine_hashes(hashes), lineage=lineage,
                           segmentation=segmentation_info)
    write_table(table, output, step="aggregate_well", params=step_params, lineage=lineage)
    return table


def _lineage_of(paths: Sequence[str | Path]) -> dict:
    lineage: dict = {}
    for path in paths:
        lineage.update(read_file_metadata(path).get("lineage", {}))
    return lineage


def normalize_plate_profiles(
    *,
    well_tables: Sequence[str | Path],
    plate: str,
    params: Mapping,
    out_profiles: str | Path,
    out_normalized: str | Path,
) -> pd.DataFrame:
    """A plate's well profiles, raw and normalised against its control wells."""
    wells = pd.concat([read_table(p) for p in well_tables], ignore_index=True)
    hashes = wells["Metadata_Provenance_ImageSHA256"]
    segmentation_info = {
        "method": wells["Metadata_Provenance_SegmentationMethod"].iloc[0],
        "model": wells["Metadata_Provenance_Model"].iloc[0],
        "weights_sha256": wells["Metadata_Provenance_WeightsSHA256"].iloc[0],
    }
    lineage = _lineage_of(well_tables[:1])
    data = _without_provenance(wells)
    profiles = add_provenance(data, step="normalize_plate", params=params, image_sha256=hashes,
                              lineage=lineage, segmentation=segmentation_info)
    write_table(profiles, out_profiles, step="normalize_plate", params=params, lineage=lineage)
    normalized = aggregate.normalize_plate(
        data, control_role=params["control_role"], method=params["method"], plate=plate
    )
    normalized = add_provenance(normalized, step="normalize_plate", params=params,
                                image_sha256=hashes, lineage=lineage,
                                segmentation=segmentation_info)
    write_table(normalized, out_normalized, step="normalize_plate", params=params,
                lineage=lineage)
    return normalized


def merge_experiment(*, plate_tables: Sequence[str | Path], output: str | Path) -> pd.DataFrame:
    """All plates in one table; rows keep the provenance of the plate step that made them."""
    table = pd.concat([read_table(p) for p in plate_tables], ignore_index=True)
    lineage = _lineage_of(plate_tables)
    params = {"plates": sorted(table["Metadata_Plate"].unique().tolist())}
    prefix = "Metadata_Provenance_"
    table = add_provenance(
        table, step="merge_experiment", params=params,
        image_sha256=table[prefix + "ImageSHA256"], lineage=lineage,
        segmentation={"method": table[prefix + "SegmentationMethod"],
                      "model": table[prefix + "Model"],
                      "weights_sha256": table[prefix + "WeightsSHA256"]},
    )
    write_table(table, output, step="merge_experiment", params=params, lineage=lineage)
    return table
