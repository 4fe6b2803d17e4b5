"""Page assembly: the style sheet, one plate's section, and the whole self-contained page."""

from __future__ import annotations

from collections.abc import Sequence

from plateflow import __version__
from plateflow.report.colours import ABSENT_COLOUR
from plateflow.report.html import e
from plateflow.report.summary import VERDICT_RULES
from plateflow.report.thumbnails import THUMB_TILE

__all__ = ["CSS", "page_html", "plate_section_html"]

#: The whole style sheet, inline in the page (no network, no JavaScript).
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;
 color:#1a1a1a;background:#fff;font-size:14px}
h1{margin:0 0 4px}h2{margin:0 0 12px;font-size:24px}h3{margin:28px 0 6px;font-size:18px;
 border-bottom:1px solid #ddd;padding-bottom:3px}h4{margin:14px 0 4px;font-size:15px}
.meta,.note{color:#555}.meaning{font-weight:normal;color:#666;font-size:13px}
.warn{color:#a15c00}.good{color:#1b7a33;font-weight:bold}
section.plate{border:1px solid #ccc;border-radius:8px;padding:16px 20px;margin:22px 0}
.overview{border-collapse:collapse;margin:10px 0}
.overview td,.overview th{border:1px solid #ccc;padding:4px 10px;text-align:right}
.overview td:first-child,.overview th:first-child{text-align:left}
.headline{display:flex;gap:10px;flex-wrap:wrap;align-items:stretch}
.verdict{font-size:30px;font-weight:800;padding:14px 26px;border-radius:8px;color:#fff;
 display:flex;align-items:center;letter-spacing:1px}
.v-ok{background:#1b8a3a}.v-check{background:#e69500}.v-bad{background:#c62828}
.vs{display:inline-block;padding:1px 8px;border-radius:4px;color:#fff;font-weight:bold}
.tile{border:1px solid #ccc;border-radius:8px;padding:8px 16px;min-width:90px;text-align:center}
.tile .n{font-size:28px;font-weight:700}.tile .l{font-size:12px;color:#444}
.tile .p{font-size:12px;color:#666;min-height:14px}
.t-pass .n{color:#1b7a33}.t-fail .n{color:#c62828}.t-unread .n{color:#7b1fa2}
.t-zero .n{color:#999}
.why{font-weight:bold;margin:8px 0 2px}.reasons ul{margin:2px 0 0;padding-left:22px}
.unusable{margin:6px 0}
.rules{font-size:12px;color:#555}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:0}figcaption{font-size:12px}
.hm figcaption{font-weight:600;margin-bottom:2px}
table.grid{border-collapse:collapse;table-layout:fixed}
table.grid td{width:var(--c);height:var(--c);padding:0;border:1px solid #fff;font-size:9px;
 text-align:center;line-height:1;overflow:hidden}
table.g1536 td{border-width:0.5px}
table.grid th{font-size:9px;font-weight:normal;color:#555;padding:0 2px;line-height:1}
td.absent{background:""" + ABSENT_COLOUR + """}
td.nan,.sw.nan{background:repeating-linear-gradient(45deg,#999 0 2px,#eee 2px 4px)}
.legend{display:flex;align-items:center;gap:5px;font-size:11px;margin-top:3px}
.legend .bar{display:inline-block;width:120px;height:10px;border:1px solid #999}
.legend .sw{display:inline-block;width:10px;height:10px;border:1px solid #999;margin-left:8px}
.thumbs{display:flex;flex-wrap:wrap;gap:14px}
.thumb{border:1px solid #ddd;border-radius:6px;padding:6px;max-width:520px;
 overflow-wrap:anywhere}
.thumb img{display:block;image-rendering:pixelated}
.chlabels{display:flex;gap:3px;font-size:11px;color:#555}.chlabels span{text-align:center}
.thumb ul{margin:2px 0 0;padding-left:16px}
.placeholder{width:""" + str(THUMB_TILE) + """px;height:""" + str(THUMB_TILE) + """px;
 background:#5a5a5a;color:#fff;display:flex;align-items:center;justify-content:center;
 font-weight:bold;text-transform:uppercase;font-size:13px;text-align:center}
.st{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:11px}
.st-fail{background:#c62828}.st-unreadable{background:#7b1fa2}
.flat img{display:block}
table.flagged{border-collapse:collapse;font-size:12px}
table.flagged td,table.flagged th{border:1px solid #ccc;padding:3px 8px;vertical-align:top;
 text-align:left;overflow-wrap:anywhere}
details{margin-top:12px}summary{cursor:pointer;font-weight:600}
"""


def plate_section_html(name: str, index: int, parts: Sequence[str]) -> str:
    """One plate's ``<section>`` (anchor ``plate-<index>``) holding ``parts`` in order."""
    return (
        f'<section class="plate" id="plate-{index}" data-plate="{e(name)}">'
        f"<h2>Plate {e(name)}</h2>{''.join(parts)}</section>"
    )


def page_html(
    *, plate_names: Sequence[str], overview: str, sections: Sequence[str], stamp: str
) -> str:
    """The complete HTML page: title, meta line, overview table, verdict rules, plate sections."""
    body = [
        "<h1>Image QC report</h1>",
        (f'<p class="meta">{len(plate_names)} plate(s) &middot; generated {e(stamp)} by plateflow '
         f"{e(__version__)}</p>"),
        overview,
        (f'<p class="rules"><b>Verdict rules</b> (flagged = failed or unreadable): '
         f"{e(VERDICT_RULES)}</p>"),
        *sections,
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Image QC report: {e(', '.join(plate_names))}</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
