"""Plate maps: one HTML table per metric, one coloured cell per well (the median of its sites).

Drawn for every channel: the families of :data:`HEATMAP_METRICS`, the fraction of sites that
did not pass, and (folded) plate-relative z-scores (``QC_PlateZ_<Metric>_<Channel>``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from plateflow.core.contract import QC_PASS
from plateflow.report.colours import ABSENT_COLOUR, colour, gradient_css, text_colour
from plateflow.report.html import e, fmt_percent, formatter
from plateflow.report.plate_layout import row_label, well_name
from plateflow.report.summary import Plate

__all__ = ["HEATMAP_METRICS", "heatmaps_html", "metric_channels", "plate_channels"]

#: Metric families drawn as plate maps: (metric, title, how to read it).  The colour scale of
#: each runs from 0 to the plate's highest well, except for those in :data:`_RELATIVE_SCALE`
#: (lowest to highest well); the saturation scale reaches at least :data:`_SATURATION_SCALE_MIN`
#: so that a plate with a few saturated pixels everywhere does not look alarming.
HEATMAP_METRICS: tuple[tuple[str, str, str], ...] = (
    ("FocusScore", "Focus score", ("sharpness: about 6 for sharp nuclei, about 2 blurred; "
     "low = out of focus")),
    ("SaturatedFraction", "Saturated pixels", ("share of pixels at the detector maximum; "
     "high = over-exposed")),
    ("ForegroundFraction", "Foreground", ("share of the field covered by cells; low = empty "
     "field or no stain")),
    ("Intensity_P50", "Median intensity", "median raw intensity (mostly the background level)"),
)

_RELATIVE_SCALE = {"Intensity_P50"}
_SATURATION_SCALE_MIN = 0.01
_CELL_PX = {96: 24, 384: 12, 1536: 7}


def metric_channels(columns: Sequence[str], metric: str, prefix: str = "QC_") -> list[str]:
    """Channels that have a ``<prefix><metric>_<channel>`` column, in column order."""
    head = f"{prefix}{metric}_"
    return [c[len(head):] for c in columns if c.startswith(head) and len(c) > len(head)]


def plate_channels(columns: Sequence[str]) -> list[str]:
    """Every channel with a plate map, in map order (the thumbnails' channel order)."""
    channels: list[str] = []
    for metric, _, _ in HEATMAP_METRICS:
        for ch in metric_channels(columns, metric):
            if ch not in channels:
                channels.append(ch)
    return channels


def _well_values(plate: Plate, column: str) -> dict[str, float]:
    values = pd.to_numeric(plate.table[column], errors="coerce")
    med = values.groupby(plate.table["_Well"]).median()
    return {str(w): float(v) for w, v in med.items()}


def heatmap_html(
    plate: Plate,
    values: Mapping[str, float],
    *,
    title: str,
    cmap: str,
    fmt: Callable[[float], str],
    vrange: tuple[float, float] | None = None,
    cell_text: Mapping[str, str] | None = None,
    empty_text: str = "",
    key: str = "",
) -> str:
    """One plate map: an HTML table with one coloured cell per well and a min/max legend.

    ``values`` maps canonical well names to the well's value; ``vrange`` is the colour scale
    (default: lowest to highest finite value); ``cell_text`` is written into the cells.
    """
    geo = plate.layout.geometry
    finite = [v for v in values.values() if v is not None and math.isfinite(v)]
    if vrange is None:
        vmin, vmax = (min(finite), max(finite)) if finite else (0.0, 1.0)
    else:
        vmin, vmax = vrange
    span = vmax - vmin
    px = _CELL_PX[geo.wells]
    label_every_col = 1 if geo.wells <= 384 else 4
    label_every_row = 1 if geo.wells <= 384 else 2
    out = [(f'<figure class="hm" data-key="{e(key)}"><figcaption>{e(title)}</figcaption>'
           f'<table class="grid g{geo.wells}" style="--c:{px}px"><tr><th></th>')]
    for c in range(geo.cols):
        lab = str(c + 1) if (c + 1) % label_every_col == 0 or c == 0 else ""
        out.append(f"<th>{lab}</th>")
    out.append("</tr>")
    for r in range(geo.rows):
        lab = row_label(r) if r % label_every_row == 0 else ""
        out.append(f"<tr><th>{lab}</th>")
        for c in range(geo.cols):
            well = plate.layout.at.get((r, c))
            name = well_name(r, c)
            if well is None:
                out.append(f'<td class="absent" data-well="{e(name)}" '
                           f'title="{e(name)}: no such well on this plate"></td>')
                continue
            v = values.get(well, math.nan)
            if v is None or not math.isfinite(v):
                out.append(f'<td class="nan" data-well="{e(name)}" '
                           f'title="{e(well)}: no value (no readable site)">'
                           f"{e(empty_text)}</td>")
                continue
            t = 0.5 if span <= 0 else (v - vmin) / span
            bg = colour(t, cmap)
            text = cell_text.get(well, "") if cell_text else ""
            style = f"background:{bg}" + (f";color:{text_colour(bg)}" if text else "")
            out.append(f'<td data-well="{e(name)}" data-value="{v:.6g}" style="{style}" '
                       f'title="{e(well)}: {e(fmt(v))}">{e(text)}</td>')
        out.append("</tr>")
    out.append("</table>")
    out.append(
        f'<div class="legend"><span>{e(fmt(vmin))}</span>'
        f'<span class="bar" style="background:{gradient_css(cmap)}"></span>'
        f'<span>{e(fmt(vmax))}</span>'
        f'<span class="sw" style="background:{ABSENT_COLOUR}"></span><span>no well</span>'
        f'<span class="sw nan"></span><span>no value</span></div></figure>'
    )
    return "".join(out)


def _fail_map_html(plate: Plate) -> str:
    t = plate.table
    flagged = (t["QC_Status"] != QC_PASS).astype(float)
    grouped = flagged.groupby(t["_Well"])
    frac = {str(w): float(v) for w, v in grouped.mean().items()}
    n_bad = {str(w): str(int(v)) for w, v in grouped.sum().items() if v > 0}
    return heatmap_html(
        plate, frac, title="Sites not passing QC (fraction per well; number = flagged sites)",
        cmap="orrd", fmt=fmt_percent, vrange=(0.0, 1.0),
        cell_text=n_bad if plate.layout.geometry.wells <= 384 else None, key="QC_FailedFraction",
    )


def _metric_map_html(plate: Plate, metric: str, title: str, channel: str) -> str:
    column = f"QC_{metric}_{channel}"
    values = _well_values(plate, column)
    vrange = None
    if metric not in _RELATIVE_SCALE:
        finite = [v for v in values.values() if math.isfinite(v)]
        top = max(finite, default=1.0)
        if metric == "SaturatedFraction":
            top = max(top, _SATURATION_SCALE_MIN)
        vrange = (0.0, top if top > 0 else 1.0)
    return heatmap_html(plate, values, title=f"{title}: {channel}", cmap="viridis",
                        fmt=formatter(metric), vrange=vrange, key=column)


def _plate_z_html(plate: Plate, z_cols: Sequence[str]) -> str:
    z_maps = []
    for col in z_cols:
        values = _well_values(plate, col)
        finite = [abs(v) for v in values.values() if math.isfinite(v)]
        lim = max(3.0, max(finite)) if finite else 3.0
        z_maps.append(heatmap_html(
            plate, values, title=col.removeprefix("QC_PlateZ_").replace("_", " "),
            cmap="diverging", fmt=lambda v: f"{v:+.2g}", vrange=(-lim, lim), key=col,
        ))
    return ("<details><summary>Plate-relative robust z-scores (median over sites; 0 = typical "
            f"for this plate, beyond +/-3 = unusual): {len(z_cols)} maps</summary>"
            f'<div class="row">{"".join(z_maps)}</div></details>')


def heatmaps_html(plate: Plate) -> str:
    """The "Plate maps" section of a plate: failed fraction, metric maps, plate z-scores."""
    geo = plate.layout.geometry
    if geo is None:
        return '<p class="note">No well could be placed on a plate map.</p>'
    parts = [
        ('<h3>Plate maps</h3><p class="note">One cell per well, coloured by the median over its '
        "sites; hover a well for its value. Grey: no such well on the plate; hatched: no readable "
        "site. Colour scales run from 0 (median intensity: from the lowest well) to the highest "
        f"well; saturation from 0 to at least {fmt_percent(_SATURATION_SCALE_MIN)}. Plate "
        f"geometry: {geo.wells} wells ({geo.rows} x {geo.cols}).</p>")
    ]
    parts.append(f'<div class="row">{_fail_map_html(plate)}</div>')
    cols = plate.table.columns
    for metric, title, meaning in HEATMAP_METRICS:
        channels = metric_channels(cols, metric)
        if not channels:
            continue
        maps = [_metric_map_html(plate, metric, title, ch) for ch in channels]
        parts.append(f'<h4>{e(title)} <span class="meaning">({e(meaning)})</span></h4>'
                     f'<div class="row">{"".join(maps)}</div>')
    z_cols = [c for c in cols if c.startswith("QC_PlateZ_")]
    if z_cols:
        parts.append(_plate_z_html(plate, z_cols))
    if plate.layout.unplaced:
        parts.append(f'<p class="note">Wells not on the maps (names not like "B03"): '
                     f'{e(", ".join(plate.layout.unplaced))}</p>')
    return "".join(parts)
