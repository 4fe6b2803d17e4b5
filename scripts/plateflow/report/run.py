"""The report stage's I/O: read each plate's QC table, flat-field and flagged images; write the page."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from plateflow.core.contract import site_id
from plateflow.core.imageio import UnreadableImageError, read_image, read_stack
from plateflow.core.provenance import read_table
from plateflow.report.flatfields import flatfield_html
from plateflow.report.headline import flagged_table_html, headline_html, overview_html
from plateflow.report.heatmaps import heatmaps_html, plate_channels
from plateflow.report.page import page_html, plate_section_html
from plateflow.report.segmentation_qc import segmentation_qc_html
from plateflow.report.summary import Plate, Summary, plate_from_table, sorted_flagged, summarise
from plateflow.report.thumbnails import (
    THUMB_TILE,
    SiteFiles,
    channel_order,
    channel_tile,
    spread_over_wells,
    thumbnail_figure,
    thumbnails_html,
)
from plateflow.report.validation import accuracy_html

logger = logging.getLogger(__name__)

__all__ = ["write_qc_report"]


def _load_plate(spec: Mapping) -> Plate:
    name = str(spec["name"])
    return plate_from_table(name, read_table(spec["qc_table"]), wells=spec.get("wells") or [],
                            source=str(spec["qc_table"]))


def _read_tiles(files: Mapping[str, str | Path] | None,
                channels: Sequence[str]) -> dict[str, np.ndarray | str]:
    """Each channel of a site as a thumbnail tile, or why its file could not be read."""
    tiles: dict[str, np.ndarray | str] = {}
    for ch in channel_order(files, channels):
        try:
            tiles[ch] = channel_tile(read_image(files[ch]), THUMB_TILE)
        except UnreadableImageError as err:
            tiles[ch] = err.reason
    return tiles


def _files_from_table(plate: Plate) -> dict[str, dict[str, str]]:
    """``"well/site"`` -> channel -> raw file, from the QC table's ``Metadata_FileName_*``."""
    prefix = "Metadata_FileName_"
    columns = [c for c in plate.table.columns if c.startswith(prefix)]
    return {
        site_id(row["Metadata_Well"], row["Metadata_Site"]):
            {c.removeprefix(prefix): row[c] for c in columns}
        for row in plate.table.to_dict("records")
    }


def _thumbnails_section(plate: Plate, spec: Mapping, flagged, thumbnails_max: int) -> str:
    site_files = SiteFiles(spec.get("site_files") or _files_from_table(plate))
    channels = plate_channels(plate.table.columns)
    figures = []
    for _, row in spread_over_wells(flagged, thumbnails_max).iterrows():
        files = site_files.get(row["Metadata_Well"], row["Metadata_Site"])
        figures.append(thumbnail_figure(row, _read_tiles(files, channels),
                                        files_listed=bool(files)))
    return thumbnails_html(len(flagged), figures)


def _flatfield_section(plate: Plate, path: str | Path | None) -> str:
    if path is None:
        return flatfield_html(None)
    try:
        stack, meta = read_stack(path)
    except Exception as err:  # noqa: BLE001 - a broken file must not stop the report
        logger.error("plate %s: cannot read the flat-field '%s': %s", plate.name, path, err)
        return flatfield_html(None, error=err)
    return flatfield_html(stack, list(meta.get("channels") or []))


def _table_section(plate: Plate, path: str | Path | None, what: str, render) -> str:
    """``render(table)`` of the plate's table at ``path`` (nothing without one); a table that
    cannot be read becomes ``render(None, error=...)``: a broken file must not stop the report."""
    if path is None:
        return ""
    try:
        table = read_table(path)
    except Exception as err:  # noqa: BLE001 - a broken file must not stop the report
        logger.error("plate %s: cannot read the %s '%s': %s", plate.name, what, path, err)
        return render(None, error=err)
    return render(table)


def _segmentation_qc_section(plate: Plate, path: str | Path | None) -> str:
    return _table_section(plate, path, "segmentation QC",
                          lambda table, **kw: segmentation_qc_html(plate, table, **kw))


def _accuracy_section(plate: Plate, path: str | Path | None) -> str:
    return _table_section(plate, path, "accuracy table", accuracy_html)


def _plate_section(plate: Plate, summary: Summary, spec: Mapping, index: int,
                   thumbnails_max: int) -> str:
    flagged = sorted_flagged(plate)
    return plate_section_html(plate.name, index, [
        headline_html(plate, summary),
        heatmaps_html(plate),
        _thumbnails_section(plate, spec, flagged, thumbnails_max),
        _flatfield_section(plate, spec.get("flatfield")),
        flagged_table_html(plate.name, flagged),
        _segmentation_qc_section(plate, spec.get("segmentation_qc")),
        _accuracy_section(plate, spec.get("accuracy")),
    ])


def write_qc_report(
    *, plates: Sequence[Mapping], output: str | Path, thumbnails_max: int = 24
) -> Path:
    """Write one self-contained HTML QC report for one or more plates.

    Parameters
    ----------
    plates : list of dict
        One dict per plate with keys ``"name"`` (str), ``"qc_table"`` (path of the plate's QC
        Parquet: one row per site with ``Metadata_Well``, ``Metadata_Site``, ``QC_Status``,
        ``QC_Reasons`` and ``QC_<Metric>_<Channel>`` metrics), ``"flatfield"`` (path of the
        (C, Y, X) float32 flat-field TIFF, or None), ``"site_files"`` (``"well/site"`` ->
        {channel: raw image path}; default: the QC table's ``Metadata_FileName_<channel>``) and ``"wells"`` (the plate's well names, which choose the
        96-, 384- or 1536-well layout of the plate maps), and optionally ``"segmentation_qc"``
        (path of the plate's segmentation QC table, drawn in its "Segmentation QC" part) and
        ``"accuracy"`` (path of its segmentation accuracy table, rule validate_segmentation).
    output : path
        The HTML file to write (parent folders are created).
    thumbnails_max : int
        At most this many flagged sites per plate are shown as images (all are in the table).

    Returns
    -------
    Path
        ``output``.
    """
    if thumbnails_max < 0:
        raise ValueError(f"thumbnails_max must be 0 or more, not {thumbnails_max}")
    loaded = [_load_plate(spec) for spec in plates]
    summaries = [summarise(p) for p in loaded]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = []
    for i, (spec, plate, summary) in enumerate(zip(plates, loaded, summaries)):
        sections.append(_plate_section(plate, summary, spec, i, thumbnails_max))
        logger.info("QC report, plate %s: %s (%d sites, %d passed, %d failed, %d unreadable)",
                    plate.name, summary.verdict_text, summary.total, summary.passed,
                    summary.failed, summary.unreadable)
    page = page_html(
        plate_names=[p.name for p in loaded],
        overview=overview_html(loaded, summaries),
        sections=sections,
        stamp=stamp,
    )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output
