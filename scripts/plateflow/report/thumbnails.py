"""Thumbnails of flagged sites: every channel auto-contrasted side by side, saturation in red.

Each channel is block-averaged to at most :data:`THUMB_TILE` px, scaled from its 1st to 99th
percentile, and saturated pixels (at the image type's maximum) are drawn red; a channel that
could not be read is a grey tile with a dark cross.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from plateflow.core.contract import parse_site_ids, site_id
from plateflow.core.stats import block_mean
from plateflow.report.html import e, img_tag
from plateflow.report.plate_layout import parse_well

__all__ = [
    "THUMB_TILE",
    "SiteFiles",
    "channel_order",
    "channel_tile",
    "spread_over_wells",
    "thumbnail_figure",
    "thumbnails_html",
    "unreadable_tile",
]

THUMB_TILE = 128  # px, long side of one channel in a thumbnail
_SATURATED_RGB = (230, 20, 20)


def _block_any(mask: np.ndarray, factor: int) -> np.ndarray:
    """Whether any pixel of each ``factor`` x ``factor`` block is set (as :func:`block_mean`)."""
    if factor <= 1:
        return mask
    ny, nx = (mask.shape[0] // factor) * factor, (mask.shape[1] // factor) * factor
    if ny == 0 or nx == 0:
        return mask
    return mask[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor).any(axis=(1, 3))


def channel_tile(plane: np.ndarray, size: int = THUMB_TILE) -> np.ndarray:
    """One channel drawn small: downsampled, 1st-99th percentile contrast, saturated pixels red.

    Parameters
    ----------
    plane : (Y, X) ndarray
        A raw image; integer types mark their maximum as saturated.
    size : int
        Longest side of the tile in px (at most).

    Returns
    -------
    tile : (y, x, 3) uint8 ndarray
    """
    plane = np.asarray(plane)
    factor = max(1, math.ceil(max(plane.shape) / size))
    small = block_mean(plane, factor)
    lo, hi = np.percentile(small, [1.0, 99.0])
    if not hi > lo:
        hi = lo + 1.0
    grey = np.clip((small - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    if plane.dtype.kind in "ui":
        saturated = _block_any(plane >= np.iinfo(plane.dtype).max, factor)
        if saturated.shape == grey.shape and saturated.any():
            rgb[saturated] = _SATURATED_RGB
    return rgb


def unreadable_tile(shape: tuple[int, int]) -> np.ndarray:
    """Grey tile with a dark cross, (Y, X, 3) uint8: a channel that could not be read."""
    tile = np.full((*shape, 3), 90, np.uint8)
    ny, nx = shape
    t = np.linspace(0, 1, max(ny, nx))
    ys, xs = (t * (ny - 1)).round().astype(int), (t * (nx - 1)).round().astype(int)
    for dy in (-1, 0, 1):
        y = np.clip(ys + dy, 0, ny - 1)
        tile[y, xs] = (200, 60, 60)
        tile[ny - 1 - y, xs] = (200, 60, 60)
    return tile


class SiteFiles:
    """A plate's raw files by site: ``"well/site"`` -> {channel: path}.

    A site is found by its exact id, else by a well name of the same position (``"B3"`` for
    ``"B03"``) and the same site.
    """

    def __init__(self, site_files: Mapping[str, Mapping[str, object]]):
        self._files = site_files
        self._by_position: dict[tuple[tuple[int, int], str], Mapping[str, object]] = {}
        for key, (well, site) in zip(site_files, parse_site_ids(list(site_files))):
            pos = parse_well(well)
            if pos is not None:
                self._by_position.setdefault((pos, site), site_files[key])

    def get(self, well: str, site: str) -> Mapping[str, object] | None:
        """The site's {channel: path}; None when the plate lists no files for it."""
        files = self._files.get(site_id(well, site))
        if files is not None:
            return files
        pos = parse_well(well)
        return None if pos is None else self._by_position.get((pos, site))


