"""One function per workflow step: read the step's inputs, call the logic, write its outputs.

The Snakemake entry scripts in ``scripts/`` only unpack ``snakemake.input/output/params`` and
call these, so every step can be run and tested without Snakemake.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from plateflow import aggregate, features, illumination, qc, qc_plate, segmentation
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


# ----------------------------------------------------------------------------------- batches --
# The per-image rules run on batches of sites (neighbouring wells of one plate row, see
# plateflow.discovery.well_batch): one job loops over its sites, so a screen is thousands of
# jobs rather than a hundred thousand, and a model is loaded once per batch. Each site keeps
# its own output file inside the batch's folder, and every row still names its site.

#: A batch's sites as the rules pass them: well -> site -> channel -> raw file.
BatchSites = Mapping[str, Mapping[str, Mapping[str, str]]]


def batch_site_path(folder: str | Path, well: str, site: str, suffix: str) -> Path:
    """Where one site's output lives inside its batch's output folder."""
    return Path(folder) / well / f"s{site}{suffix}"


def _new_site_output(folder: str | Path, well: str, site: str, suffix: str) -> Path:
    """:func:`batch_site_path`, with its well folder created."""
    path = batch_site_path(folder, well, site, suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _iter_sites(sites: BatchSites):
    for well, well_sites in sites.items():
        for site, files in well_sites.items():
            yield well, str(site), files


def sites_from_files(
    site_ids: Sequence[str], files: Sequence[str], channels: Sequence[str]
) -> dict[str, dict[str, dict[str, str]]]:
    """Rebuild a batch's well -> site -> channel -> file mapping from its flat file list.

    A rule lists a batch's raw files site by site, in channel order (its input); ``site_ids``
    names the sites in the same order as ``"well/site"`` strings.
    """
    files = [str(f) for f in files]
    if len(files) != len(site_ids) * len(channels):
        raise ValueError(f"{len(files)} raw files for {len(site_ids)} sites of "
                         f"{len(channels)} channels: the batch's file list does not match")
    nested: dict[str, dict[str, dict[str, str]]] = {}
    for i, (well, site) in enumerate(_site_ids(site_ids)):
        chunk = files[i * len(channels) : (i + 1) * len(channels)]
        nested.setdefault(well, {})[site] = dict(zip(channels, chunk))
    return nested


def _site_ids(sites: Sequence[str]) -> list[tuple[str, str]]:
    """(well, site) pairs of a batch from its "well/site" strings."""
    return [tuple(str(item).split("/", 1)) for item in sites]


# --------------------------------------------------------------------------------------- QC --
def site_qc_row(
    *,
    files: Mapping[str, str],
    channels: Sequence[str],
    plate: str,
    well: str,
    site: str,
    params: Mapping,
    bit_depth: int | None,
) -> pd.DataFrame:
    """QC one site: metrics per channel, a pass/fail/unreadable status and its reasons.

    Returns the site's one-row table, with provenance.
    """
    step_params = _qc_step_params(params, channels, bit_depth)
    image_sha = sha256_site(files, channels)
    try:
        image = read_site(files, channels)
    except UnreadableImageError as err:
        logger.error("plate %s, well %s, site %s: %s", plate, well, site, err)
        metrics = qc.unreadable_metrics(channels)
        channel = next((c for c in channels if str(files[c]) == err.path), "")
        failures = [{"channel": channel, "metric": "Readable", "value": None,
                     "threshold": None, "reason": str(err)}]
        status = "unreadable"
    else:
        metrics = qc.measure_site(
            image, channels, dtype_max=dtype_max(image.dtype, bit_depth=bit_depth), params=params
        )
        failures = qc.failed_checks(metrics, channels, params=params)
        status = "fail" if failures else QC_PASS
    reasons = [f["reason"] for f in failures]
    logger.info("plate %s, well %s, site %s: QC %s %s", plate, well, site, status,
                "; ".join(reasons))
    row = _site_frame(plate, well, site)
    row["QC_Status"] = status
    row["QC_Reasons"] = "; ".join(reasons)
    row["QC_Failures"] = json.dumps(failures, default=float)
    for channel in channels:
        row[f"Metadata_FileName_{channel}"] = str(files[channel])
    for key, value in metrics.items():
        row[key] = float(value)
    return add_provenance(row, step="measure_qc", params=step_params, image_sha256=image_sha)


def _qc_step_params(params: Mapping, channels: Sequence[str], bit_depth: int | None) -> dict:
    return {"qc": dict(params), "channels": list(channels), "bit_depth": bit_depth}


def measure_qc(
    *,
    sites: BatchSites,
    channels: Sequence[str],
    plate: str,
    params: Mapping,
    bit_depth: int | None,
    output: str | Path,
) -> pd.DataFrame:
    """QC every site of a batch into one table (one row per site)."""
    rows = [
        site_qc_row(files=files, channels=channels, plate=plate, well=well, site=site,
                    params=params, bit_depth=bit_depth)
        for well, site, files in _iter_sites(sites)
    ]
    if not rows:
        raise ValueError(f"plate {plate}: a QC batch with no sites (nothing to measure)")
    table = pd.concat(rows, ignore_index=True)
    step_params = _qc_step_params(params, channels, bit_depth)
    write_table(table, output, step="measure_qc", params=step_params)
    return table


def collect_plate_qc(
    *,
    qc_tables: Sequence[str | Path],
    plate: str,
    channels: Sequence[str],
    params: Mapping,
    out_sites: str | Path,
    out_reacquire: str | Path,
) -> pd.DataFrame:
    """Gather a plate's site QC: plate-relative flags and the re-acquisition list.

    ``QC_Status`` is each site's own decision against the absolute thresholds: the QC gate.
    Plate-relative outliers (:mod:`plateflow.qc_plate`) among the passing sites are flagged
    (``QC_PlateOutlier``, ``QC_PlateFlags``, ``QC_PlateZ_*``) and listed for re-acquisition,
    but they do not stop the site: a gate that depends on the whole plate would re-judge every
    site whenever one is added, and rerun the plate. The re-acquisition CSV has one row per
    failed check: plate, well, site, channel, metric, value, threshold, reason, status.
    """
    table = pd.concat([read_table(p) for p in qc_tables], ignore_index=True)
    step_params = {"qc_plate": dict(params), "channels": list(channels)}
    lineage = {"measure_qc": read_file_metadata(qc_tables[0])["lineage"]["measure_qc"]}
    failures = [json.loads(f) if f else [] for f in table["QC_Failures"]]
    statuses = list(table["QC_Status"])
    table["QC_PlateOutlier"] = False
    plate_flags: list[list[str]] = [[] for _ in range(len(table))]
    if params["enabled"]:
        z, flagged = qc_plate.plate_relative_flags(table, channels, params=params)
        table = pd.concat([table, z], axis=1)
        for flag in flagged:
            row = flag.pop("row")
            if statuses[row] == QC_PASS:  # failed sites keep their own reasons
                failures[row].append(flag)
                plate_flags[row].append(flag["reason"])
                table.at[row, "QC_PlateOutlier"] = True
    table["QC_PlateFlags"] = ["; ".join(f) for f in plate_flags]
    out = add_provenance(
        _without_provenance(table), step="collect_plate_qc", params=step_params,
        image_sha256=table["Metadata_Provenance_ImageSHA256"], lineage=lineage,
    )
    write_table(out, out_sites, step="collect_plate_qc", params=step_params, lineage=lineage)

    with open(out_reacquire, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["plate", "well", "site", "channel", "metric", "value", "threshold",
                         "reason", "status", "image_sha256"])
        for row, site_failures in zip(table.itertuples(index=False), failures):
            for f in site_failures:
                status = "plate outlier" if f["metric"].startswith("PlateZ_") else row.QC_Status
                writer.writerow([row.Metadata_Plate, row.Metadata_Well, row.Metadata_Site,
                                 f["channel"], f["metric"], _fmt(f["value"]),
                                 _fmt(f["threshold"]), f["reason"], status,
                                 row.Metadata_Provenance_ImageSHA256])
    n_failed = int((table["QC_Status"] != QC_PASS).sum())
    logger.info("plate %s: %d of %d sites pass QC, %d go to the re-acquisition list",
                plate, len(table) - n_failed, len(table), n_failed)
    return out


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def qc_decisions(
    qc_table: str | Path, channels: Sequence[str]
) -> dict[tuple[str, str], tuple[str, str, dict[str, str], str]]:
    """The QC gate's decisions: ``(well, site) -> (status, reasons, files, image sha256)``.

    ``files`` maps each channel to the raw file that QC measured (and hashed).
    """
    names = [f"Metadata_FileName_{c}" for c in channels]
    table = read_table(qc_table, columns=[*SITE_KEYS, "QC_Status", "QC_Reasons", *names,
                                          "Metadata_Provenance_ImageSHA256"])
    return {
        (str(r["Metadata_Well"]), str(r["Metadata_Site"])): (
            str(r["QC_Status"]), str(r["QC_Reasons"]),
            {c: str(r[n]) for c, n in zip(channels, names)},
            str(r["Metadata_Provenance_ImageSHA256"]),
        )
        for r in table.to_dict("records")
    }


# ---------------------------------------------------------------------------- illumination --
def _evenly_spaced(items: list, n: int) -> list:
    """At most ``n`` items spread evenly over the list (all of them when there are fewer)."""
    if len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def estimate_plate_illumination(
    *,
    channels: Sequence[str],
    plate: str,
    qc_sites_table: str | Path,
    params: Mapping,
    out_image: str | Path,
    out_table: str | Path,
) -> np.ndarray:
    """Estimate one flat-field per channel from the plate's QC-passed sites.

    The plate QC table says which sites passed and where their files are
    (``Metadata_FileName_<channel>``).
    """
    step_params = {"illumination": dict(params), "channels": list(channels)}
    qc_table = read_table(qc_sites_table)
    passed = qc_table[qc_table["QC_Status"] == QC_PASS]
    passed_files = [{c: row[f"Metadata_FileName_{c}"] for c in channels}
                    for _, row in passed.iterrows()]
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
                                            "camera_offset": float(params["camera_offset"]),
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
def correct_illumination(
    *,
    sites: Sequence[str],
    channels: Sequence[str],
    plate: str,
    flatfield: str | Path,
    qc_table: str | Path,
    params: Mapping,
    bit_depth: int | None,
    out_dir: str | Path,
) -> int:
    """Divide every site of a batch by its plate's flat-fields and scale to float32 in [0, 1].

    This is the QC gate: a site that did not pass QC is not read; its output is an empty
    placeholder that says why, and segmentation and feature extraction skip it too. The batch's
    QC table holds each site's decision and raw files (``Metadata_FileName_<channel>``).
    ``sites`` lists the batch's sites as ``"well/site"`` strings. Writes
    ``<out_dir>/<well>/s<site>.tiff`` per site; returns the number of sites corrected.
    """
    step_params = {"preprocess": dict(params), "channels": list(channels), "bit_depth": bit_depth}
    decisions = qc_decisions(qc_table, channels)
    fields, field_meta = read_stack(flatfield)
    if list(field_meta.get("channels", channels)) != list(channels):
        raise ValueError(f"plate {plate}: flat-field '{flatfield}' has channels "
                         f"{field_meta.get('channels')}, expected {list(channels)}")
    lineage = {
        "estimate_illumination": field_meta.get("params_hash"),
        "correct_illumination": params_hash(step_params),
    }
    flatfield_sha = sha256_file(flatfield)
    site_ids = _site_ids(sites)
    n_corrected = 0
    for well, site in site_ids:
        if (well, site) not in decisions:
            raise ValueError(f"plate {plate}, well {well}, site {site}: missing from the QC "
                             f"table '{qc_table}'")
        status, reasons, files, image_sha = decisions[(well, site)]
        output = _new_site_output(out_dir, well, site, ".tiff")
        keep = {"plate": plate, "well": well, "site": site, "channels": list(channels),
                "image_sha256": image_sha}
        if status != QC_PASS:
            logger.warning("plate %s, well %s, site %s: skipped, QC %s: %s", plate, well, site,
                           status, reasons)
            write_stack(output, np.zeros((len(channels), 1, 1), np.float32), metadata={
                **keep, "skipped": f"QC {status}: {reasons}", "lineage": lineage,
            })
            continue
        image = read_site(files, channels)
        if image.shape[1:] != fields.shape[1:]:
            raise ValueError(
                f"plate {plate}, well {well}, site {site}: image size {image.shape[1:]} differs "
                f"from the plate's flat-field {fields.shape[1:]} ('{files[channels[0]]}')"
            )
        corrected = illumination.correct_site(
            image, fields, dtype_max=dtype_max(image.dtype, bit_depth=bit_depth),
            camera_offset=field_meta.get("camera_offset", 0.0),
        )
        write_stack(output, corrected, metadata={
            **keep, "flatfield_sha256": flatfield_sha, "lineage": lineage,
        })
        n_corrected += 1
    logger.info("plate %s: %d sites corrected, %d stopped by the QC gate", plate, n_corrected,
                len(site_ids) - n_corrected)
    return n_corrected


# ---------------------------------------------------------------------------- segmentation --
def segment(
    *, sites: Sequence[str], preprocessed_dir: str | Path, params: Mapping, out_dir: str | Path
) -> int:
    """Segment nuclei, cells and cytoplasm of every site of a batch.

    ``sites`` lists the batch's sites as ``"well/site"`` strings.
    Each site gets one 3-page label stack ``<out_dir>/<well>/s<site>.tiff``. Sites the QC gate
    stopped are passed on as placeholders, not segmented. Returns the number segmented.
    """
    n_segmented = 0
    for well, site in _site_ids(sites):
        n_segmented += segment_site(
            preprocessed=batch_site_path(preprocessed_dir, well, site, ".tiff"),
            params=params, output=_new_site_output(out_dir, well, site, ".tiff"),
        ) is not None
    return n_segmented


def segment_site(*, preprocessed: str | Path, params: Mapping, output: str | Path):
    """Segment one site (see :func:`segment`); returns None for a site the QC gate stopped."""
    image, meta = read_stack(preprocessed)
    lineage = dict(meta["lineage"], segment=params_hash(dict(params)))
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
def extract_features(
    *, sites: Sequence[str], preprocessed_dir: str | Path, labels_dir: str | Path, params: Mapping,
    out_dir: str | Path,
) -> int:
    """Measure every cell of every site of a batch: ``<out_dir>/<well>/s<site>.parquet``.

    Returns the number of cells measured.
    """
    n_cells = 0
    for well, site in _site_ids(sites):
        n_cells += len(extract_site_features(
            preprocessed=batch_site_path(preprocessed_dir, well, site, ".tiff"),
            labels=batch_site_path(labels_dir, well, site, ".tiff"),
            params=params, output=_new_site_output(out_dir, well, site, ".parquet"),
        ))
    return n_cells


def extract_site_features(
    *, preprocessed: str | Path, labels: str | Path, params: Mapping, output: str | Path
) -> pd.DataFrame:
    """Measure every cell of one site: one row per cell, CellProfiler-style columns."""
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
    notes = {"site": str(meta["site"]), "image_sha256": meta["image_sha256"]}
    if meta.get("skipped"):
        notes["skipped"] = meta["skipped"]
    write_table(table, output, step="extract_features", params=params, lineage=lineage,
                notes=notes)
    return table


# ------------------------------------------------------------------------------- gathering --
def aggregate_wells(
    *,
    sites: Sequence[str],
    features_dir: str | Path,
    channels: Sequence[str],
    platemap: Mapping[str, Mapping],
    plate: str,
    params: Mapping,
    output: str | Path,
) -> pd.DataFrame:
    """One profile row per well of a batch, from the per-site feature tables of its sites.

    ``sites`` lists the batch's sites as ``"well/site"`` strings; ``platemap`` maps each well
    of the batch to its platemap row.
    """
    by_well: dict[str, list[Path]] = {}
    for well, site in _site_ids(sites):
        by_well.setdefault(well, []).append(
            batch_site_path(features_dir, well, site, ".parquet"))
    rows = [well_profile(feature_tables=tables, channels=channels, platemap_row=platemap[well],
                         plate=plate, well=well, params=params)
            for well, tables in by_well.items()]
    table = pd.concat(rows, ignore_index=True)
    step_params = {"aggregate": dict(params),
                   "platemap": {w: dict(platemap[w]) for w in by_well}}
    lineage = _lineage_of([t for tables in by_well.values() for t in tables[:1]])
    write_table(table, output, step="aggregate_wells", params=step_params, lineage=lineage)
    return table


def well_profile(
    *,
    feature_tables: Sequence[str | Path],
    channels: Sequence[str],
    platemap_row: Mapping,
    plate: str,
    well: str,
    params: Mapping,
) -> pd.DataFrame:
    """One well: cell count, per-feature summary over its QC-passed sites, and QC counts.

    ``feature_tables`` holds every site of the well; a site the QC gate stopped has an empty
    table whose metadata says why, so the counts report what really happened.
    """
    step_params = {"aggregate": dict(params), "platemap": dict(platemap_row)}
    cells, hashes, all_hashes, exclusions, lineage = [], [], [], [], {}
    for path in feature_tables:
        meta = read_file_metadata(path)
        lineage.update(meta.get("lineage", {}))
        all_hashes.append(meta["image_sha256"])
        if meta.get("skipped"):
            exclusions.append(f"site {meta['site']}: {meta['skipped']}")
            continue
        cells.append(read_table(path))
        hashes.append(meta["image_sha256"])
    names = features.feature_columns(channels)
    all_cells = pd.concat(cells, ignore_index=True) if cells else pd.DataFrame(columns=names)
    summary = aggregate.aggregate_well(all_cells, features=names, operation=params["operation"])

    row = {"Metadata_Plate": plate, "Metadata_Well": well}
    row.update({k: v for k, v in platemap_row.items() if k != "Metadata_Well"})
    row["Metadata_Object_Count"] = summary.pop("Metadata_Object_Count")
    row["Metadata_Sites_Used"] = len(cells)
    row["Metadata_Sites_Excluded"] = len(exclusions)
    row["Metadata_QC_Exclusions"] = " | ".join(exclusions)
    row.update(summary)
    table = pd.DataFrame([row])

    # every site excluded: the row still names the images it is about
    hashes = hashes or all_hashes
    segmentation_info = {}
    first = next((c for c in cells if len(c)), None)
    if first is not None:
        segmentation_info = {
            "method": first["Metadata_Provenance_SegmentationMethod"].iloc[0],
            "model": first["Metadata_Provenance_Model"].iloc[0],
            "weights_sha256": first["Metadata_Provenance_WeightsSHA256"].iloc[0],
        }
    return add_provenance(table, step="aggregate_wells", params=step_params,
                          image_sha256=combine_hashes(hashes), lineage=lineage,
                          segmentation=segmentation_info)


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
