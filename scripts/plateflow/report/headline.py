"""The report's text parts: a plate's headline, the overview of all plates, the flagged-site table."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from plateflow.report.html import e
from plateflow.report.summary import Plate, Summary, reason_counts

__all__ = ["flagged_table_html", "headline_html", "overview_html"]

_MAX_REASONS = 6  # most common reason categories listed
_MAX_WELLS = 48  # wells with no usable site listed by name


def headline_html(plate: Plate, s: Summary) -> str:
    """Verdict, count tiles, why, the most common reasons and the wells with no usable site."""
    def pct(n: int) -> str:
        return f"{100 * n / s.total:.1f} %" if s.total else ""

    tiles = [
        ("sites", s.total, "", "total"),
        ("passed", s.passed, pct(s.passed), "pass"),
        ("failed", s.failed, pct(s.failed), "fail" if s.failed else "zero"),
        ("unreadable", s.unreadable, pct(s.unreadable), "unread" if s.unreadable else "zero"),
        ("wells with no usable site", len(s.wells_unusable), "",
         "fail" if s.wells_unusable else "zero"),
    ]
    parts = [(f'<div class="headline"><div class="verdict v-{s.verdict}" '
             f'data-verdict="{s.verdict}">{e(s.verdict_text)}</div>')]
    for label, n, sub, cls in tiles:
        key = label.split()[0]
        parts.append(
            f'<div class="tile t-{cls}" data-count="{e(key)}"><div class="n">{n}</div>'
            f'<div class="l">{e(label)}</div><div class="p">{e(sub)}</div></div>'
        )
    parts.append("</div>")
    if s.why:
        parts.append(f'<p class="why">Why: {e("; ".join(s.why))}.</p>')
    counts = reason_counts(plate)
    if counts:
        items = "".join(f"<li><b>{n}</b> site{'s' if n != 1 else ''}: {e(cat)}</li>"
                        for cat, n in counts.most_common(_MAX_REASONS))
        more = len(counts) - _MAX_REASONS
        if more > 0:
            items += f"<li>... and {more} other reason(s), see the table below</li>"
        parts.append(f'<div class="reasons"><b>Most common reasons:</b><ul>{items}</ul></div>')
    if s.wells_unusable:
        shown = s.wells_unusable[:_MAX_WELLS]
        extra = len(s.wells_unusable) - len(shown)
        tail = f" ... and {extra} more" if extra > 0 else ""
        parts.append(f'<p class="unusable"><b>Wells with no usable site:</b> '
                     f'{e(", ".join(shown))}{e(tail)}</p>')
    return "".join(parts)


def overview_html(plates: Sequence[Plate], summaries: Sequence[Summary]) -> str:
    """One row per plate: verdict and counts, linked to the plate's section."""
    rows = []
    for i, (p, s) in enumerate(zip(plates, summaries)):
        rows.append(
            f'<tr><td><a href="#plate-{i}">{e(p.name)}</a></td>'
            f'<td><span class="vs v-{s.verdict}">{e(s.verdict_text)}</span></td>'
            f"<td>{s.total}</td><td>{s.passed}</td><td>{s.failed}</td><td>{s.unreadable}</td>"
            f"<td>{len(s.wells_unusable)}</td></tr>"
        )
    return ('<table class="overview"><tr><th>plate</th><th>verdict</th><th>sites</th>'
            "<th>passed</th><th>failed</th><th>unreadable</th><th>wells with no usable site</th>"
            f'</tr>{"".join(rows)}</table>')


def flagged_table_html(plate_name: str, flagged: pd.DataFrame) -> str:
    """Every flagged site of a plate (rows of :func:`~plateflow.report.summary.sorted_flagged`)
    with its status and reasons."""
    head = f"<h3>All flagged sites ({len(flagged)})</h3>"
    if flagged.empty:
        return head + '<p class="good">None.</p>'
    rows = []
    for well, site, status, reasons in zip(flagged["Metadata_Well"], flagged["Metadata_Site"],
                                           flagged["QC_Status"], flagged["QC_Reasons"]):
        items = "<br>".join(e(r) for r in reasons.split("; ") if r)
        rows.append(f'<tr class="r-{e(status)}"><td>{e(plate_name)}</td><td>{e(well)}</td>'
                    f'<td>{e(site)}</td><td><span class="st st-{e(status)}">{e(status)}'
                    f"</span></td><td>{items}</td></tr>")
    return (head + '<table class="flagged"><tr><th>plate</th><th>well</th><th>site</th>'
            f'<th>status</th><th>reasons</th></tr>{"".join(rows)}</table>')