def channel_order(files: Mapping[str, object] | None, channels: Sequence[str]) -> list[str]:
    """The channels of a site's files: those of ``channels`` first, in that order, then others."""
    order = [c for c in channels if files and c in files]
    return order + [c for c in (files or {}) if c not in order]


def thumbnail_figure(
    row: pd.Series, tiles: Mapping[str, np.ndarray | str], *, files_listed: bool
) -> str:
    """One flagged site: its channel tiles side by side, status and reasons underneath.

    Parameters
    ----------
    row : Series
        The site's QC row (``Metadata_Well``, ``Metadata_Site``, ``QC_Status``, ``QC_Reasons``).
    tiles : mapping of channel to (y, x, 3) uint8 ndarray or str
        Each channel's :func:`channel_tile`, or why its file could not be read.
    files_listed : bool
        Whether the plate listed image files for the site (else a placeholder says so).
    """
    well, site, status = row["Metadata_Well"], row["Metadata_Site"], row["QC_Status"]
    reasons = [r for r in row["QC_Reasons"].split("; ") if r]
    readable = [t for t in tiles.values() if not isinstance(t, str)]
    caption = (f'<figcaption><b>{e(well)} / site {e(site)}</b> '
               f'<span class="st st-{e(status)}">{e(status)}</span>'
               f'<ul>{"".join(f"<li>{e(r)}</li>" for r in reasons)}</ul></figcaption>')
    if not readable:
        why = "unreadable" if files_listed else "no image files listed for this site"
        detail = "; ".join(f"{ch}: {t}" for ch, t in tiles.items())
        return (f'<figure class="thumb" data-site="{e(well)}/{e(site)}">'
                f'<div class="placeholder" title="{e(detail)}">{e(why)}</div>{caption}'
                "</figure>")
    ny = max(t.shape[0] for t in readable)
    nx = max(t.shape[1] for t in readable)
    gap = np.full((ny, 3, 3), 255, np.uint8)
    strip = []
    for tile in tiles.values():
        if isinstance(tile, str):
            tile = unreadable_tile((ny, nx))
        elif tile.shape[:2] != (ny, nx):
            padded = np.zeros((ny, nx, 3), np.uint8)
            padded[: tile.shape[0], : tile.shape[1]] = tile
            tile = padded
        strip.extend([tile, gap])
    image = np.concatenate(strip[:-1], axis=1)
    label_row = "".join(f'<span style="width:{nx}px">{e(ch)}</span>' for ch in tiles)
    return (f'<figure class="thumb" data-site="{e(well)}/{e(site)}">'
            f'{img_tag(image, alt=f"{well}/{site}", cls="site")}'
            f'<div class="chlabels">{label_row}</div>{caption}</figure>')


def spread_over_wells(flagged: pd.DataFrame, n: int) -> pd.DataFrame:
    """At most ``n`` rows of the (plate-ordered) flagged sites: the first flagged site of every
    well, then the second, ...; returned in plate order."""
    if len(flagged) <= n:
        return flagged
    rank = flagged.groupby("_Well", sort=False).cumcount().to_numpy()
    order = np.argsort(rank, kind="stable")[: max(0, n)]
    return flagged.iloc[np.sort(order)]


def thumbnails_html(n_flagged: int, figures: Sequence[str]) -> str:
    """The "Flagged sites: images" section: ``figures`` (:func:`thumbnail_figure`) of the
    ``n_flagged`` flagged sites."""
    more = (" Sites are picked one per well first, so that as many wells as possible are shown."
            if len(figures) < n_flagged else "")
    head = (f"<h3>Flagged sites: images ({len(figures)} of {n_flagged} shown)</h3>"
            '<p class="note">Each channel scaled from its 1st to 99th percentile; red pixels are '
            "saturated (at the image type's maximum); a crossed grey tile is an unreadable "
            f"file.{more}</p>")
    if n_flagged == 0:
        return head.replace("Flagged sites: images", "Flagged sites", 1) + \
            '<p class="good">No flagged site.</p>'
    return head + f'<div class="thumbs">{"".join(figures)}</div>'
