"""The illumination section: each channel's flat-field drawn small, with its min, max and
corner-to-centre ratio (:func:`plateflow.core.stats.corner_to_centre_ratio`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from plateflow.core.stats import block_mean, corner_to_centre_ratio
from plateflow.report.colours import LUTS, gradient_css
from plateflow.report.html import e, img_tag

__all__ = ["FLAT_TILE", "flatfield_html"]

FLAT_TILE = 180  # px, long side of a flat-field image
_HEAD = ("<h3>Illumination (flat-fields)</h3><p class=\"note\">Each raw image is divided by "
         "its channel's flat-field (mean 1). Corner/centre = mean of the four corner patches "
         "(10 % of the short side) over the centre patch: 1 is even illumination, below 1 "
         "means darker corners (vignetting). Colours run from the channel's 1st to 99th "
         "percentile (values under each image).</p>")


def _figure(ff: np.ndarray, name: str) -> str:
    fmin, fmax = float(np.nanmin(ff)), float(np.nanmax(ff))
    ratio = corner_to_centre_ratio(ff)
    shown = f"{ratio:.3f}" if math.isfinite(ratio) else "n/a (black centre)"
    small = block_mean(ff, max(1, math.ceil(max(ff.shape) / FLAT_TILE)))
    lo, hi = (float(v) for v in np.nanpercentile(ff, [1.0, 99.0]))
    t = (small - lo) / (hi - lo) if hi > lo else np.full_like(small, 0.5)
    rgb = LUTS["viridis"][np.clip(np.nan_to_num(t) * 255, 0, 255).round().astype(int)]
    return (
        f'<figure class="flat" data-channel="{e(name)}">'
        f'{img_tag(rgb, alt=f"flat-field {name}")}'
        f'<figcaption><b>{e(name)}</b><br>min {fmin:.3g} &middot; max {fmax:.3g}<br>'
        f'corner/centre <b class="ratio">{e(shown)}</b>'
        f'<div class="legend"><span>{lo:.3g}</span><span class="bar" style="width:80px;'
        f'background:{gradient_css("viridis")}"></span><span>{hi:.3g}</span></div>'
        "</figcaption></figure>"
    )


def flatfield_html(
    stack: np.ndarray | None, channels: Sequence[str] = (), *, error: object = None
) -> str:
    """The illumination section of a plate.

    Parameters
    ----------
    stack : (C, Y, X) ndarray or None
        The plate's flat-field; None when the plate has none (or it could not be read).
    channels : sequence of str
        Channel names of the stack's planes (missing names become ``"channel <i>"``).
    error : optional
        Why the flat-field file could not be read (shown instead of the images).
    """
    if error is not None:
        return _HEAD + f'<p class="note warn">The flat-field file could not be read: {e(error)}</p>'
    if stack is None:
        return _HEAD + '<p class="note warn">No flat-field for this plate (no site passed QC?).</p>'
    figures = []
    for i, ff in enumerate(np.asarray(stack, dtype=np.float32)):
        name = channels[i] if i < len(channels) else f"channel {i + 1}"
        figures.append(_figure(ff, name))
    return _HEAD + f'<div class="row">{"".join(figures)}</div>'
