"""Per-site image quality control: metrics and pass/fail decisions.

Every site (field of view) gets a flat dictionary of metrics, one value per channel, named
``QC_<Metric>_<Channel>`` (for example ``QC_FocusScore_DNA``), computed on the RAW image so that
the numbers mean the same thing on every plate:

``QC_FocusScore_<ch>``
    Noise-corrected ratio of Laplacian energies at two scales (see :func:`focus_score`):
    ``E(2 px) / E(4 px)`` with ``E(s) = var(laplace(gaussian(img, s))) - (noise part)``. Fine
    detail survives only in focus, so the ratio falls with defocus (about 6 for sharp nuclei,
    about 2 for a Gaussian blur of sigma 4 px, towards 1 when hopelessly blurred). It is
    dimensionless and does not depend on brightness, offset, gain, or cell density; unlike
    ``var(Laplacian) / mean**2`` (which ranks by contrast as much as by sharpness) one absolute
    threshold suits dim and bright channels. It is 0 on a blank field (no structure above the
    noise). It depends on the pixel size relative to the optics: a setup that samples much more
    finely (e.g. unbinned 2160 px sCMOS at low NA) scores lower and may need its own threshold.
    Images larger than ``params["focus_max_size"]`` are scored on four tiles (one per quadrant).
    Bright-field channels score high regardless; leave them out of ``focus_channels``.
``QC_SaturatedFraction_<ch>``
    Fraction of pixels ``>= params["saturation_level"]`` (or ``>= dtype_max`` when that is null).
``QC_Intensity_P01_<ch>``, ``QC_Intensity_P50_<ch>``, ``QC_Intensity_P99_<ch>``, ``QC_Intensity_Mean_<ch>``
    1st, 50th, 99th percentiles (``inverted_cdf`` definition: an actual pixel value) and the mean,
    in raw intensity units.
``QC_ForegroundFraction_<ch>``
    "Are there cells?": the channel is block-averaged down to at most ``params["working_size"]``
    pixels on the long side, a robust per-pixel noise level is estimated from the median absolute
    deviation of horizontally neighbouring pixel differences (``1.4826 * MAD / sqrt(2)``, floored
    at ``params["noise_floor"]``), a local background map is estimated as the
    ``params["background_percentile"]`` percentile of each block of a
    ``params["background_grid"]`` x ``background_grid`` grid, refined a few times as the mean of
    the block's non-foreground pixels and interpolated between block centres (so uneven
    illumination / vignetting is not mistaken for cells), and the foreground is every pixel of the
    lightly smoothed (Gaussian sigma 1) downsampled image brighter than
    ``background + params["foreground_k"] * noise``. The fraction of such pixels is reported.
``QC_ObjectCount_<ch>``
    Number of connected components (8-connected) of that foreground whose area is at least
    ``params["min_object_area"]`` pixels (in full-resolution pixels). Touching cells count as one
    object: it is an estimate for QC, not a segmentation.

:func:`decide` turns the metrics into ``"pass"``/``"fail"`` with human-readable reasons, using
absolute thresholds from ``params``; each check can be restricted to a list of channels.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

logger = logging.getLogger(__name__)

#: Default QC parameters (the config JSON schema fills the same defaults).
DEFAULT_PARAMS: dict = {
    # --- measurement ---
    # pixel value counted as saturated; null = the image type's maximum (255, 65535, ...)
    "saturation_level": None,
    # focus score = Laplacian energy at Gaussian scale focus_sigma_fine / at focus_sigma_coarse (px)
    "focus_sigma_fine": 2.0,
    "focus_sigma_coarse": 4.0,
    # larger images are focus-scored on 4 tiles of focus_max_size // 2 px (one per quadrant)
    "focus_max_size": 1024,
    # long side (px) of the block-averaged image used for the foreground / object count
    "working_size": 512,
    # smallest noise level (raw intensity units) assumed by the foreground threshold
    "noise_floor": 0.5,
    # foreground = smoothed pixel > local background + foreground_k * noise
    "foreground_k": 3.0,
    # initial local background = this percentile of each block of the background grid
    "background_percentile": 10.0,
    # the background grid has background_grid x background_grid blocks
    "background_grid": 16,
    # smallest connected foreground area (full-resolution px) counted as an object
    "min_object_area": 25,
    # --- decisions (absolute thresholds; *_channels: list of channel names, null = all) ---
    "min_focus_score": 2.3,
    "focus_channels": None,
    "max_saturated_fraction": 0.01,
    "saturation_channels": None,
    "min_foreground_fraction": 0.002,
    "foreground_channels": None,
}

#: Metric families reported for each channel, in output order.
METRIC_NAMES: tuple[str, ...] = (
    "FocusScore",
    "SaturatedFraction",
    "Intensity_P01",
    "Intensity_P50",
    "Intensity_P99",
    "Intensity_Mean",
    "ForegroundFraction",
    "ObjectCount",
)

_PERCENTILES = {"Intensity_P01": 1.0, "Intensity_P50": 50.0, "Intensity_P99": 99.0}


def metric_key(metric: str, channel: str) -> str:
    """Column name of one QC metric for one channel, e.g. ``QC_FocusScore_DNA``."""
    return f"QC_{metric}_{channel}"


def unreadable_metrics(channels: Sequence[str]) -> dict[str, float]:
    """Metrics of a site whose image files cannot be read: every key, all NaN.

    Parameters
    ----------
    channels : list of str
        Biological channel names, in image order.

    Returns
    -------
    dict
        The same keys as :func:`measure_site` returns, every value ``nan``.
    """
    return {metric_key(m, ch): math.nan for ch in channels for m in METRIC_NAMES}


def measure_site(
    image: np.ndarray, channels: Sequence[str], *, dtype_max: float, params: dict
) -> dict[str, float]:
    """Measure the QC metrics of one site.

    Parameters
    ----------
    image : (C, Y, X) ndarray
        Raw site image (uint8/uint16; other numeric types work, more slowly).
    channels : list of str
        Biological channel names, one per image channel, in order.
    dtype_max : float
        Largest value the raw image type can hold (255 for uint8, 65535 for uint16): the default
        saturation level.
    params : dict
        QC parameters, see :data:`DEFAULT_PARAMS`.

    Returns
    -------
    dict of str to float
        ``QC_<Metric>_<Channel>`` -> value, for every metric of :data:`METRIC_NAMES`.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(
            f"QC expects one site as a (channels, height, width) image, got shape {image.shape}"
        )
    if image.shape[0] != len(channels):
        raise ValueError(
            f"The site image has {image.shape[0]} channels but {len(channels)} channel names were "
            f"given ({', '.join(channels)})"
        )
    if image.shape[1] < 8 or image.shape[2] < 8:
        raise ValueError(f"The site image is too small for QC: {image.shape[1]}x{image.shape[2]}")
    level = params["saturation_level"]
    level = float(dtype_max) if level is None else float(level)
    out: dict[str, float] = {}
    for ch_name, plane in zip(channels, image):
        m = _intensity_stats(plane, saturation_level=level)
        m["FocusScore"] = focus_score(
            plane,
            sigma_fine=params["focus_sigma_fine"],
            sigma_coarse=params["focus_sigma_coarse"],
            max_size=params["focus_max_size"],
        )
        fg_frac, n_obj = foreground(plane, params=params)
        m["ForegroundFraction"] = fg_frac
        m["ObjectCount"] = float(n_obj)
        for name in METRIC_NAMES:
            out[metric_key(name, ch_name)] = float(m[name])
    return out


