"""One site's QC metrics: every metric of every channel, and their names.

Every site (field of view) gets a flat dictionary of metrics, one value per channel, named
``QC_<Metric>_<Channel>`` (for example ``QC_FocusScore_DNA``), computed on the RAW image so that
the numbers mean the same thing on every plate:

``QC_FocusScore_<ch>``
    Noise-corrected ratio of Laplacian energies at two scales
    (see :func:`plateflow.qc.focus.focus_score`):
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
``QC_Intensity_P01_<ch>``, ``QC_Intensity_P50_<ch>``, ``QC_Intensity_P99_<ch>``,
``QC_Intensity_Mean_<ch>``
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
``QC_PowerLogLogSlope_<ch>``
    CellProfiler's MeasureImageQuality ``PowerLogLogSlope``
    (see :func:`plateflow.qc.spectrum.power_log_log_slope`):
    the least-squares slope of log(power summed over a ring ``floor(r) = k`` of the 2-D Fourier
    spectrum) against log(k + 1), over the low/middle frequencies CellProfiler uses (``r`` from 1
    to about ``size / 8`` cycles per image, i.e. wavelengths down to 8 px), DC excluded. It is
    computed on square crops of at most ``params["powerspectrum_max_size"]`` px (one centred crop,
    or one per quadrant when the image holds four), whose ring powers are added up. Blur removes
    high frequencies, so the slope gets more negative with defocus (BBBC006 Hoechst: -2.1 to -1.7
    at 12 um from focus, -3.3 to -2.5 at 32 um). It does not depend on brightness, offset or
    gain. Camera noise is white (ring power grows like the ring length), so a blank field scores
    about +1: read it together with ``QC_ForegroundFraction``. On a square image of at most
    ``powerspectrum_max_size`` px it equals CellProfiler's value.
``QC_FocusTilesInFocusFraction_<ch>``, ``QC_FocusTilesWithContent_<ch>``, ``QC_FocusCertainty_<ch>``
    A patch-wise focus map (see :func:`plateflow.qc.focus_map.focus_tiles`): the image is cut into a
    ``params["focus_tile_grid"]`` x ``focus_tile_grid`` grid and the focus score above is computed
    on the central ``params["focus_tile_size"]`` px square of each tile (tiles are at least 32 px,
    so small images get a coarser grid). Tiles whose foreground
    fraction (same foreground mask as ``QC_ForegroundFraction``) is below
    ``params["focus_tile_min_foreground"]`` have no content and are LEFT OUT rather than called
    blurry (as the Google microscope-image-quality model treats blank patches).
    ``FocusTilesWithContent`` is the number of tiles kept, ``FocusTilesInFocusFraction`` the share
    of them whose score is ``>= params["min_focus_score"]`` (0 when no tile has content), and
    ``FocusCertainty`` in [0, 1] says how clear-cut that verdict is: the mean over content tiles
    of ``d / (d + 0.25 * thr)`` with ``d = |score - thr|`` and ``thr = min_focus_score``,
    times ``min(1, n_content / 8)`` (few content tiles = little evidence; 0 without content).
``QC_Intensity_P05_<ch>``, ``QC_Intensity_P95_<ch>``, ``QC_Intensity_Std_<ch>``,
``QC_Intensity_Entropy_<ch>``
    5th and 95th percentiles (``inverted_cdf``), population standard deviation (raw units) and
    the Shannon entropy in bits of a 256-bin histogram over ``[0, dtype_max]`` (values outside
    are counted in the end bins; 0 = one bin holds every pixel, at most 8). A dim 16-bit channel
    fills only a few of the 256 bins (each 256 grey levels wide), so its entropy is low.
``QC_CornerToCentreRatio_<ch>``
    Illumination fall-off: mean of the four corner squares divided by the mean of the central
    square, each square 10 % of the short side, on the raw image (camera offset included, and
    cells in a corner count too). About 1 for flat illumination, below 1 for vignetting;
    NaN when the centre mean is 0.

The absolute pass/fail checks on these metrics are :func:`plateflow.qc.checks.failed_checks`;
plate-relative flags are :mod:`plateflow.qc.plate`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from plateflow.core.stats import corner_to_centre_ratio
from plateflow.qc.focus import focus_score
from plateflow.qc.focus_map import focus_tiles
from plateflow.qc.foreground import count_objects, foreground_mask
from plateflow.qc.intensity import intensity_stats
from plateflow.qc.spectrum import power_log_log_slope

logger = logging.getLogger(__name__)

__all__ = ["METRIC_NAMES", "measure_site", "metric_key", "unreadable_metrics"]

#: Metric families reported for each channel, in output order.
METRIC_NAMES: tuple[str, ...] = (
    "FocusScore",
    "PowerLogLogSlope",
    "FocusTilesInFocusFraction",
    "FocusTilesWithContent",
    "FocusCertainty",
    "SaturatedFraction",
    "Intensity_P01",
    "Intensity_P05",
    "Intensity_P50",
    "Intensity_P95",
    "Intensity_P99",
    "Intensity_Mean",
    "Intensity_Std",
    "Intensity_Entropy",
    "ForegroundFraction",
    "ObjectCount",
    "CornerToCentreRatio",
)

#: side of the corner / centre squares of CornerToCentreRatio, as a fraction of the short side
_CORNER_FRACTION = 0.1


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
        Largest value the raw image type can hold (255 for uint8, 65535 for uint16, 4095 for
        12-bit data): the default saturation level and the top of the entropy histogram.
    params : dict
        QC parameters, see :data:`plateflow.qc.DEFAULT_PARAMS`.

    Returns
    -------
    dict of str to float
        ``QC_<Metric>_<Channel>`` -> value, for every metric of :data:`METRIC_NAMES` (see the
        module docstring).
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
    if not dtype_max > 0:
        raise ValueError(f"The image type's maximum value must be positive, got {dtype_max}")
    level = params["saturation_level"]
    level = float(dtype_max) if level is None else float(level)
    out: dict[str, float] = {}
    for ch_name, plane in zip(channels, image):
        m = intensity_stats(plane, saturation_level=level, dtype_max=float(dtype_max))
        m["FocusScore"] = focus_score(
            plane,
            sigma_fine=params["focus_sigma_fine"],
            sigma_coarse=params["focus_sigma_coarse"],
            max_size=params["focus_max_size"],
        )
        m["PowerLogLogSlope"] = power_log_log_slope(
            plane, max_size=params["powerspectrum_max_size"]
        )
        mask, f = foreground_mask(plane, params=params)
        m["ForegroundFraction"] = float(mask.mean())
        m["ObjectCount"] = float(count_objects(mask, f, min_object_area=params["min_object_area"]))
        m.update(focus_tiles(plane, mask, f, params=params))
        m["CornerToCentreRatio"] = corner_to_centre_ratio(plane, patch_fraction=_CORNER_FRACTION)
        for name in METRIC_NAMES:
            out[metric_key(name, ch_name)] = float(m[name])
    return out

