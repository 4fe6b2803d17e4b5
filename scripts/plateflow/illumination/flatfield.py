"""Per-plate flat-field estimation: the illumination pattern of one channel, from many sites.

Microscope illumination and optics are uneven: the centre of each field is brighter than the
corners (vignetting), in the same way on every site of a plate. :func:`estimate_flatfield`
recovers that pattern for one channel from many sites of the plate: every site is
block-averaged to a small working size, a per-pixel statistic across sites cancels the cells
(which sit at different places on each site), the result is smoothed heavily, brought back to
full size and normalised to mean 1. :func:`plateflow.illumination.correct.correct_site`
divides by it.

The default statistic, ``background``, is a low quantile across sites (10 % by default): at
each pixel it is the level of the sites that have no cell there, i.e. the vignetted
background. It needs only that each pixel is free of cells on that fraction of the sites, so it
works for dense stains as well as sparse ones. The ``median`` is the background only where
cells cover less than half of the sites at every pixel (sparse stains such as a nuclear
stain); for a dense stain (cytoplasm, ER) it jumps between cell and background from pixel to
pixel. On the synthetic example plate (36 clean sites of 256 px) the correlation of the
flat-field with the true vignetting is 0.99-1.00 in every channel with ``background``, but 0.26
for the ER channel with the ``median`` and 0.87 for the DNA channel with the ``mean``.

The flat-field is estimated from the raw images, camera offset included, as CellProfiler's
``CorrectIlluminationCalculate`` does: it makes the typical raw background flat, which is
what dividing raw images by it needs. The offset is not vignetted, so where it is large
compared with the background the flat-field is shallower than the optical vignetting (on the
synthetic plate, offset 100 ADU over a background of 40-60 ADU: corner/centre 0.86-0.89 against
0.59-0.65) and the cell signal in the corners stays under-corrected by that ratio; the shape
(and so the correlation with the vignetting) is unaffected. Where the camera's black level is
known (``camera_offset``, e.g. 100 ADU on many sCMOS cameras), it is subtracted from every image
before estimating and before correcting, and the flat-field is the optical vignetting itself
(a constant dark-field term; BaSiC estimates one per pixel, see the README).

Memory stays bounded whatever the number of sites: at most ``max_sites`` images of at most
``working_size`` pixels per side are kept (about 50 MB with the defaults).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import numpy as np
from scipy import ndimage as ndi

from plateflow.core.stats import block_mean

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PARAMS", "METHODS", "estimate_flatfield"]

#: Default flat-field parameters (the config JSON schema fills the same defaults).
DEFAULT_PARAMS: dict = {
    # per-pixel statistic across sites: "background" (a low quantile: the level where no cell
    # sits), "median" (sparse stains only), "mean", or "trimmed_mean"
    "method": "background",
    # for "background": the quantile across sites, per pixel (0.1 = the 10th percentile)
    "background_quantile": 0.1,
    # the camera's black level (ADU), which is not vignetted: subtracted before estimating and
    # before correcting. 0 = CellProfiler's behaviour (the flat-field includes the offset)
    "camera_offset": 0.0,
    # for "trimmed_mean": fraction of the sites dropped at each end, per pixel
    "trim_fraction": 0.1,
    # each site is block-averaged to at most this many pixels on its long side
    "working_size": 256,
    # at most this many sites (evenly spread over the input order) are used
    "max_sites": 200,
    # Gaussian smoothing sigma, as a fraction of the long side of the image
    "smoothing_sigma_fraction": 0.1,
    # smallest flat-field value (after normalising to mean 1): guards against division by ~0
    "floor": 0.05,
}

#: The per-pixel statistics across sites that ``method`` names.
METHODS = ("background", "median", "mean", "trimmed_mean")


def _linear_index(n_out: int, n_in: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation tables from block centres (block size f) to n_out pixel centres."""
    pos = np.clip((np.arange(n_out) + 0.5) / f - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def _upsample(small: np.ndarray, shape: tuple[int, int], f: int) -> np.ndarray:
    """Bilinear upsampling of a block-mean image back to the full (Y, X) ``shape``."""
    if f == 1 and small.shape == tuple(shape):
        return small.astype(np.float32)
    ly, hy, wy = _linear_index(shape[0], small.shape[0], f)
    lx, hx, wx = _linear_index(shape[1], small.shape[1], f)
    rows = small[ly] * (1.0 - wy)[:, None] + small[hy] * wy[:, None]
    return (rows[:, lx] * (1.0 - wx)[None, :] + rows[:, hx] * wx[None, :]).astype(np.float32)


def _select(images: Iterable[np.ndarray], max_sites: int, f_of) -> list[np.ndarray]:
    """Downsampled, evenly spaced subset of at most ``max_sites`` images.

    A sequence (anything with ``len`` and indexing) is subsampled directly, so unselected items
    are never touched. Any other iterable (e.g. a generator reading files) is consumed once:
    images are kept at a stride that doubles (dropping every other kept image) whenever more
    than ``max_sites`` are held, which keeps between ``max_sites / 2`` and ``max_sites`` evenly
    spaced images in memory.
    """
    if hasattr(images, "__len__") and hasattr(images, "__getitem__"):
        n = len(images)
        stride = max(1, math.ceil(n / max_sites))
        return [f_of(images[i]) for i in range(0, n, stride)]
    kept: list[np.ndarray] = []
    stride = 1
    for i, image in enumerate(images):
        if i % stride:
            continue
        kept.append(f_of(image))
        if len(kept) > max_sites:
            kept = kept[::2]
            stride *= 2
    return kept


def _stack_statistic(
    stack: np.ndarray, method: str, *, trim_fraction: float, quantile: float
) -> np.ndarray:
    """Per-pixel statistic over axis 0 of an (N, y, x) stack."""
    if method == "background":
        return np.quantile(stack, quantile, axis=0)
    if method == "median":
        return np.median(stack, axis=0)
    if method == "mean":
        return stack.mean(axis=0)
    n = stack.shape[0]
    cut = math.floor(trim_fraction * n)
    if cut == 0 or n - 2 * cut < 1:
        return stack.mean(axis=0)
    part = np.partition(stack, (cut, n - cut - 1), axis=0)
    return part[cut : n - cut].mean(axis=0)


def _smooth(field: np.ndarray, sigma: float) -> np.ndarray:
    """Heavy Gaussian smoothing that keeps linear trends at the image edges.

    The image is padded by point reflection (``2 * edge - mirror``) rather than by plain
    mirroring, so a falloff that continues to the border (vignetting) is not flattened there.
    """
    if sigma <= 0:
        return field
    # a light median first, so single odd edge pixels are not amplified by the point reflection
    field = ndi.median_filter(field, size=3, mode="nearest")
    pad = min(math.ceil(3 * sigma), min(field.shape) - 1)
    padded = np.pad(field, pad, mode="reflect", reflect_type="odd")
    out = ndi.gaussian_filter(padded, sigma, mode="nearest", truncate=3.0)
    return out[pad : pad + field.shape[0], pad : pad + field.shape[1]]


def estimate_flatfield(images: Iterable[np.ndarray], *, params: dict) -> np.ndarray:
    """Estimate the flat-field of one channel of a plate from many of its sites.

    Parameters
    ----------
    images : iterable of (Y, X) ndarray
        Raw images of ONE channel from the plate's QC-passed sites, all the same shape. May be
        a generator; at most ``params["max_sites"]`` (downsampled) images are held in memory.
    params : dict
        See :data:`DEFAULT_PARAMS`: ``method``, ``background_quantile``, ``camera_offset``,
        ``trim_fraction``, ``working_size``, ``max_sites``, ``smoothing_sigma_fraction``,
        ``floor``.

    Returns
    -------
    (Y, X) float32 ndarray
        Smooth flat-field with mean 1 (exactly, unless the ``floor`` had to lift some values),
        every value ``>= params["floor"]``. Divide a raw image by it to even out the
        illumination.

    Raises
    ------
    ValueError
        No images, images that are not 2-D or differ in size, or an unknown ``method``.
    """
    method = params["method"]
    if method not in METHODS:
        raise ValueError(
            f"Unknown flat-field method {method!r}: choose one of {', '.join(METHODS)}"
        )
    working_size = int(params["working_size"])
    max_sites = int(params["max_sites"])
    if working_size < 8 or max_sites < 1:
        raise ValueError("Flat-field working_size must be >= 8 px and max_sites >= 1")
    quantile = float(params["background_quantile"])
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"Flat-field background_quantile must be in [0, 1], got {quantile}")
    state: dict = {}

    def downsample(image) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim != 2:
            raise ValueError(
                f"Flat-field estimation takes one channel per site, a (height, width) image; "
                f"got shape {image.shape}"
            )
        if "shape" not in state:
            state["shape"] = image.shape
            state["f"] = max(1, math.ceil(max(image.shape) / working_size))
        elif image.shape != state["shape"]:
            raise ValueError(
                f"All sites of a plate must have the same image size for the flat-field: got "
                f"{image.shape[0]}x{image.shape[1]} after {state['shape'][0]}x{state['shape'][1]}"
            )
        small = block_mean(image, state["f"])  # may be ``image`` itself: never edit in place
        if offset:
            small = np.maximum(small - np.float32(offset), np.float32(0))
        return small

    offset = float(params.get("camera_offset", 0.0))
    if offset < 0:
        raise ValueError(f"camera_offset must be >= 0, got {offset}")
    kept = _select(images, max_sites, downsample)
    if not kept:
        raise ValueError("No QC-passed sites to estimate the flat-field from")
    shape, f = state["shape"], state["f"]
    stack = np.stack(kept)
    n_used = stack.shape[0]
    del kept
    stat = _stack_statistic(
        stack, method, trim_fraction=float(params["trim_fraction"]), quantile=quantile
    )
    del stack
    sigma = float(params["smoothing_sigma_fraction"]) * max(stat.shape)
    smooth = _smooth(stat.astype(np.float32), sigma)
    flat = _upsample(smooth, shape, f)
    mean = float(flat.mean(dtype=np.float64))
    if not math.isfinite(mean) or mean <= 0:
        logger.warning(
            "The sites are all dark in this channel (mean %.3g): using a flat flat-field", mean
        )
        return np.ones(shape, np.float32)
    flat /= mean
    floor = float(params["floor"])
    low = flat < floor
    if low.any():
        logger.warning(
            "%.1f%% of the flat-field is below %.3g of the mean and was raised to it",
            100 * low.mean(),
            floor,
        )
        flat[low] = floor
    logger.info(
        "Flat-field from %d sites (%dx%d, working %dx%d): min %.3f, max %.3f",
        n_used,
        shape[0],
        shape[1],
        stat.shape[0],
        stat.shape[1],
        float(flat.min()),
        float(flat.max()),
    )
    return flat.astype(np.float32, copy=False)
