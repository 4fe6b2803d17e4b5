"""Are there cells? The foreground of one channel, against a local background map.

The channel is block-averaged down to at most ``working_size`` px on the long side
(:func:`block_downsample`), its pixel noise estimated (:func:`plateflow.core.stats.pixel_noise`,
floored at ``noise_floor``), a smooth local background estimated on a grid
(:func:`background_map`, so uneven illumination is not mistaken for cells), and the
foreground is every pixel of the lightly smoothed image above ``background + k * noise``
(:func:`foreground_mask`). :func:`count_objects` counts its connected components.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy import ndimage as ndi

from plateflow.core.stats import block_mean, pixel_noise
from plateflow.qc.laplacian import TRUNCATE

logger = logging.getLogger(__name__)

__all__ = ["background_map", "block_downsample", "count_objects", "foreground_mask"]


def block_downsample(plane: np.ndarray, working_size: int) -> tuple[np.ndarray, int]:
    """Block-average a channel so that its long side is at most ``working_size`` pixels.

    Parameters
    ----------
    plane : (Y, X) ndarray
        One channel.
    working_size : int
        Largest allowed long side after downsampling.

    Returns
    -------
    small : (Y // f, X // f) float32 ndarray
        Block means (:func:`plateflow.core.stats.block_mean`; edge rows/columns that do not
        fill a block are dropped).
    f : int
        The integer block size (1 = no downsampling); never more than the short side.
    """
    f = max(1, min(math.ceil(max(plane.shape) / int(working_size)), min(plane.shape)))
    return block_mean(plane, f), f


def _interp_index(n_out: int, n_grid: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation from block centres to pixel centres along one axis.

    Returns the lower grid index (n_out,) and the weight of the upper one (n_out, float32);
    pixels beyond the first/last block centre take that block's value.
    """
    pos = np.clip((np.arange(n_out) + 0.5) / block - 0.5, 0, n_grid - 1)
    lo = np.minimum(np.floor(pos).astype(np.intp), max(n_grid - 2, 0))
    return lo, (pos - lo).astype(np.float32)


def _upsample(coarse: np.ndarray, iy: tuple, ix: tuple) -> np.ndarray:
    """Bilinear upsampling of a (gy, gx) grid with :func:`_interp_index` tables (no BLAS)."""
    (ly, fy), (lx, fx) = iy, ix
    hy = np.minimum(ly + 1, coarse.shape[0] - 1)
    hx = np.minimum(lx + 1, coarse.shape[1] - 1)
    rows = coarse[ly] * (1.0 - fy)[:, None] + coarse[hy] * fy[:, None]
    return rows[:, lx] * (1.0 - fx)[None, :] + rows[:, hx] * fx[None, :]


def background_map(
    plane: np.ndarray, *, noise: float, grid: int, percentile: float, k: float, iterations: int = 3
) -> np.ndarray:
    """Smooth local background of one channel, robust to cells and to uneven illumination.

    Starts from the ``percentile`` of each block of a ``grid`` x ``grid`` grid, then
    ``iterations`` times re-estimates each block's background as the (lightly grid-smoothed)
    mean of its pixels that are not brighter than the current background + ``k * noise``.
    The per-block values are linearly interpolated between block centres, so a smooth
    illumination gradient within a block does not bias the estimate.

    Parameters
    ----------
    plane : (Y, X) ndarray
        One (smoothed, downsampled) channel.
    noise : float
        Noise standard deviation of ``plane``'s pixels.
    grid : int
        Number of blocks along each side (fewer for tiny images).
    percentile : float
        Percentile giving the initial background of each block.
    k : float
        Pixels brighter than background + ``k * noise`` are left out of the background.
    iterations : int
        Number of refinement passes.

    Returns
    -------
    (Y, X) float32 ndarray
        The background.
    """
    ny, nx = plane.shape
    gy, gx = max(1, min(grid, ny // 8)), max(1, min(grid, nx // 8))
    by, bx = ny // gy, nx // gx
    core = plane[: gy * by, : gx * bx]
    blocks = core.reshape(gy, by, gx, bx).transpose(0, 2, 1, 3).reshape(gy, gx, by * bx)
    coarse = np.percentile(blocks, percentile, axis=-1).astype(np.float32)
    iy, ix = _interp_index(ny, gy, by), _interp_index(nx, gx, bx)
    min_count = 0.05 * by * bx
    for _ in range(iterations):
        bg = _upsample(coarse, iy, ix)
        keep = core <= bg[: gy * by, : gx * bx] + k * noise
        num = np.where(keep, core, 0.0).reshape(gy, by, gx, bx).sum(axis=(1, 3))
        den = keep.reshape(gy, by, gx, bx).sum(axis=(1, 3)).astype(np.float64)
        num = ndi.gaussian_filter(num, 0.5, mode="nearest", truncate=2.0)
        den = ndi.gaussian_filter(den, 0.5, mode="nearest", truncate=2.0)
        ok = den >= min_count
        coarse = np.where(ok, num / np.maximum(den, 1e-9), coarse).astype(np.float32)
    return _upsample(coarse, iy, ix)


def foreground_mask(plane: np.ndarray, *, params: dict) -> tuple[np.ndarray, int]:
    """Foreground (cells) mask of one channel, on the block-downsampled working image.

    Parameters
    ----------
    plane : (Y, X) ndarray
        One raw channel.
    params : dict
        Uses ``working_size``, ``noise_floor``, ``foreground_k``, ``background_grid`` and
        ``background_percentile``.

    Returns
    -------
    mask : (Y // f, X // f) bool ndarray
        Pixels above local background + k * noise (see the module docstring).
    f : int
        Block size of the working image (full-resolution pixel ``(y, x)`` is mask pixel
        ``(y // f, x // f)``).
    """
    small, f = block_downsample(plane, params["working_size"])
    noise = max(pixel_noise(small), float(params["noise_floor"]))
    smooth = ndi.gaussian_filter(small, 1.0, truncate=TRUNCATE)
    k = float(params["foreground_k"])
    bg = background_map(
        smooth,
        noise=noise,
        grid=params["background_grid"],
        percentile=params["background_percentile"],
        k=k,
    )
    return smooth > bg + k * noise, f


def count_objects(mask: np.ndarray, f: int, *, min_object_area: float) -> int:
    """Connected components (8-connected) of ``mask`` of at least ``min_object_area`` full px.

    Parameters
    ----------
    mask : (Y // f, X // f) bool ndarray
        A working-image foreground, from :func:`foreground_mask`.
    f : int
        Its block size.
    min_object_area : float
        Smallest counted area, in full-resolution pixels.
    """
    if not mask.any():
        return 0
    labels, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return 0
    areas = np.bincount(labels.ravel())[1:]
    min_area = max(1.0, min_object_area / float(f * f))
    return int(np.count_nonzero(areas >= min_area))
