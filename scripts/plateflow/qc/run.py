"""The QC stage's I/O: measure a batch's sites, then gather the plate's QC.

- :func:`measure_qc` (rule ``measure_qc``): reads each raw site of a batch, measures its QC
  metrics (:func:`plateflow.qc.site.measure_site`) and decides pass / fail / unreadable
  (:func:`plateflow.qc.checks.failed_checks`), and writes the batch's QC table: one row per
  site with ``QC_Status``, ``QC_Reasons``, ``QC_Failures`` (JSON records), the raw files
  (``Metadata_FileName_<channel>``) and every ``QC_<Metric>_<Channel>``. ``QC_Status`` is the
  QC gate that later stages read (:func:`plateflow.core.contract.read_qc_decisions`).
- :func:`collect_plate_qc` (rule ``collect_plate_qc``): concatenates a plate's batch tables,
  adds the plate-relative flags (:mod:`plateflow.qc.plate`) and writes the plate's site table
  and its re-acquisition list (CSV, one row per failed check).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from plateflow.core.contract import QC_PASS, REACQUIRE_COLUMNS, SITE_KEYS, site_frame
from plateflow.core.imageio import UnreadableImageError, dtype_max, read_site, sha256_site
from plateflow.core.provenance import (
    add_provenance,
    read_file_metadata,
    read_table,
    without_provenance,
    write_table,
)
from plateflow.qc.checks import failed_checks
from plateflow.qc.plate import plate_relative_flags
from plateflow.qc.site import measure_site, unreadable_metrics

logger = logging.getLogger(__name__)

__all__ = ["collect_plate_qc", "measure_qc", "site_qc_row"]

#: A batch's sites as the rules pass them: well -> site -> channel -> raw file.
BatchSites = Mapping[str, Mapping[str, Mapping[str, str]]]

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

    Parameters
    ----------
    files : mapping of str to str
        Channel -> raw image file.
    channels : sequence of str
        Channel names, in image order.
    plate, well, site : str
    params : mapping
        The ``qc:`` config section (:data:`plateflow.qc.DEFAULT_PARAMS`).
    bit_depth : int or None
        Bits the camera fills (e.g. 12); None = the image type's full range.

    Returns
    -------
    DataFrame
        The site's one-row table, with provenance.
    """
    step_params = _qc_step_params(params, channels, bit_depth)
    image_sha = sha256_site(files, channels)
    try:
        image = read_site(files, channels)
    except UnreadableImageError as err:
        logger.error("plate %s, well %s, site %s: %s", plate, well, site, err)
        metrics = unreadable_metrics(channels)
        channel = next((c for c in channels if str(files[c]) == err.path), "")
        failures = [{"channel": channel, "metric": "Readable", "value": None,
                     "threshold": None, "reason": str(err)}]
        status = "unreadable"
    else:
        metrics = measure_site(
            image, channels, dtype_max=dtype_max(image.dtype, bit_depth=bit_depth), params=params
        )
        failures = failed_checks(metrics, channels, params=params)
        status = "fail" if failures else QC_PASS
    reasons = [f["reason"] for f in failures]
    logger.info("plate %s, well %s, site %s: QC %s %s", plate, well, site, status,
                "; ".join(reasons))
    row = site_frame(plate, well, site)
    row["QC_Status"] = status
    row["QC_Reasons"] = "; ".join(reasons)
    row["QC_Failures"] = json.dumps(failures, default=float)
    for channel in channels:
        row[f"Metadata_FileName_{channel}"] = str(files[channel])
    for key, value in metrics.items():
        row[key] = float(value)
    return add_provenance(row, step="measure_qc", params=step_params, image_sha256=image_sha)


