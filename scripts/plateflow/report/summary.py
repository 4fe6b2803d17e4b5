"""A plate's QC table as the report sees it, and the verdict on the plate.

"Flagged" means failed or unreadable. The verdict follows :data:`VERDICT_RULES`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from plateflow.core.contract import QC_PASS
from plateflow.report.plate_layout import WellPlacement, canonical_well, place_wells, site_sort_key

logger = logging.getLogger(__name__)

__all__ = [
    "BAD_PLATE_FRACTION",
    "CHECK_FRACTION",
    "QC_UNREADABLE",
    "REQUIRED_COLUMNS",
    "VERDICT_RULES",
    "Plate",
    "Summary",
    "plate_from_table",
    "reason_category",
    "reason_counts",
    "sorted_flagged",
    "summarise",
]

#: Verdict thresholds on the flagged fraction of sites.
BAD_PLATE_FRACTION = 0.10
CHECK_FRACTION = 0.02
VERDICT_RULES = (
    f"red BAD PLATE: more than {BAD_PLATE_FRACTION:.0%} of sites failed or were unreadable "
    "(or the plate has no site); "
    f"amber CHECK: more than {CHECK_FRACTION:.0%} of sites flagged, or any unreadable image "
    "file, or any well without a usable site; "
    "green OK: otherwise."
)
#: ``QC_Status`` of a site whose image files could not be read.
QC_UNREADABLE = "unreadable"
#: Columns a plate QC table must have.
REQUIRED_COLUMNS = ("Metadata_Well", "Metadata_Site", "QC_Status")
_FAR = (10**6, 0)  # sort position of a well that is not on the plate map


@dataclass
class Plate:
    """One plate's QC rows (with a canonical ``_Well`` column) and its well layout."""

    name: str
    table: pd.DataFrame
    wells: list[str]  # canonical names of the wells listed for the plate
    layout: WellPlacement

    def plate_order(self, well: str) -> tuple:
        """Sort key of a well: its plate position (row, column), unplaced names last."""
        return self.layout.positions.get(well, _FAR), well


def plate_from_table(
    name: str, table: pd.DataFrame, *, wells: Sequence[str] = (), source: str = ""
) -> Plate:
    """Tidy a plate QC table (one row per site) and place its wells.

    Parameters
    ----------
    name : str
    table : DataFrame
        One row per site with :data:`REQUIRED_COLUMNS`, ``QC_Reasons`` (optional) and
        ``QC_<Metric>_<Channel>`` metrics.
    wells : sequence of str
        The plate's wells (also those never imaged); they choose the plate geometry.
    source : str
        Where the table came from, for error messages.

    Raises
    ------
    ValueError
        When a required column is missing.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table]
    if missing:
        raise ValueError(
            f"plate {name}: the QC table '{source}' lacks the column(s) "
            f"{', '.join(missing)}; is it the plate QC table of the pipeline?"
        )
    table = table.copy()
    table["Metadata_Well"] = table["Metadata_Well"].astype(str)
    table["_Well"] = [canonical_well(w) for w in table["Metadata_Well"]]
    table["Metadata_Site"] = table["Metadata_Site"].astype(str)
    table["QC_Status"] = table["QC_Status"].astype(str).str.lower()
    if "QC_Reasons" not in table:
        table["QC_Reasons"] = ""
    table["QC_Reasons"] = table["QC_Reasons"].fillna("").astype(str)
    listed = list(dict.fromkeys(canonical_well(w) for w in wells))
    layout = place_wells(dict.fromkeys([*listed, *table["_Well"]]))
    if layout.unplaced:
        logger.warning("plate %s: %d well name(s) are not like 'B03' and are left off the plate "
                       "maps: %s", name, len(layout.unplaced), ", ".join(layout.unplaced[:10]))
    return Plate(name=name, table=table, wells=listed, layout=layout)


def sorted_flagged(plate: Plate) -> pd.DataFrame:
    """The flagged rows of a plate in plate order (by well position, then site number)."""
    flagged = plate.table[plate.table["QC_Status"] != QC_PASS]
    if flagged.empty:
        return flagged
    keys = [
        (plate.layout.positions.get(w, _FAR), w, site_sort_key(s))
        for w, s in zip(flagged["_Well"], flagged["Metadata_Site"])
    ]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return flagged.iloc[order]


@dataclass
class Summary:
    """The headline numbers and verdict of one plate."""

    total: int
    passed: int
    failed: int
    unreadable: int
    wells_unusable: list[str]  # in plate order
    verdict: str  # "ok" | "check" | "bad"
    verdict_text: str
    why: list[str]


def summarise(plate: Plate) -> Summary:
    """Count the sites, find the wells with no usable site, and give the verdict."""
    status = plate.table["QC_Status"]
    total = len(status)
    passed = int((status == QC_PASS).sum())
    unreadable = int((status == QC_UNREADABLE).sum())
    failed = total - passed - unreadable
    usable = set(plate.table.loc[status == QC_PASS, "_Well"])
    wells = list(dict.fromkeys([*plate.wells, *plate.table["_Well"]]))
    unusable = sorted((w for w in wells if w not in usable), key=plate.plate_order)
    flagged_fraction = (failed + unreadable) / total if total else 1.0
    why = []
    if total == 0:
        verdict, why = "bad", ["the QC table has no site"]
    elif flagged_fraction > BAD_PLATE_FRACTION:
        verdict = "bad"
        why.append(f"{flagged_fraction:.1%} of sites flagged (> {BAD_PLATE_FRACTION:.0%})")
    else:
        if flagged_fraction > CHECK_FRACTION:
            why.append(f"{flagged_fraction:.1%} of sites flagged (> {CHECK_FRACTION:.0%})")
        if unreadable:
            why.append(f"{unreadable} site(s) with unreadable image files")
        if unusable:
            why.append(f"{len(unusable)} well(s) without a usable site")
        verdict = "check" if why else "ok"
    text = {"ok": "OK", "check": "CHECK", "bad": "BAD PLATE"}[verdict]
    return Summary(total, passed, failed, unreadable, unusable, verdict, text, why)


def reason_category(reason: str, status: str) -> str:
    """Group similar reasons.

    ``"DNA: focus score 1.6 < 2.3 (out of focus)"`` -> ``"DNA: out of focus"``;
    ``"ER: 3.1% saturated pixels > 1.0%"`` -> ``"ER: saturated pixels"``; any reason of an
    unreadable site -> ``"unreadable image file"``.
    """
    if status == QC_UNREADABLE:
        return "unreadable image file"
    channel, sep, rest = reason.partition(": ")
    if not sep:
        channel, rest = "", reason
    paren = re.search(r"\(([^()]*)\)\s*$", rest)
    if paren:
        text = paren.group(1)
    else:
        text = re.sub(r"[-+]?\d[\d.,eE+-]*\s*%?", " ", rest)
        text = re.sub(r"[<>=]", " ", text)
        text = " ".join(text.split())
    return f"{channel}: {text}" if channel else text


def reason_counts(plate: Plate) -> Counter:
    """How many flagged sites have each :func:`reason_category` (a site counts once per category;
    a site with no reason counts as ``"no reason given"``)."""
    flagged = plate.table[plate.table["QC_Status"] != QC_PASS]
    counts: Counter = Counter()
    for status, reasons in zip(flagged["QC_Status"], flagged["QC_Reasons"]):
        cats = {reason_category(r, status) for r in (reasons.split("; ") if reasons else [])}
        counts.update(cats or {"no reason given"})
    return counts
