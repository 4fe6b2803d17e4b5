"""The "Segmentation accuracy" part of a plate's section: how the segmentation of the plate's
hand-labelled sites compares with their ground truth (rule ``validate_segmentation``).

Pooled figures add up each compartment's true positives, false positives and false negatives
at IoU 0.5 over the segmented sites first, as ``plateflow.segmentation.metrics.pooled`` does
(so a site with many objects weighs as much as its objects); AP 0.5:0.95 and Dice are means
over sites.
"""

from __future__ import annotations

import math

import pandas as pd

from plateflow.report.html import e, fmt_number

__all__ = ["accuracy_html", "pooled_accuracy"]

_MEANING = ("AP = TP / (TP + FP + FN) with objects matched one-to-one at IoU &ge; 0.5 (the Data "
            "Science Bowl's measure); AP 0.5:0.95 averages it over IoU thresholds 0.5 to 0.95; "
            "Dice compares the foreground pixels.")


def _ratio(num: int, den: int, empty: float) -> float:
    return num / den if den else empty


def pooled_accuracy(table: pd.DataFrame) -> pd.DataFrame:
    """One row per compartment: sites scored and not segmented, pooled AP@0.5, precision and
    recall, mean AP 0.5:0.95 and Dice over sites, and the summed counts."""
    rows = []
    for compartment, group in table.groupby("Metadata_Compartment", sort=False):
        done = group[group["Metadata_Segmented"].astype(bool)]
        tp, fp, fn = (int(done[c].sum()) for c in ("TP_50", "FP_50", "FN_50"))
        rows.append({
            "Compartment": compartment, "Sites": len(done),
            "NotSegmented": int(len(group) - len(done)),
            "AP_50": _ratio(tp, tp + fp + fn, 1.0),
            "Precision_50": _ratio(tp, tp + fp, float(fn == 0)),
            "Recall_50": _ratio(tp, tp + fn, 1.0),
            "AP_50_95": float(done["AP_50_95"].mean()) if len(done) else math.nan,
            "Dice": float(done["Dice"].mean()) if len(done) else math.nan,
            "TP_50": tp, "FP_50": fp, "FN_50": fn,
        })
    return pd.DataFrame(rows)


def _cells(values) -> str:
    return "".join(f"<td>{e(v)}</td>" for v in values)


def _pooled_table(pooled: pd.DataFrame) -> str:
    head = ("<tr><th>compartment</th><th>sites</th><th>AP@0.5</th><th>precision</th>"
            "<th>recall</th><th>AP 0.5:0.95</th><th>Dice</th><th>TP</th><th>FP</th>"
            "<th>FN</th></tr>")
    body = "".join(
        "<tr>" + _cells([r.Compartment, r.Sites, fmt_number(r.AP_50),
                         fmt_number(r.Precision_50), fmt_number(r.Recall_50),
                         fmt_number(r.AP_50_95), fmt_number(r.Dice), r.TP_50, r.FP_50,
                         r.FN_50]) + "</tr>"
        for r in pooled.itertuples())
    return f'<table class="overview accuracy-pooled">{head}{body}</table>'


def _count(value) -> str:
    return "" if pd.isna(value) else str(int(value))


def _site_table(table: pd.DataFrame) -> str:
    head = ("<tr><th>well</th><th>site</th><th>compartment</th><th>AP@0.5</th>"
            "<th>AP 0.5:0.95</th><th>Dice</th><th>precision</th><th>recall</th>"
            "<th>true objects</th><th>found</th><th>note</th></tr>")
    rows = []
    for r in table.itertuples():
        if r.Metadata_Segmented:
            figures = [fmt_number(v) for v in (r.AP_50, r.AP_50_95, r.Dice, r.Precision_50,
                                               r.Recall_50)]
            note = ""
        else:
            figures = [""] * 5
            note = f"not segmented: {r.Metadata_NotSegmentedReason}"
        rows.append("<tr>" + _cells([r.Metadata_Well, r.Metadata_Site, r.Metadata_Compartment,
                                     *figures, _count(r.N_True), _count(r.N_Predicted), note])
                    + "</tr>")
    return f'<table class="flagged accuracy-sites">{head}{"".join(rows)}</table>'


def accuracy_html(table: pd.DataFrame | None, *, error: Exception | None = None) -> str:
    """The "Segmentation accuracy" part of a plate's section.

    Parameters
    ----------
    table : DataFrame or None
        The plate's accuracy table (one row per site and compartment, see
        ``plateflow.segmentation.validation``); None when it could not be read.
    error : Exception, optional
        Why it could not be read (shown instead of the figures).
    """
    head = ('<div class="accuracy"><h3>Segmentation accuracy <span class="meaning">against '
            "hand-labelled ground truth</span></h3>")
    if table is None:
        why = f": {e(error)}" if error is not None else ""
        return head + f'<p class="warn">The accuracy table could not be read{why}.</p></div>'
    if table.empty:
        return head + '<p class="note">No ground-truth sites.</p></div>'
    pooled = pooled_accuracy(table)
    n_sites = table[["Metadata_Well", "Metadata_Site"]].drop_duplicates().shape[0]
    skipped = int((~table.drop_duplicates(["Metadata_Well", "Metadata_Site"])
                   ["Metadata_Segmented"].astype(bool)).sum())
    summary = (f'<p class="note">{n_sites} hand-labelled site(s)'
               + (f", {skipped} of them not segmented (stopped by QC)" if skipped else "")
               + f". Pooled over sites. {_MEANING}</p>")
    details = (f"<details open><summary>Per site ({len(table)} rows)</summary>"
               f"{_site_table(table)}</details>")
    return head + summary + _pooled_table(pooled) + details + "</div>"