def _intensity_stats(plane: np.ndarray, *, saturation_level: float) -> dict[str, float]:
    """Percentiles, mean and saturated fraction of one channel.

    Parameters
    ----------
    plane : (Y, X) ndarray
        One raw channel.
    saturation_level : float
        Pixels ``>=`` this value count as saturated.
    """
    n = plane.size
    if plane.dtype.kind == "u" and plane.dtype.itemsize <= 2:
        # a histogram is much faster than sorting for 8/16-bit images
        hist = np.bincount(plane.ravel())
        cdf = np.cumsum(hist)
        values = np.arange(hist.size, dtype=np.float64)
        out = {
            name: float(np.searchsorted(cdf, q / 100.0 * n, side="left"))
            for name, q in _PERCENTILES.items()
        }
        out["Intensity_Mean"] = float(hist @ values / n)
        first = max(math.ceil(saturation_level), 0)
        out["SaturatedFraction"] = float(hist[first:].sum() / n) if first < hist.size else 0.0
        return out
    flat = plane.ravel()
    pct = np.percentile(flat, list(_PERCENTILES.values()), method="inverted_cdf")
    out = {name: float(v) for name, v in zip(_PERCENTILES, pct)}
    out["Intensity_Mean"] = float(flat.mean(dtype=np.float64))
    out["SaturatedFraction"] = float(np.count_nonzero(flat >= saturation_level) / n)
    return out


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


