"""Nuclei of the classical method (after CellProfiler's IdentifyPrimaryObjects, global threshold)."""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi
from skimage import segmentation

from plateflow.segmentation.morphology import (
    fill_holes_per_object,
    fill_small_holes,
    filter_by_area,
    find_markers,
)
from plateflow.segmentation.thresholds import auto_threshold, has_contrast, smooth

logger = logging.getLogger(__name__)

__all__ = ["DECLUMP_METHODS", "find_nuclei"]

#: How touching nuclei can be split.
DECLUMP_METHODS = ("shape", "intensity", "none")


def find_nuclei(
    plane: np.ndarray,
    *,
    smoothing_sigma: float = 1.0,
    threshold_method: str = "otsu",
    threshold_correction: float = 1.0,
    min_threshold: float = 0.0,
    min_snr: float = 4.0,
    diameter_range: tuple[float, float] = (8, 80),
    declump: str = "shape",
    declump_min_distance: float | None = None,
    fill_holes: bool = True,
    exclude_border: bool = False,
) -> tuple[np.ndarray, dict, np.ndarray]:
    """Find nuclei in a DNA image.

    Smooth, threshold (automatic threshold x correction, bounded below by ``min_threshold``
    and by the ``min_snr`` blank-image guard), fill holes smaller than the smallest nucleus,
    drop specks smaller than the smallest nucleus, split touching nuclei by a
    marker-controlled watershed, fill holes enclosed by a single nucleus,
    discard objects outside the area range (and on the border if asked), relabel 1..N.

    Parameters
    ----------
    plane : (Y, X) float ndarray
        DNA stain, intensities in [0, 1].
    smoothing_sigma, threshold_method, threshold_correction, min_threshold, min_snr
        See :func:`plateflow.segmentation.thresholds.auto_threshold`; ``smoothing_sigma`` is
        the Gaussian sigma (px) applied before thresholding.
    diameter_range : (float, float)
        Typical nucleus diameter (min, max) in pixels; areas outside
        ``[pi/4 * min**2, pi/4 * max**2]`` are discarded.
    declump : {"shape", "intensity", "none"}
        Markers from peaks of the (lightly smoothed) distance transform ("shape") or of the
        image smoothed with sigma = min diameter / 3.5 ("intensity", CellProfiler's automatic
        smoothing); the watershed runs on the same (negated) surface.
    declump_min_distance : float or None
        Minimum distance between markers, px; None -> ``min diameter / 1.5`` (CellProfiler).
    fill_holes, exclude_border : bool

    Returns
    -------
    labels : (Y, X) int32 ndarray
        Kept nuclei, 1..N.
    info : dict
        ``{"nuclei_threshold": float or None}`` (None: image judged blank).
    discarded : (Y, X) int32 ndarray
        Objects dropped by the size / border filters, labelled N+1.. (0 elsewhere).
    """
    if declump not in DECLUMP_METHODS:
        raise ValueError(
            f"Unknown declump method {declump!r}; allowed: {', '.join(DECLUMP_METHODS)}"
        )
    dmin, dmax = (float(d) for d in diameter_range)
    if not 0 < dmin <= dmax:
        raise ValueError(
            f"The nucleus diameter range must satisfy 0 < min <= max; got ({dmin}, {dmax})"
        )
    plane = np.asarray(plane, dtype=np.float32)
    min_area = np.pi / 4 * dmin**2
    max_area = np.pi / 4 * dmax**2
    min_distance = dmin / 1.5 if declump_min_distance is None else float(declump_min_distance)

    smoothed = smooth(plane, smoothing_sigma)
    threshold = None
    if min_snr <= 0 or has_contrast(plane, smoothed, sigma=smoothing_sigma, min_snr=min_snr,
                                    method=threshold_method, background_scale=dmax):
        threshold = auto_threshold(
            smoothed,
            method=threshold_method,
            correction=threshold_correction,
            min_threshold=min_threshold,
            min_snr=0.0,
        )
    info: dict = {"nuclei_threshold": None if threshold is None else float(threshold)}
    if threshold is None:
        logger.info("No nuclei: the DNA image looks blank (no contrast above background noise)")
        empty = np.zeros(plane.shape, np.int32)
        return empty, info, empty.copy()

    foreground = smoothed > threshold
    if fill_holes:
        # Small holes (dark nucleoli, below the smallest nucleus area) are filled before
        # declumping so they do not create extra distance-transform peaks; larger background
        # pockets may be gaps enclosed by several nuclei and are left to the per-object fill.
        foreground = fill_small_holes(foreground, min_area)
    components, _ = ndi.label(foreground)
    foreground = filter_by_area(components, min_area, np.inf) > 0

    if declump == "none":
        labels, _ = ndi.label(foreground)
    else:
        if declump == "shape":
            score = ndi.distance_transform_edt(foreground).astype(np.float32)
            score = smooth(score, 1.0)
        else:
            score = smooth(plane, dmin / 3.5)
        markers = find_markers(score, foreground, min_distance)
        labels = segmentation.watershed(-score, markers, mask=foreground)
    if fill_holes:
        labels = fill_holes_per_object(labels)
    candidates = labels
    labels = filter_by_area(labels, min_area, max_area)
    if exclude_border:
        labels = segmentation.clear_border(labels)
    labels, _, _ = segmentation.relabel_sequential(labels.astype(np.int32, copy=False))
    n_kept = int(labels.max(initial=0))
    dropped = (candidates > 0) & (labels == 0)
    discarded = np.zeros(labels.shape, np.int32)
    if dropped.any():
        relabelled, _, _ = segmentation.relabel_sequential(
            np.where(dropped, candidates, 0).astype(np.int32), offset=n_kept + 1
        )
        discarded = relabelled.astype(np.int32, copy=False)
    return labels, info, discarded