def _qc_step_params(params: Mapping, channels: Sequence[str], bit_depth: int | None) -> dict:
    """The parameters recorded (and hashed) as the ``measure_qc`` step's."""
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
    """QC every site of a batch into one table (one row per site), written to ``output``.

    Parameters
    ----------
    sites : mapping
        The batch's sites, ``well -> site -> channel -> raw file``
        (:func:`plateflow.core.contract.sites_from_files`).
    channels, plate, params, bit_depth
        As :func:`site_qc_row`.
    output : path
        The batch QC table (Parquet).

    Returns
    -------
    DataFrame
        The table written.
    """
    rows = [
        site_qc_row(files=files, channels=channels, plate=plate, well=well, site=str(site),
                    params=params, bit_depth=bit_depth)
        for well, well_sites in sites.items()
        for site, files in well_sites.items()
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
    Plate-relative outliers (:mod:`plateflow.qc.plate`) among the passing sites are flagged
    (``QC_PlateOutlier``, ``QC_PlateFlags``, ``QC_PlateZ_*``) and listed for re-acquisition,
    but they do not stop the site: a gate that depends on the whole plate would re-judge every
    site whenever one is added, and rerun the plate. The re-acquisition CSV has one row per
    failed check: plate, well, site, channel, metric, value, threshold, reason, status.

    Parameters
    ----------
    qc_tables : sequence of path
        The plate's batch QC tables (from :func:`measure_qc`).
    plate : str
    channels : sequence of str
    params : mapping
        The ``qc_plate:`` config section (:data:`plateflow.qc.plate.DEFAULT_PARAMS`).
    out_sites : path
        The plate's site QC table (Parquet).
    out_reacquire : path
        The re-acquisition list (CSV).

    Returns
    -------
    DataFrame
        The plate's site QC table as written.
    """
    table = pd.concat([read_table(p) for p in qc_tables], ignore_index=True)
    step_params = {"qc_plate": dict(params), "channels": list(channels)}
    lineage = {"measure_qc": read_file_metadata(qc_tables[0])["lineage"]["measure_qc"]}
    failures = [json.loads(f) if f else [] for f in table["QC_Failures"]]
    statuses = list(table["QC_Status"])
    table["QC_PlateOutlier"] = False
    plate_flags: list[list[str]] = [[] for _ in range(len(table))]
    if params["enabled"]:
        z, flagged = plate_relative_flags(table, channels, params=params)
        table = pd.concat([table, z], axis=1)
        for flag in flagged:
            row = flag.pop("row")
            if statuses[row] == QC_PASS:  # failed sites keep their own reasons
                failures[row].append(flag)
                plate_flags[row].append(flag["reason"])
                table.at[row, "QC_PlateOutlier"] = True
    table["QC_PlateFlags"] = ["; ".join(f) for f in plate_flags]
    data = without_provenance(table)
    out = add_provenance(
        data, step="collect_plate_qc", params=step_params,
        image_sha256=table["Metadata_Provenance_ImageSHA256"], lineage=lineage,
    )
    write_table(out, out_sites, step="collect_plate_qc", params=step_params, lineage=lineage)
    _write_reacquire(table, failures, out_reacquire)
    n_failed = int((table["QC_Status"] != QC_PASS).sum())
    logger.info("plate %s: %d of %d sites pass QC, %d go to the re-acquisition list",
                plate, len(table) - n_failed, len(table), n_failed)
    return out


def _write_reacquire(table: pd.DataFrame, failures: list[list[dict]], path: str | Path) -> None:
    """The re-acquisition CSV: one row per failed check of each site of ``table``."""
    keys = table[SITE_KEYS].itertuples(index=False, name=None)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REACQUIRE_COLUMNS)
        for key, status, sha, site_failures in zip(
            keys, table["QC_Status"], table["Metadata_Provenance_ImageSHA256"], failures
        ):
            for f in site_failures:
                writer.writerow([*key, f["channel"], f["metric"], _fmt(f["value"]),
                                 _fmt(f["threshold"]), f["reason"],
                                 "plate outlier" if f["metric"].startswith("PlateZ_") else status,
                                 sha])


def _fmt(value) -> str:
    """A CSV cell: floats to 6 significant digits, None and NaN empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