def _laplacian(a: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of the interior of a (Y, X) array (no boundary padding)."""
    return a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:] - 4.0 * a[1:-1, 1:-1]


_TRUNCATE = 3.0


@functools.lru_cache(maxsize=16)
def _log_noise_gain(sigma: float) -> float:
    """Variance of the Laplacian of Gaussian-smoothed unit white noise (sum of squared kernel)."""
    half = math.ceil(_TRUNCATE * sigma) + 3
    delta = np.zeros((2 * half + 1, 2 * half + 1), np.float64)
    delta[half, half] = 1.0
    kernel = _laplacian(ndi.gaussian_filter(delta, sigma, truncate=_TRUNCATE))
    return float((kernel**2).sum())


def focus_score(
    plane: np.ndarray, *, sigma_fine: float = 2.0, sigma_coarse: float = 4.0, max_size: int = 1024
) -> float:
    """Focus score of one channel: Laplacian energy at a fine over a coarse scale, noise-corrected.

    ``E(s) = var(laplace(G_s * img)) - noise**2 * g(s)`` is the variance of the Laplacian of the
    channel smoothed with a Gaussian of sigma ``s`` minus the part that camera noise contributes
    (``noise`` from :func:`robust_noise`, ``g(s)`` = sum of the squared filter kernel). The score
    is ``E(sigma_fine) / E(sigma_coarse)``: in-focus edges and texture keep much of their
    Laplacian energy at the fine scale, blurred ones lose it, so the ratio drops with defocus.
    It does not depend on brightness, background offset, gain, or how many cells there are.
    For edge-like structures of Gaussian width ``w`` px it is about
    ``((w**2 + sigma_coarse**2) / (w**2 + sigma_fine**2)) ** 1.5``: about 6 for sharp synthetic
    nuclei, 4-12 on real in-focus fluorescence (BBBC006 12 um defocus: 3.9-5.3; 32 um:
    1.2-1.7; blur sigma 4 px: about 2), tending to 1 when hopelessly blurred. It is 0 when the image has no structure above the
    noise at the coarse scale (a blank field: focus cannot be judged).

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
        for i, s in enumerate((sigma_fine, sigma_coarse)):
            lap = _laplacian(ndi.gaussian_filter(tile, s, truncate=_TRUNCATE))
            sums[i] += lap.sum(dtype=np.float64)
            sq[i] += np.square(lap, dtype=np.float32).sum(dtype=np.float64)
        count += lap.size
    var = sq / count - (sums / count) ** 2
    noise2 = _mad_sigma(np.concatenate(diffs)) ** 2 / 2.0
    e_fine = var[0] - noise2 * _log_noise_gain(float(sigma_fine))
    noise_coarse = noise2 * _log_noise_gain(float(sigma_coarse))
    e_coarse = var[1] - noise_coarse
    if e_coarse <= noise_coarse or e_fine <= 0:
        return 0.0
    return float(e_fine / e_coarse)


def _mad_sigma(values: np.ndarray) -> float:
    """Robust standard deviation: 1.4826 x median absolute deviation from the median."""
    med = np.median(values)
    return float(1.4826 * np.median(np.abs(values - med)))


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
        Block means (edge rows/columns that do not fill a block are dropped).
    f : int
        The integer block size (1 = no downsampling).
    """
    f = max(1, math.ceil(max(plane.shape) / int(working_size)))
    if f == 1:
        return plane.astype(np.float32), 1
    ny, nx = plane.shape[0] // f, plane.shape[1] // f
    blocks = plane[: ny * f, : nx * f].reshape(ny, f, nx, f)
    acc = np.float64 if plane.dtype.kind == "f" else np.uint64
    small = blocks.sum(axis=3, dtype=acc).sum(axis=1)
    return (small / (f * f)).astype(np.float32), f


def robust_noise(plane: np.ndarray) -> float:
    """Per-pixel noise standard deviation from neighbouring-pixel differences.

    Uses ``1.4826 * MAD(d) / sqrt(2)`` of the horizontal differences ``d``: cells and smooth
    illumination changes barely affect neighbouring-pixel differences, so this measures the
    camera/shot noise even on images with many cells.

    Parameters
    ----------
    plane : (Y, X) ndarray
        One channel.
    """
    d = np.diff(plane.astype(np.float32), axis=1).ravel()
    return _mad_sigma(d) / math.sqrt(2.0)


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


def foreground(plane: np.ndarray, *, params: dict) -> tuple[float, int]:
    """Foreground fraction and estimated object count of one channel.

    Parameters
    ----------
    plane : (Y, X) ndarray
        One raw channel.
    params : dict
        Uses ``working_size``, ``noise_floor``, ``foreground_k``, ``background_grid``,
        ``background_percentile`` and ``min_object_area``.

    Returns
    -------
    fraction : float
        Fraction of pixels above background + k * noise.
    count : int
        Connected foreground components of at least ``min_object_area`` full-resolution pixels.
    """
    small, f = block_downsample(plane, params["working_size"])
    noise = max(robust_noise(small), float(params["noise_floor"]))
    smooth = ndi.gaussian_filter(small, 1.0, truncate=_TRUNCATE)
    k = float(params["foreground_k"])
    bg = background_map(
        smooth,
        noise=noise,
        grid=params["background_grid"],
        percentile=params["background_percentile"],
        k=k,
    )
    mask = smooth > bg + k * noise
    fraction = float(mask.mean())
    if fraction == 0.0:
        return 0.0, 0
    labels, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return fraction, 0
    areas = np.bincount(labels.ravel())[1:]
    min_area = max(1.0, params["min_object_area"] / float(f * f))
    return fraction, int(np.count_nonzero(areas >= min_area))


def _check_channels(selected: Sequence[str] | None, channels: Sequence[str], key: str) -> list:
    if selected is None:
        return list(channels)
    if isinstance(selected, str):
        selected = [selected]
    unknown = [c for c in selected if c not in channels]
    if unknown:
        raise ValueError(
            f"QC setting '{key}' names channel(s) {', '.join(map(str, unknown))}, but this plate's "
            f"channels are {', '.join(channels)}"
        )
    return list(selected)


def _get(metrics: dict, metric: str, channel: str) -> float:
    key = metric_key(metric, channel)
    try:
        return float(metrics[key])
    except KeyError:
        raise ValueError(
            f"QC metric {key} is missing: were the metrics measured with the same channels?"
        ) from None


def decide(metrics: dict, channels: Sequence[str], *, params: dict) -> tuple[str, list[str]]:
    """Pass or fail one site from its QC metrics.

    Checks (each on ``params["<check>_channels"]``, null = every channel):

    * focus: ``QC_FocusScore < min_focus_score`` -> out of focus (0: no structure at all);
    * saturation: ``QC_SaturatedFraction > max_saturated_fraction``;
    * foreground: ``QC_ForegroundFraction < min_foreground_fraction`` -> no cells?

    A threshold set to null disables its check. A metric that is NaN (could not be measured)
    fails its check.

    Parameters
    ----------
    metrics : dict
        Output of :func:`measure_site`.
    channels : list of str
        The site's channel names.
    params : dict
        QC parameters, see :data:`DEFAULT_PARAMS`.

    Returns
    -------
    status : {"pass", "fail"}
    reasons : list of str
        One line per failed check, e.g. ``"DNA: focus score 1.6 < 2.3 (out of focus)"``;
        empty when the site passes.
    """
    reasons: list[str] = []
    checks = (
        ("focus", "FocusScore", "min_focus_score"),
        ("saturation", "SaturatedFraction", "max_saturated_fraction"),
        ("foreground", "ForegroundFraction", "min_foreground_fraction"),
    )
    for check, metric, threshold_key in checks:
        threshold = params[threshold_key]
        if threshold is None:
            continue
        threshold = float(threshold)
        for ch in _check_channels(params[f"{check}_channels"], channels, f"{check}_channels"):
            value = _get(metrics, metric, ch)
            if math.isnan(value):
                reasons.append(f"{ch}: {check} metric could not be measured")
            elif check == "focus" and value < threshold:
                why = "out of focus" if value > 0 else "no structure above noise: empty or blurred"
                reasons.append(f"{ch}: focus score {value:.3g} < {threshold:.3g} ({why})")
            elif check == "saturation" and value > threshold:
                reasons.append(
                    f"{ch}: {100 * value:.1f}% saturated pixels > {100 * threshold:.1f}%"
                )
            elif check == "foreground" and value < threshold:
                reasons.append(
                    f"{ch}: foreground {100 * value:.2g}% < {100 * threshold:.2g}% (no cells?)"
                )
    return ("fail" if reasons else "pass"), reasons
