"""One self-contained HTML QC report per run: what a biologist needs to judge a plate at a glance.

For every plate the report shows, top to bottom:

1. a headline: sites total / passed / failed / unreadable, wells with no usable site, the most
   common failure reasons and a coloured verdict (rules in :data:`VERDICT_RULES`);
2. plate maps (heatmaps drawn as HTML tables, one cell per well, the well value being the median
   over its sites) of the focus score, saturated fraction, foreground fraction and median
   intensity of every channel, and of the fraction of sites that did not pass; plate-relative
   z-scores (``QC_PlateZ_<Metric>_<Channel>`` columns) in a folded section when present;
3. thumbnails of the flagged (failed or unreadable) sites, each channel auto-contrasted
   (1st-99th percentile) side by side, saturated pixels in red, with the reasons underneath;
4. the flat-field (illumination function) of each channel with its min, max and
   corner-to-centre ratio;
5. a table of every flagged site.

The file needs no network and no JavaScript: images are embedded base64 PNGs made with the
standard library (zlib + struct), styles are inline.
"""

from __future__ import annotations

import base64
import html
import logging
import math
import re
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from plateflow import __version__
from plateflow.illumination import corner_to_centre_ratio
from plateflow.imageio import UnreadableImageError, read_image, read_stack
from plateflow.provenance import read_table

logger = logging.getLogger(__name__)

__all__ = ["write_qc_report"]

#: Verdict thresholds; "flagged" = failed or unreadable.
BAD_PLATE_FRACTION = 0.10
CHECK_FRACTION = 0.02
VERDICT_RULES = (
    f"red BAD PLATE: more than {BAD_PLATE_FRACTION:.0%} of sites failed or were unreadable "
    "(or the plate has no site); "
    f"amber CHECK: more than {CHECK_FRACTION:.0%} of sites flagged, or any unreadable image "
    "file, or any well without a usable site; "
    "green OK: otherwise."
)

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
_STATUS_PASS, _STATUS_UNREADABLE = "pass", "unreadable"
_ABSENT_COLOUR = "#d4d4d4"
_VIRIDIS = ("#440154", "#472c7a", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
            "#addc30", "#fde725")
_ORRD = ("#fff7ec", "#fee8c8", "#fdd49e", "#fdbb84", "#fc8d59", "#ef6548", "#d7301f",
         "#b30000", "#7f0000")
_DIVERGING = ("#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b")
_THUMB_TILE = 128   # px, long side of one channel in a thumbnail
_FLAT_TILE = 180    # px, long side of a flat-field image
_GEOMETRIES = ((8, 12, 96), (16, 24, 384), (32, 48, 1536))
_CELL_PX = {96: 24, 384: 12, 1536: 7}
_WELL_RE = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,2})$")


# ------------------------------------------------------------------------------------ PNG --
def png_bytes(image: np.ndarray) -> bytes:
    """Encode an 8-bit image as PNG with the standard library.

    Parameters
    ----------
    image : (Y, X) or (Y, X, 3) uint8 ndarray
        Grey or RGB.

    Returns
    -------
    bytes
        A complete PNG file.
    """
    a = np.ascontiguousarray(image, dtype=np.uint8)
    if a.ndim == 2:
        colour_type, n = 0, 1
    elif a.ndim == 3 and a.shape[2] == 3:
        colour_type, n = 2, 3
    else:
        raise ValueError(f"a PNG needs a (Y, X) or (Y, X, 3) image, got shape {a.shape}")
    h, w = a.shape[:2]
    raw = np.zeros((h, 1 + w * n), np.uint8)  # filter byte 0 (none) before every row
    raw[:, 1:] = a.reshape(h, w * n)

    def chunk(tag: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))


def _img_tag(image: np.ndarray, *, alt: str, cls: str = "") -> str:
    data = base64.b64encode(png_bytes(image)).decode("ascii")
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{_e(alt)}" src="data:image/png;base64,{data}">'


