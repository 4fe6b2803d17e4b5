"""Colour maps of the report: 256-entry lookup tables and hex colours for HTML cells."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ABSENT_COLOUR", "LUTS", "colour", "gradient_css", "hex_to_rgb", "lut", "text_colour"]

#: Background of a plate-map cell where the plate has no well.
ABSENT_COLOUR = "#d4d4d4"
_VIRIDIS = ("#440154", "#472c7a", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
            "#addc30", "#fde725")
_ORRD = ("#fff7ec", "#fee8c8", "#fdd49e", "#fdbb84", "#fc8d59", "#ef6548", "#d7301f",
         "#b30000", "#7f0000")
_DIVERGING = ("#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b")


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#fde725"`` -> ``(253, 231, 37)``."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def lut(anchors: Sequence[str]) -> np.ndarray:
    """Colour table interpolated linearly between anchor colours.

    Parameters
    ----------
    anchors : sequence of str
        Hex colours, spread evenly from 0 to 1.

    Returns
    -------
    table : (256, 3) uint8 ndarray
    """
    rgb = np.array([hex_to_rgb(c) for c in anchors], float)
    x = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(t, x, rgb[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


#: The report's colour maps by name: ``viridis`` (metrics), ``orrd`` (failed fraction),
#: ``diverging`` (plate z-scores); each a (256, 3) uint8 table.
LUTS = {"viridis": lut(_VIRIDIS), "orrd": lut(_ORRD), "diverging": lut(_DIVERGING)}


def colour(t: float, cmap: str) -> str:
    """Hex colour of ``t`` in [0, 1] (clipped) on the colour map named ``cmap``."""
    r, g, b = LUTS[cmap][round(min(max(t, 0.0), 1.0) * 255)]
    return f"#{r:02x}{g:02x}{b:02x}"


def text_colour(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (a hex colour)."""
    r, g, b = hex_to_rgb(background)
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def gradient_css(cmap: str) -> str:
    """A CSS ``linear-gradient`` drawing the colour map from left (0) to right (1)."""
    stops = ", ".join(colour(t, cmap) for t in np.linspace(0, 1, 9))
    return f"linear-gradient(to right, {stops})"
