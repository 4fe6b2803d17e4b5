"""Focus score of one channel: noise-corrected Laplacian energy at a fine over a coarse scale.

See :func:`focus_score`. Large images are scored on four tiles, one per quadrant
(:func:`_focus_tiles`), to bound the cost.
"""

from __future__ import annotations

import logging

import numpy as np

from plateflow.core.stats import mad_sigma
from plateflow.qc.laplacian import log_maps, log_noise_gain

logger = logging.getLogger(__name__)

__all__ = ["focus_score"]


def focus_score(
    plane: np.ndarray, *, sigma_fine: float = 2.0, sigma_coarse: float = 4.0, max_size: int = 1024
) -> float:
    """Focus score of one channel: Laplacian energy at a fine over a coarse scale, noise-corrected.

    ``E(s) = var(laplace(G_s * img)) - noise**2 * g(s)`` is the variance of the Laplacian of the
    channel smoothed with a Gaussian of sigma ``s`` minus the part that camera noise contributes
    (``noise`` as :func:`plateflow.core.stats.pixel_noise`, from every other row; ``g(s)`` = sum
    of the squared filter kernel). The score is ``E(sigma_fine) / E(sigma_coarse)``: in-focus
    edges and texture keep much of their Laplacian energy at the fine scale, blurred ones lose
    it, so the ratio drops with defocus.
    It does not depend on brightness, background offset, gain, or how many cells there are.
    For edge-like structures of Gaussian width ``w`` px it is about
    ``((w**2 + sigma_coarse**2) / (w**2 + sigma_fine**2)) ** 1.5``: about 6 for sharp synthetic
    nuclei, 4-12 on real in-focus fluorescence (BBBC006 12 um defocus: 3.9-5.3; 32 um:
    1.2-1.7; blur sigma 4 px: about 2), tending to 1 when hopelessly blurred. It is 0 when the
    image has no structure above the noise at the coarse scale (a blank field: focus cannot be
    judged). Tiles of 112 x 112 px or more are filtered through the FFT
    (:func:`plateflow.qc.laplacian.log_maps`), with the same result up to float32 rounding.

    Parameters
    ----------
    plane : (Y, X) ndarray
        One raw channel.
    sigma_fine, sigma_coarse : float
        The two Gaussian scales (px).
    max_size : int
        Images larger than this on a side are scored on four ``max_size // 2`` tiles, one in
        each quadrant, to bound the cost.

    Returns
    -------
    float
        The focus score (dimensionless, >= 0).
    """
    sums = np.zeros(2)
    sq = np.zeros(2)
    count = 0
    diffs = []
    for ys, xs in _focus_tiles(plane.shape, max_size):
        tile = plane[ys, xs].astype(np.float32)
        # every other row is plenty for the noise level and halves the cost of the medians
        diffs.append(np.diff(tile[::2], axis=1).ravel())
        for i, lap in enumerate(log_maps(tile, (float(sigma_fine), float(sigma_coarse)))):
            sums[i] += lap.sum(dtype=np.float64)
            sq[i] += np.square(lap, dtype=np.float32).sum(dtype=np.float64)
        count += lap.size
    var = sq / count - (sums / count) ** 2
    integer = plane.dtype.kind in "ub" or (plane.dtype.kind == "i" and plane.dtype.itemsize <= 2)
    noise2 = mad_sigma(np.concatenate(diffs), integer=integer) ** 2 / 2.0
    e_fine = var[0] - noise2 * log_noise_gain(float(sigma_fine))
    noise_coarse = noise2 * log_noise_gain(float(sigma_coarse))
    e_coarse = var[1] - noise_coarse
    if e_coarse <= noise_coarse or e_fine <= 0:
        return 0.0
    return float(e_fine / e_coarse)



def _focus_tiles(shape: tuple[int, int], max_size: int) -> list[tuple[slice, slice]]:
    """Regions of a (Y, X) image on which the focus score is computed.

    The whole image when both sides are at most ``max_size``; otherwise four tiles of at most
    ``max_size // 2`` pixels per side, centred in the four quadrants (spread over the field, so
    that a sparse site still shows some cells, and cheap to filter).
    """
    ny, nx = shape
    if ny <= max_size and nx <= max_size:
        return [(slice(0, ny), slice(0, nx))]
    ty, tx = min(ny // 2, max_size // 2), min(nx // 2, max_size // 2)
    tiles = []
    for cy in (ny // 4, (3 * ny) // 4):
        for cx in (nx // 4, (3 * nx) // 4):
            y0 = min(max(cy - ty // 2, 0), ny - ty)
            x0 = min(max(cx - tx // 2, 0), nx - tx)
            tiles.append((slice(y0, y0 + ty), slice(x0, x0 + tx)))
    return tiles

