"""A patch-wise focus map of one channel, blank patches left out.

The image is cut into a ``focus_tile_grid`` x ``focus_tile_grid`` grid and the focus score
(:func:`plateflow.qc.focus.focus_score`) is computed on the central ``focus_tile_size`` px
square of each tile (tiles are at least 32 px, so small images get a coarser grid). Tiles
whose foreground fraction is below ``focus_tile_min_foreground`` have no content and are LEFT
OUT rather than called blurry (as the Google microscope-image-quality model treats blank
patches). :func:`focus_tiles` reports how many tiles have content, the share of them in focus,
and how clear-cut that verdict is.
"""

from __future__ import annotations

import logging

import numpy as np

from plateflow.qc.defaults import DEFAULT_PARAMS
from plateflow.qc.focus import focus_score

logger = logging.getLogger(__name__)

__all__ = ["focus_tiles"]

#: number of content tiles from which FocusCertainty is no longer scaled down
_CERTAIN_TILES = 8
#: smallest focus-map tile side (px): small images get fewer tiles
_MIN_TILE = 32


def _tile_windows(shape: tuple[int, int], grid: int, size: int) -> list[tuple[slice, slice]]:
    """Central squares of the tiles of a ``grid`` x ``grid`` split of a (Y, X) image.

    Tiles are at least 32 px per side (fewer tiles on small images); each window is the central
    ``min(tile, size)`` part of its tile.
    """
    windows = []
    edges = []
    for n in shape:
        g = max(1, min(int(grid), n // _MIN_TILE))
        edges.append(np.linspace(0, n, g + 1).round().astype(int))
    for y0, y1 in zip(edges[0][:-1], edges[0][1:]):
        for x0, x1 in zip(edges[1][:-1], edges[1][1:]):
            hy, hx = min(y1 - y0, int(size)), min(x1 - x0, int(size))
            wy, wx = y0 + (y1 - y0 - hy) // 2, x0 + (x1 - x0 - hx) // 2
            windows.append((slice(wy, wy + hy), slice(wx, wx + hx)))
    return windows


def _mask_fraction(mask: np.ndarray, f: int, ys: slice, xs: slice) -> float:
    """Foreground fraction of the full-resolution window (ys, xs) in a working-image mask."""
    if mask.size == 0:
        return 0.0
    parts = []
    for sl, n in ((ys, mask.shape[0]), (xs, mask.shape[1])):
        lo = min(sl.start // f, n - 1)
        hi = min(max(-(-sl.stop // f), lo + 1), n)
        parts.append(slice(lo, hi))
    return float(mask[parts[0], parts[1]].mean())


def focus_tiles(plane: np.ndarray, mask: np.ndarray, f: int, *, params: dict) -> dict[str, float]:
    """Patch-wise focus map of one channel, blank tiles left out.

    Parameters
    ----------
    plane : (Y, X) ndarray
        One raw channel.
    mask : (Y // f, X // f) bool ndarray
        Its foreground mask, from :func:`plateflow.qc.foreground.foreground_mask`.
    f : int
        Block size of ``mask``.
    params : dict
        Uses ``focus_tile_grid``, ``focus_tile_size``, ``focus_tile_min_foreground``,
        ``min_focus_score`` (the built-in default when null) and the focus scales.

    Returns
    -------
    dict
        ``FocusTilesInFocusFraction`` (share of content tiles scoring ``>= min_focus_score``;
        0 without content), ``FocusTilesWithContent`` (the number of content tiles) and
        ``FocusCertainty`` in [0, 1]: the mean over content tiles of ``d / (d + 0.25 * thr)``
        with ``d = |score - thr|``, ``thr = min_focus_score``, times ``min(1, n_content / 8)``.
    """
    thr = params["min_focus_score"]
    thr = float(DEFAULT_PARAMS["min_focus_score"] if thr is None else thr)
    min_fg = float(params["focus_tile_min_foreground"])
    scores = []
    for ys, xs in _tile_windows(plane.shape, params["focus_tile_grid"], params["focus_tile_size"]):
        if _mask_fraction(mask, f, ys, xs) < min_fg:
            continue
        scores.append(
            focus_score(
                plane[ys, xs],
                sigma_fine=params["focus_sigma_fine"],
                sigma_coarse=params["focus_sigma_coarse"],
                max_size=max(ys.stop - ys.start, xs.stop - xs.start),
            )
        )
    n = len(scores)
    if n == 0:
        return {
            "FocusTilesInFocusFraction": 0.0,
            "FocusTilesWithContent": 0.0,
            "FocusCertainty": 0.0,
        }
    s = np.asarray(scores)
    d = np.abs(s - thr)
    certainty = float(np.mean(d / np.maximum(d + 0.25 * thr, 1e-12))) * min(1.0, n / _CERTAIN_TILES)
    return {
        "FocusTilesInFocusFraction": float(np.mean(s >= thr)),
        "FocusTilesWithContent": float(n),
        "FocusCertainty": certainty,
    }

