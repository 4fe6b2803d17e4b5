"""The "Segmentation QC" part of a plate's section: counts, a plate map and the flagged sites.

Reads the plate's segmentation QC table (``results/segmentation/{plate}/sites.parquet``, one
row per site: ``SegQC_Status``, ``SegQC_Reasons``, ``SegQC_NucleiCount``, ``SegQC_MatchRate``,
``SegQC_BorderAreaFraction``, ``SegQC_LowConfidenceFraction``, ...).
"""

from __future__ import annotations

import math

import pandas as pd

from plateflow.report.heatmaps import heatmap_html
from plateflow.report.html import e, fmt_number, fmt_percent
from plateflow.report.plate_layout import canonical_well, site_sort_key
from plateflow.report.summary import Plate

__all__ = ["segmentation_qc_html"]

_FLAGGED, _NOT_SEGMENTED, _ERROR = "flagged", "not segmented", "error"
#: Per-site statistics summarised in the section: column, label, format.
_STATISTICS = (
    ("SegQC_NucleiCount", "nuclei per site", fmt_number),
    ("SegQC_MedianNucleusArea", "median nucleus area (px)", fmt_number),
    ("SegQC_MatchRate", "nuclei with a cell around them", fmt_percent),
    ("SegQC_BorderAreaFraction", "area in objects touching the border", fmt_percent),
    ("SegQC_LowConfidenceFraction", "low-confidence objects", fmt_percent),
)


def _median(table: pd.DataFrame, column: str) -> float:
    if column not in table:
        return math.nan
    values = pd.to_numeric(table[column], errors="coerce").dropna()
    return float(values.median()) if len(values) else math.nan


def segmentation_qc_html(plate: Plate, table: pd.DataFrame | None, *,
                         error: Exception | None = None) -> str:
    """The plate's segmentation QC as HTML.

    Parameters
    ----------
    plate : Plate
        The plate (its well layout places the plate map).
    table : DataFrame or None
        The plate's segmentation QC table; None when there is none (or it could not be read).
    error : Exception, optional
        Why the table could not be read.
    """
    head = ('<h3 id="segmentation-qc">Segmentation QC</h3><p class="note">Per site: nuclei '
            "found, compared with QC's foreground object count and with the plate. A flagged site "
            "(count far from QC's, or a plate outlier) is listed for review and re-acquisition; "
            "it is not stopped.</p>")
    if table is None:
        why = f": {error}" if error is not None else ""
        return head + f'<p class="warn">No segmentation QC table{e(why)}.</p>'
    status = table["SegQC_Status"].astype(str)
    segmented = table[status.isin(["pass", _FLAGGED])]
    counts = [(len(segmented), "sites segmented"), ((status == _FLAGGED).sum(), "of them flagged"),
              ((status == _NOT_SEGMENTED).sum(), "not segmented (stopped by QC)"),
              ((status == _ERROR).sum(), "unreadable label stacks")]
    parts = [head, '<p data-segqc="counts">' + ", ".join(
        f"<b>{int(n)}</b> {e(label)}" for n, label in counts) + "</p>"]
    stats = [f"{e(label)}: <b>{e(fmt(_median(segmented, column)))}</b>"
             for column, label, fmt in _STATISTICS
             if math.isfinite(_median(segmented, column))]
    if stats:
        parts.append(f'<p class="note">Median over segmented sites: {"; ".join(stats)}.</p>')
    parts.append(_count_map(plate, table))
    parts.append(_flagged_table(plate, table[status.isin([_FLAGGED, _ERROR])]))
    return "".join(parts)


def _count_map(plate: Plate, table: pd.DataFrame) -> str:
    if plate.layout.geometry is None or "SegQC_NucleiCount" not in table:
        return ""
    wells = [canonical_well(w) for w in table["Metadata_Well"]]
    counts = pd.to_numeric(table["SegQC_NucleiCount"], errors="coerce")
    values = {str(w): float(v) for w, v in counts.groupby(wells).median().items()}
    flagged = (table["SegQC_Status"] == _FLAGGED).groupby(wells).sum()
    text = {str(w): str(int(n)) for w, n in flagged.items() if n > 0}
    finite = [v for v in values.values() if math.isfinite(v)]
    top = max(finite, default=1.0)
    return ('<div class="row">' + heatmap_html(
        plate, values, title="Nuclei per site (median per well; number = flagged sites)",
        cmap="viridis", fmt=fmt_number, vrange=(0.0, top if top > 0 else 1.0),
        cell_text=text if plate.layout.geometry.wells <= 384 else None,
        key="SegQC_NucleiCount") + "</div>")


def _flagged_table(plate: Plate, flagged: pd.DataFrame) -> str:
    head = f"<h4>Flagged by segmentation QC ({len(flagged)})</h4>"
    if flagged.empty:
        return head + '<p class="good">None.</p>'
    order = sorted(range(len(flagged)), key=lambda i: (
        plate.plate_order(canonical_well(flagged["Metadata_Well"].iloc[i])),
        site_sort_key(flagged["Metadata_Site"].iloc[i])))
    rows = []
    for i in order:
        r = flagged.iloc[i]
        count = pd.to_numeric(pd.Series([r.get("SegQC_NucleiCount")]), errors="coerce").iloc[0]
        qc_count = pd.to_numeric(pd.Series([r.get("SegQC_QCObjectCount")]),
                                 errors="coerce").iloc[0]
        reasons = "<br>".join(e(x) for x in str(r["SegQC_Reasons"]).split("; ") if x)
        rows.append(
            f'<tr data-well="{e(r["Metadata_Well"])}" data-site="{e(r["Metadata_Site"])}">'
            f'<td>{e(plate.name)}</td><td>{e(r["Metadata_Well"])}</td>'
            f'<td>{e(r["Metadata_Site"])}</td><td>{e(r["SegQC_Status"])}</td>'
            f"<td>{e(fmt_number(count))}</td><td>{e(fmt_number(qc_count))}</td>"
            f"<td>{reasons}</td></tr>")
    return (head + '<table class="flagged segqc"><tr><th>plate</th><th>well</th><th>site</th>'
            "<th>status</th><th>nuclei</th><th>QC objects</th><th>reasons</th></tr>"
            + "".join(rows) + "</table>")