# --------------------------------------------------------------------------------- colours --
def _hex_to_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _lut(anchors: Sequence[str]) -> np.ndarray:
    """(256, 3) uint8 colour table interpolated linearly between anchor colours."""
    rgb = np.array([_hex_to_rgb(c) for c in anchors], float)
    x = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(t, x, rgb[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


_LUTS = {"viridis": _lut(_VIRIDIS), "orrd": _lut(_ORRD), "diverging": _lut(_DIVERGING)}


def _colour(t: float, cmap: str) -> str:
    """Hex colour of ``t`` in [0, 1] on a colour map."""
    r, g, b = _LUTS[cmap][round(min(max(t, 0.0), 1.0) * 255)]
    return f"#{r:02x}{g:02x}{b:02x}"


def _text_colour(background: str) -> str:
    r, g, b = _hex_to_rgb(background)
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def _gradient_css(cmap: str) -> str:
    stops = ", ".join(_colour(t, cmap) for t in np.linspace(0, 1, 9))
    return f"linear-gradient(to right, {stops})"


# ---------------------------------------------------------------------------------- wells --
@dataclass(frozen=True)
class _Geometry:
    rows: int
    cols: int
    wells: int


def _parse_well(name: str) -> tuple[int, int] | None:
    """``"B03"`` -> ``(1, 2)`` (zero-based row, column); None when the name is not A01-style."""
    m = _WELL_RE.match(str(name).strip())
    if not m:
        return None
    letters, col = m.group(1).upper(), int(m.group(2))
    row = ord(letters[0]) - 65 if len(letters) == 1 else 26 + ord(letters[1]) - 65
    if len(letters) == 2 and letters[0] != "A":
        return None
    if col < 1:
        return None
    return row, col - 1


def _canonical_well(name: object) -> str:
    """``"b3"`` -> ``"B03"``; names not like a well are returned unchanged."""
    pos = _parse_well(str(name))
    return str(name) if pos is None else _well_name(*pos)


def _row_label(row: int) -> str:
    return chr(65 + row) if row < 26 else "A" + chr(65 + row - 26)


def _well_name(row: int, col: int) -> str:
    return f"{_row_label(row)}{col + 1:02d}"


def _choose_geometry(positions: Sequence[tuple[int, int]]) -> _Geometry:
    """Smallest standard plate (96, 384, 1536 wells) that holds every well position."""
    for rows, cols, n in _GEOMETRIES:
        if all(r < rows and c < cols for r, c in positions):
            return _Geometry(rows, cols, n)
    far = max(positions, key=lambda p: p[0] * 100 + p[1])
    raise ValueError(
        f"well {_well_name(*far)} does not fit on a 1536-well plate (32 rows x 48 columns)"
    )


# -------------------------------------------------------------------------------- helpers --
def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _site_sort_key(site: object) -> tuple:
    s = str(site)
    return (0, int(s), s) if s.isdigit() else (1, 0, s)


def _fmt_number(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}" if abs(value) >= 100 else f"{value:.3g}"


def _fmt_percent(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    p = 100 * value
    if p == 0:
        return "0 %"
    return f"{p:.2g} %" if p < 10 else f"{p:.0f} %"


def _formatter(metric: str) -> Callable[[float], str]:
    return _fmt_percent if metric.endswith("Fraction") else _fmt_number


def _reason_category(reason: str, status: str) -> str:
    """Group similar reasons: ``"DNA: focus score 1.6 < 2.3 (out of focus)"`` -> ``"DNA: out of
    focus"``; ``"ER: 3.1% saturated pixels > 1.0%"`` -> ``"ER: saturated pixels"``."""
    if status == _STATUS_UNREADABLE:
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


# ----------------------------------------------------------------------------- plate data --
@dataclass
class _Plate:
    name: str
    table: pd.DataFrame
    wells: list[str]
    flatfield: str | Path | None
    site_files: Mapping[str, Mapping[str, str | Path]]
    channels: list[str] = field(default_factory=list)
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    at: dict[tuple[int, int], str] = field(default_factory=dict)
    unplaced: list[str] = field(default_factory=list)
    geometry: _Geometry | None = None


def _metric_channels(columns: Sequence[str], metric: str, prefix: str = "QC_") -> list[str]:
    head = f"{prefix}{metric}_"
    return [c[len(head):] for c in columns if c.startswith(head) and len(c) > len(head)]


def _load_plate(spec: Mapping) -> _Plate:
    name = str(spec["name"])
    table = read_table(spec["qc_table"])
    missing = [c for c in ("Metadata_Well", "Metadata_Site", "QC_Status") if c not in table]
    if missing:
        raise ValueError(
            f"plate {name}: the QC table '{spec['qc_table']}' lacks the column(s) "
            f"{', '.join(missing)}; is it the plate QC table of the pipeline?"
        )
    table = table.copy()
    table["Metadata_Well"] = table["Metadata_Well"].astype(str)
    table["_Well"] = [_canonical_well(w) for w in table["Metadata_Well"]]
    table["Metadata_Site"] = table["Metadata_Site"].astype(str)
    table["QC_Status"] = table["QC_Status"].astype(str).str.lower()
    if "QC_Reasons" not in table:
        table["QC_Reasons"] = ""
    table["QC_Reasons"] = table["QC_Reasons"].fillna("").astype(str)
    plate = _Plate(
        name=name,
        table=table,
        wells=list(dict.fromkeys(_canonical_well(w) for w in (spec.get("wells") or []))),
        flatfield=spec.get("flatfield"),
        site_files=spec.get("site_files") or {},
    )
    plate.channels = []
    for metric, _, _ in HEATMAP_METRICS:
        for ch in _metric_channels(table.columns, metric):
            if ch not in plate.channels:
                plate.channels.append(ch)
    for well in dict.fromkeys([*plate.wells, *table["_Well"]]):
        pos = _parse_well(well)
        if pos is None:
            plate.unplaced.append(well)
        else:
            plate.positions[well] = pos
            plate.at[pos] = well
    if plate.unplaced:
        logger.warning("plate %s: %d well name(s) are not like 'B03' and are left off the plate "
                       "maps: %s", name, len(plate.unplaced), ", ".join(plate.unplaced[:10]))
    if plate.positions:
        plate.geometry = _choose_geometry(list(plate.positions.values()))
    return plate


def _sorted_flagged(plate: _Plate) -> pd.DataFrame:
    flagged = plate.table[plate.table["QC_Status"] != _STATUS_PASS]
    if flagged.empty:
        return flagged
    keys = [
        (plate.positions.get(w, (10**6, 0)), w, _site_sort_key(s))
        for w, s in zip(flagged["_Well"], flagged["Metadata_Site"])
    ]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return flagged.iloc[order]


# ------------------------------------------------------------------------------- headline --
@dataclass
class _Summary:
    total: int
    passed: int
    failed: int
    unreadable: int
    wells_unusable: list[str]
    verdict: str        # "ok" | "check" | "bad"
    verdict_text: str
    why: list[str]


def _summarise(plate: _Plate) -> _Summary:
    status = plate.table["QC_Status"]
    total = len(status)
    passed = int((status == _STATUS_PASS).sum())
    unreadable = int((status == _STATUS_UNREADABLE).sum())
    failed = total - passed - unreadable
    usable = set(plate.table.loc[status == _STATUS_PASS, "_Well"])
    wells = list(dict.fromkeys([*plate.wells, *plate.table["_Well"]]))
    unusable = sorted((w for w in wells if w not in usable),
                      key=lambda w: (plate.positions.get(w, (10**6, 0)), w))
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
    return _Summary(total, passed, failed, unreadable, unusable, verdict, text, why)


def _headline_html(plate: _Plate, s: _Summary) -> str:
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
             f'data-verdict="{s.verdict}">{_e(s.verdict_text)}</div>')]
    for label, n, sub, cls in tiles:
        key = label.split()[0]
        parts.append(
            f'<div class="tile t-{cls}" data-count="{_e(key)}"><div class="n">{n}</div>'
            f'<div class="l">{_e(label)}</div><div class="p">{_e(sub)}</div></div>'
        )
    parts.append("</div>")
    if s.why:
        parts.append(f'<p class="why">Why: {_e("; ".join(s.why))}.</p>')
    flagged = plate.table[plate.table["QC_Status"] != _STATUS_PASS]
    if not flagged.empty:
        counts: Counter = Counter()
        for status, reasons in zip(flagged["QC_Status"], flagged["QC_Reasons"]):
            cats = {_reason_category(r, status) for r in (reasons.split("; ") if reasons else [])}
            counts.update(cats or {"no reason given"})
        items = "".join(f"<li><b>{n}</b> site{'s' if n != 1 else ''}: {_e(cat)}</li>"
                        for cat, n in counts.most_common(6))
        more = len(counts) - 6
        if more > 0:
            items += f"<li>... and {more} other reason(s), see the table below</li>"
        parts.append(f'<div class="reasons"><b>Most common reasons:</b><ul>{items}</ul></div>')
    if s.wells_unusable:
        shown = s.wells_unusable[:48]
        extra = len(s.wells_unusable) - len(shown)
        tail = f" ... and {extra} more" if extra > 0 else ""
        parts.append(f'<p class="unusable"><b>Wells with no usable site:</b> '
                     f'{_e(", ".join(shown))}{_e(tail)}</p>')
    return "".join(parts)


# -------------------------------------------------------------------------------- heatmaps --
def _well_values(plate: _Plate, column: str) -> dict[str, float]:
    values = pd.to_numeric(plate.table[column], errors="coerce")
    med = values.groupby(plate.table["_Well"]).median()
    return {str(w): float(v) for w, v in med.items()}


def _heatmap_html(
    plate: _Plate,
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
    """One plate map: an HTML table with one coloured cell per well and a min/max legend."""
    geo = plate.geometry
    finite = [v for v in values.values() if v is not None and math.isfinite(v)]
    if vrange is None:
        vmin, vmax = (min(finite), max(finite)) if finite else (0.0, 1.0)
    else:
        vmin, vmax = vrange
    span = vmax - vmin
    px = _CELL_PX[geo.wells]
    label_every_col = 1 if geo.wells <= 384 else 4
    label_every_row = 1 if geo.wells <= 384 else 2
    out = [(f'<figure class="hm" data-key="{_e(key)}"><figcaption>{_e(title)}</figcaption>'
           f'<table class="grid g{geo.wells}" style="--c:{px}px"><tr><th></th>')]
    for c in range(geo.cols):
        lab = str(c + 1) if (c + 1) % label_every_col == 0 or c == 0 else ""
        out.append(f"<th>{lab}</th>")
    out.append("</tr>")
    for r in range(geo.rows):
        lab = _row_label(r) if r % label_every_row == 0 else ""
        out.append(f"<tr><th>{lab}</th>")
        for c in range(geo.cols):
            well = plate.at.get((r, c))
            name = _well_name(r, c)
            if well is None:
                out.append(f'<td class="absent" data-well="{_e(name)}" '
                           f'title="{_e(name)}: no such well on this plate"></td>')
                continue
            v = values.get(well, math.nan)
            if v is None or not math.isfinite(v):
                out.append(f'<td class="nan" data-well="{_e(name)}" '
                           f'title="{_e(well)}: no value (no readable site)">'
                           f"{_e(empty_text)}</td>")
                continue
            t = 0.5 if span <= 0 else (v - vmin) / span
            bg = _colour(t, cmap)
            text = cell_text.get(well, "") if cell_text else ""
            style = f"background:{bg}" + (f";color:{_text_colour(bg)}" if text else "")
            out.append(f'<td data-well="{_e(name)}" data-value="{v:.6g}" style="{style}" '
                       f'title="{_e(well)}: {_e(fmt(v))}">{_e(text)}</td>')
        out.append("</tr>")
    out.append("</table>")
    out.append(
        f'<div class="legend"><span>{_e(fmt(vmin))}</span>'
        f'<span class="bar" style="background:{_gradient_css(cmap)}"></span>'
        f'<span>{_e(fmt(vmax))}</span>'
        f'<span class="sw" style="background:{_ABSENT_COLOUR}"></span><span>no well</span>'
        f'<span class="sw nan"></span><span>no value</span></div></figure>'
    )
    return "".join(out)


def _fail_map_html(plate: _Plate) -> str:
    t = plate.table
    flagged = (t["QC_Status"] != _STATUS_PASS).astype(float)
    grouped = flagged.groupby(t["_Well"])
    frac = {str(w): float(v) for w, v in grouped.mean().items()}
    n_bad = {str(w): str(int(v)) for w, v in grouped.sum().items() if v > 0}
    return _heatmap_html(
        plate, frac, title="Sites not passing QC (fraction per well; number = flagged sites)",
        cmap="orrd", fmt=_fmt_percent, vrange=(0.0, 1.0),
        cell_text=n_bad if plate.geometry.wells <= 384 else None, key="QC_FailedFraction",
    )


def _metric_map_html(plate: _Plate, metric: str, title: str, channel: str) -> str:
    column = f"QC_{metric}_{channel}"
    values = _well_values(plate, column)
    vrange = None
    if metric not in _RELATIVE_SCALE:
        finite = [v for v in values.values() if math.isfinite(v)]
        top = max(finite, default=1.0)
        if metric == "SaturatedFraction":
            top = max(top, _SATURATION_SCALE_MIN)
        vrange = (0.0, top if top > 0 else 1.0)
    return _heatmap_html(plate, values, title=f"{title}: {channel}", cmap="viridis",
                         fmt=_formatter(metric), vrange=vrange, key=column)


def _heatmaps_html(plate: _Plate) -> str:
    if plate.geometry is None:
        return '<p class="note">No well could be placed on a plate map.</p>'
    geo = plate.geometry
    parts = [
        ('<h3>Plate maps</h3><p class="note">One cell per well, coloured by the median over its '
        "sites; hover a well for its value. Grey: no such well on the plate; hatched: no readable "
        "site. Colour scales run from 0 (median intensity: from the lowest well) to the highest "
        f"well; saturation from 0 to at least {_fmt_percent(_SATURATION_SCALE_MIN)}. Plate "
        f"geometry: {geo.wells} wells ({geo.rows} x {geo.cols}).</p>")
    ]
    parts.append(f'<div class="row">{_fail_map_html(plate)}</div>')
    cols = plate.table.columns
    for metric, title, meaning in HEATMAP_METRICS:
        channels = _metric_channels(cols, metric)
        if not channels:
            continue
        maps = [_metric_map_html(plate, metric, title, ch) for ch in channels]
        parts.append(f'<h4>{_e(title)} <span class="meaning">({_e(meaning)})</span></h4>'
                     f'<div class="row">{"".join(maps)}</div>')
    z_cols = [c for c in cols if c.startswith("QC_PlateZ_")]
    if z_cols:
        z_maps = []
        for col in z_cols:
            values = _well_values(plate, col)
            finite = [abs(v) for v in values.values() if math.isfinite(v)]
            lim = max(3.0, max(finite)) if finite else 3.0
            z_maps.append(_heatmap_html(
                plate, values, title=col.removeprefix("QC_PlateZ_").replace("_", " "),
                cmap="diverging", fmt=lambda v: f"{v:+.2g}", vrange=(-lim, lim), key=col,
            ))
        parts.append(
            "<details><summary>Plate-relative robust z-scores (median over sites; 0 = typical "
            f"for this plate, beyond +/-3 = unusual): {len(z_cols)} maps</summary>"
            f'<div class="row">{"".join(z_maps)}</div></details>'
        )
    if plate.unplaced:
        parts.append(f'<p class="note">Wells not on the maps (names not like "B03"): '
                     f'{_e(", ".join(plate.unplaced))}</p>')
    return "".join(parts)


# ------------------------------------------------------------------------------ thumbnails --
def _block_mean(plane: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return plane.astype(np.float32)
    ny, nx = (plane.shape[0] // factor) * factor, (plane.shape[1] // factor) * factor
    if ny == 0 or nx == 0:
        return plane.astype(np.float32)
    view = plane[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
    return view.mean(axis=(1, 3), dtype=np.float32)


def _block_any(mask: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return mask
    ny, nx = (mask.shape[0] // factor) * factor, (mask.shape[1] // factor) * factor
    if ny == 0 or nx == 0:
        return mask
    return mask[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor).any(axis=(1, 3))


def _channel_tile(plane: np.ndarray, size: int) -> np.ndarray:
    """(y, x, 3) uint8 tile: downsampled, 1st-99th percentile contrast, saturated pixels red."""
    plane = np.asarray(plane)
    factor = max(1, math.ceil(max(plane.shape) / size))
    small = _block_mean(plane, factor)
    lo, hi = np.percentile(small, [1.0, 99.0])
    if not hi > lo:
        hi = lo + 1.0
    grey = np.clip((small - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    if plane.dtype.kind in "ui":
        saturated = _block_any(plane >= np.iinfo(plane.dtype).max, factor)
        if saturated.shape == grey.shape and saturated.any():
            rgb[saturated] = (230, 20, 20)
    return rgb


def _unreadable_tile(shape: tuple[int, int]) -> np.ndarray:
    """Grey tile with a dark cross: a channel that could not be read."""
    tile = np.full((*shape, 3), 90, np.uint8)
    ny, nx = shape
    t = np.linspace(0, 1, max(ny, nx))
    ys, xs = (t * (ny - 1)).round().astype(int), (t * (nx - 1)).round().astype(int)
    for dy in (-1, 0, 1):
        y = np.clip(ys + dy, 0, ny - 1)
        tile[y, xs] = (200, 60, 60)
        tile[ny - 1 - y, xs] = (200, 60, 60)
    return tile


def _site_files(plate: _Plate, well: str, site: str) -> Mapping[str, str | Path] | None:
    files = plate.site_files.get(f"{well}/{site}")
    if files is not None:
        return files
    pos = _parse_well(well)
    for key, value in plate.site_files.items():
        w, _, s = key.partition("/")
        if s == site and pos is not None and _parse_well(w) == pos:
            return value
    return None


def _thumbnail_html(plate: _Plate, row: pd.Series) -> str:
    well, site, status = row["Metadata_Well"], row["Metadata_Site"], row["QC_Status"]
    reasons = [r for r in row["QC_Reasons"].split("; ") if r]
    files = _site_files(plate, well, site)
    order = [c for c in plate.channels if files and c in files]
    order += [c for c in (files or {}) if c not in order]
    tiles, labels, problems = [], [], []
    for ch in order:
        try:
            tiles.append(_channel_tile(read_image(files[ch]), _THUMB_TILE))
        except UnreadableImageError as err:
            tiles.append(None)
            problems.append(f"{ch}: {err.reason}")
        labels.append(ch)
    readable = [t for t in tiles if t is not None]
    caption = (f'<figcaption><b>{_e(well)} / site {_e(site)}</b> '
               f'<span class="st st-{_e(status)}">{_e(status)}</span>'
               f'<ul>{"".join(f"<li>{_e(r)}</li>" for r in reasons)}</ul></figcaption>')
    if not readable:
        why = "no image files listed for this site" if not files else "unreadable"
        detail = "; ".join(problems)
        return (f'<figure class="thumb" data-site="{_e(well)}/{_e(site)}">'
                f'<div class="placeholder" title="{_e(detail)}">{_e(why)}</div>{caption}'
                "</figure>")
    ny = max(t.shape[0] for t in readable)
    nx = max(t.shape[1] for t in readable)
    gap = np.full((ny, 3, 3), 255, np.uint8)
    strip = []
    for tile in tiles:
        if tile is None:
            tile = _unreadable_tile((ny, nx))
        elif tile.shape[:2] != (ny, nx):
            padded = np.zeros((ny, nx, 3), np.uint8)
            padded[: tile.shape[0], : tile.shape[1]] = tile
            tile = padded
        strip.extend([tile, gap])
    image = np.concatenate(strip[:-1], axis=1)
    label_row = "".join(f'<span style="width:{nx}px">{_e(lab)}</span>' for lab in labels)
    return (f'<figure class="thumb" data-site="{_e(well)}/{_e(site)}">'
            f'{_img_tag(image, alt=f"{well}/{site}", cls="site")}'
            f'<div class="chlabels">{label_row}</div>{caption}</figure>')


def _spread_over_wells(flagged: pd.DataFrame, n: int) -> pd.DataFrame:
    """At most ``n`` rows of the (plate-ordered) flagged sites: the first flagged site of every
    well, then the second, ...; returned in plate order."""
    if len(flagged) <= n:
        return flagged
    rank = flagged.groupby("_Well", sort=False).cumcount().to_numpy()
    order = np.argsort(rank, kind="stable")[: max(0, n)]
    return flagged.iloc[np.sort(order)]


def _thumbnails_html(plate: _Plate, flagged: pd.DataFrame, thumbnails_max: int) -> str:
    n = len(flagged)
    shown = _spread_over_wells(flagged, thumbnails_max)
    more = (" Sites are picked one per well first, so that as many wells as possible are shown."
            if len(shown) < n else "")
    head = (f"<h3>Flagged sites: images ({len(shown)} of {n} shown)</h3>"
            '<p class="note">Each channel scaled from its 1st to 99th percentile; red pixels are '
            "saturated (at the image type's maximum); a crossed grey tile is an unreadable "
            f"file.{more}</p>")
    if n == 0:
        return head.replace("Flagged sites: images", "Flagged sites", 1) + \
            '<p class="good">No flagged site.</p>'
    figures = [_thumbnail_html(plate, row) for _, row in shown.iterrows()]
    return head + f'<div class="thumbs">{"".join(figures)}</div>'


# ---------------------------------------------------------------------------- flat-fields --
def _flatfield_html(plate: _Plate) -> str:
    head = ("<h3>Illumination (flat-fields)</h3><p class=\"note\">Each raw image is divided by "
            "its channel's flat-field (mean 1). Corner/centre = mean of the four corner patches "
            "(10 % of the short side) over the centre patch: 1 is even illumination, below 1 "
            "means darker corners (vignetting). Colours run from the channel's 1st to 99th "
            "percentile (values under each image).</p>")
    if plate.flatfield is None:
        return head + '<p class="note warn">No flat-field for this plate (no site passed QC?).</p>'
    try:
        stack, meta = read_stack(plate.flatfield)
    except Exception as err:  # noqa: BLE001 - a broken file must not stop the report
        logger.error("plate %s: cannot read the flat-field '%s': %s", plate.name,
                     plate.flatfield, err)
        return head + (f'<p class="note warn">The flat-field file could not be read: '
                       f"{_e(err)}</p>")
    names = list(meta.get("channels") or [])
    figures = []
    for i, ff in enumerate(np.asarray(stack, dtype=np.float32)):
        name = names[i] if i < len(names) else f"channel {i + 1}"
        fmin, fmax = float(np.nanmin(ff)), float(np.nanmax(ff))
        ratio = corner_to_centre_ratio(ff)
        small = _block_mean(ff, max(1, math.ceil(max(ff.shape) / _FLAT_TILE)))
        lo, hi = (float(v) for v in np.nanpercentile(ff, [1.0, 99.0]))
        t = (small - lo) / (hi - lo) if hi > lo else np.full_like(small, 0.5)
        rgb = _LUTS["viridis"][np.clip(np.nan_to_num(t) * 255, 0, 255).round().astype(int)]
        figures.append(
            f'<figure class="flat" data-channel="{_e(name)}">'
            f'{_img_tag(rgb, alt=f"flat-field {name}")}'
            f'<figcaption><b>{_e(name)}</b><br>min {fmin:.3g} &middot; max {fmax:.3g}<br>'
            f'corner/centre <b class="ratio">{ratio:.3f}</b>'
            f'<div class="legend"><span>{lo:.3g}</span><span class="bar" style="width:80px;'
            f'background:{_gradient_css("viridis")}"></span><span>{hi:.3g}</span></div>'
            "</figcaption></figure>"
        )
    return head + f'<div class="row">{"".join(figures)}</div>'


# ------------------------------------------------------------------------------ flagged table --
def _flagged_table_html(plate: _Plate, flagged: pd.DataFrame) -> str:
    head = f"<h3>All flagged sites ({len(flagged)})</h3>"
    if flagged.empty:
        return head + '<p class="good">None.</p>'
    rows = []
    for well, site, status, reasons in zip(flagged["Metadata_Well"], flagged["Metadata_Site"],
                                           flagged["QC_Status"], flagged["QC_Reasons"]):
        items = "<br>".join(_e(r) for r in reasons.split("; ") if r)
        rows.append(f'<tr class="r-{_e(status)}"><td>{_e(plate.name)}</td><td>{_e(well)}</td>'
                    f'<td>{_e(site)}</td><td><span class="st st-{_e(status)}">{_e(status)}'
                    f"</span></td><td>{items}</td></tr>")
    return (head + '<table class="flagged"><tr><th>plate</th><th>well</th><th>site</th>'
            f'<th>status</th><th>reasons</th></tr>{"".join(rows)}</table>')


# ---------------------------------------------------------------------------------- page --
_CSS = """
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
td.absent{background:""" + _ABSENT_COLOUR + """}
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
.placeholder{width:""" + str(_THUMB_TILE) + """px;height:""" + str(_THUMB_TILE) + """px;
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


def _plate_html(plate: _Plate, summary: _Summary, index: int, thumbnails_max: int) -> str:
    flagged = _sorted_flagged(plate)
    return (
        f'<section class="plate" id="plate-{index}" data-plate="{_e(plate.name)}">'
        f"<h2>Plate {_e(plate.name)}</h2>"
        f"{_headline_html(plate, summary)}"
        f"{_heatmaps_html(plate)}"
        f"{_thumbnails_html(plate, flagged, thumbnails_max)}"
        f"{_flatfield_html(plate)}"
        f"{_flagged_table_html(plate, flagged)}"
        "</section>"
    )


def _overview_html(plates: Sequence[_Plate], summaries: Sequence[_Summary]) -> str:
    rows = []
    for i, (p, s) in enumerate(zip(plates, summaries)):
        rows.append(
            f'<tr><td><a href="#plate-{i}">{_e(p.name)}</a></td>'
            f'<td><span class="vs v-{s.verdict}">{_e(s.verdict_text)}</span></td>'
            f"<td>{s.total}</td><td>{s.passed}</td><td>{s.failed}</td><td>{s.unreadable}</td>"
            f"<td>{len(s.wells_unusable)}</td></tr>"
        )
    return ('<table class="overview"><tr><th>plate</th><th>verdict</th><th>sites</th>'
            "<th>passed</th><th>failed</th><th>unreadable</th><th>wells with no usable site</th>"
            f'</tr>{"".join(rows)}</table>')


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
        {channel: raw image path}) and ``"wells"`` (the plate's well names, which choose the
        96-, 384- or 1536-well layout of the plate maps).
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
    summaries = [_summarise(p) for p in loaded]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        "<h1>Image QC report</h1>",
        (f'<p class="meta">{len(loaded)} plate(s) &middot; generated {_e(stamp)} by plateflow '
        f"{_e(__version__)}</p>"),
        _overview_html(loaded, summaries),
        (f'<p class="rules"><b>Verdict rules</b> (flagged = failed or unreadable): '
        f"{_e(VERDICT_RULES)}</p>"),
    ]
    for i, (plate, summary) in enumerate(zip(loaded, summaries)):
        body.append(_plate_html(plate, summary, i, thumbnails_max))
        logger.info("QC report, plate %s: %s (%d sites, %d passed, %d failed, %d unreadable)",
                    plate.name, summary.verdict_text, summary.total, summary.passed,
                    summary.failed, summary.unreadable)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Image QC report: {_e(', '.join(p.name for p in loaded))}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output
