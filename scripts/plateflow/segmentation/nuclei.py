"""Nuclei of the classical method (after CellProfiler's IdentifyPrimaryObjects, global threshold),
at any magnification: the typical diameter is estimated per site unless fixed."""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi
from skimage import segmentation

from plateflow.segmentation.morphology import fill_holes as fill_all_holes
from plateflow.segmentation.morphology import (
    fill_holes_per_object,
    fill_small_holes,
    filter_by_area,
    find_markers,
    relabel,
    upsample,
)
from plateflow.segmentation.scale import estimate_diameter
from plateflow.segmentation.thresholds import auto_threshold, has_contrast, smooth

logger = logging.getLogger(__name__)

__all__ = ["DECLUMP_METHODS", "SIZE_RULES", "background", "declump_score", "find_nuclei",
           "local_midrange", "size_rules"]

#: How touching nuclei can be split.
DECLUMP_METHODS = ("blob", "shape", "intensity", "none")

#: With a typical diameter d (estimated or fixed) and no explicit value: the smallest and the
#: largest nucleus diameter kept, and the minimum distance between two nucleus centres, as
#: multiples of d (measured on dsb2018, docs/segmentation.md).
SIZE_RULES = {"min": 0.4, "max": 3.0, "declump": 0.2}

#: When more than this fraction of the field is foreground, the typical diameter is at most
#: the shorter image side divided by MAX_FIELD_FRACTION.
CONFLUENT = 0.4
MAX_FIELD_FRACTION = 6.0

#: Background removal scale, in typical diameters (``subtract_background``).
BACKGROUND_SCALE = 3.0
#: Laplacian-of-Gaussian sigma of ``declump: blob``, in typical diameters.
BLOB_SIGMA = 0.25

#: Adaptive part of the threshold: a pixel is also foreground when it exceeds the mid-range
#: (mean of min and max) of a window of LOCAL_WINDOW typical diameters and LOCAL_FLOOR x the
#: global threshold (dim nuclei beside bright ones; measured on dsb2018, docs/segmentation.md).
LOCAL_WINDOW = 0.75
LOCAL_FLOOR = 0.5
#: Each object is cut at this fraction of its own peak (:func:`trim_to_own_peak`; measured on
#: dsb2018 and the StarDist image, docs/segmentation.md).
OWN_PEAK_FRACTION = 0.25
#: Second pass (``diameter: auto``): when the median diameter of the nuclei found differs from
#: the estimate by more than this factor, segment again at the measured diameter (with at
#: least MIN_OBJECTS_RESCALE nuclei found).
RESCALE_TOLERANCE = 1.2
MIN_OBJECTS_RESCALE = 3

#: Background removed by the blank-image guard when no diameter is known yet (px).
_GUARD_SCALE = 80.0


def size_rules(diameter: float, diameter_min: float | None = None,
               diameter_max: float | None = None,
               declump_min_distance: float | None = None) -> tuple[float, float, float]:
    """(min diameter, max diameter, min centre distance) in px from the typical ``diameter``;
    explicit values win."""
    dmin = SIZE_RULES["min"] * diameter if diameter_min is None else float(diameter_min)
    dmax = SIZE_RULES["max"] * diameter if diameter_max is None else float(diameter_max)
    dist = (SIZE_RULES["declump"] * diameter if declump_min_distance is None
            else float(declump_min_distance))
    return dmin, max(dmax, dmin), dist


def find_nuclei(
    plane: np.ndarray,
    *,
    smoothing_sigma: float = 1.0,
    threshold_method: str = "otsu",
    threshold_correction: float = 1.0,
    min_threshold: float = 0.0,
    max_threshold: float = 1.0,
    min_snr: float = 4.0,
    diameter: float | str = "auto",
    diameter_min: float | None = None,
    diameter_max: float | None = None,
    declump: str = "blob",
    declump_min_distance: float | None = None,
    subtract_background: bool = True,
    fill_holes: bool = True,
    exclude_border: bool = False,
) -> tuple[np.ndarray, dict, np.ndarray]:
    """Find nuclei in a DNA image.

    Smooth, threshold (robust automatic threshold x correction, within
    ``[min_threshold, max_threshold]``, and the ``min_snr`` blank-image guard), estimate the
    typical nucleus diameter d from the foreground (:func:`~plateflow.segmentation.scale.
    estimate_diameter`) unless ``diameter`` is a number, derive the size range and the
    declumping distance from d (:func:`size_rules`), threshold again after removing the
    background at 3 d (:func:`background`; if ``subtract_background``), add the pixels above
    their neighbourhood's mid-range (:func:`local_midrange`, a window of :data:`LOCAL_WINDOW` d,
    floor :data:`LOCAL_FLOOR` x the threshold: dim nuclei beside bright ones), fill holes
    smaller than the smallest nucleus, drop specks, split touching nuclei by a
    marker-controlled watershed, fill holes enclosed by a single nucleus, discard objects
    outside the size range (and on the border if asked), relabel 1..N. With
    ``diameter="auto"``, when the nuclei found have a median diameter more than
    :data:`RESCALE_TOLERANCE` times off d, all steps from the background removal on run again
    at that diameter.

    Parameters
    ----------
    plane : (Y, X) float ndarray
        DNA stain, intensities in [0, 1].
    smoothing_sigma, threshold_method, threshold_correction, min_threshold, max_threshold, \
min_snr
        See :func:`plateflow.segmentation.thresholds.auto_threshold`; ``smoothing_sigma`` is
        the Gaussian sigma (px) applied before thresholding.
    diameter : "auto" or float
        Typical nucleus diameter in px, or "auto" to estimate it per site.
    diameter_min, diameter_max : float or None
        Nucleus diameters (px) outside which objects are discarded (areas outside
        ``[pi/4 * min**2, pi/4 * max**2]``); None derives them from the typical diameter.
    declump : {"blob", "shape", "intensity", "none"}
        Markers are the peaks of :func:`declump_score`; the watershed runs on the same
        (negated) surface.
    declump_min_distance : float or None
        Minimum distance between markers, px; None derives it from the typical diameter.
    subtract_background : bool
        Threshold again, and use that threshold, after subtracting the background under
        objects narrower than three typical diameters (bounds and correction apply to it).
    fill_holes, exclude_border : bool

    Returns
    -------
    labels : (Y, X) int32 ndarray
        Kept nuclei, 1..N.
    info : dict
        ``nuclei_threshold`` (the threshold used, above the background when it was
        subtracted; None: image judged blank), ``nucleus_diameter`` (the typical
        diameter used, px; None when blank or nothing was found), and how many objects each
        rule removed: ``removed_small``, ``removed_large``, ``removed_border``.
    discarded : (Y, X) int32 ndarray
        Objects dropped by the size / border filters, labelled N+1.. (0 elsewhere).
    """
    if declump not in DECLUMP_METHODS:
        raise ValueError(
            f"Unknown declump method {declump!r}; allowed: {', '.join(DECLUMP_METHODS)}"
        )
    auto = isinstance(diameter, str)
    if auto and diameter != "auto":
        raise ValueError(f"The nucleus diameter must be 'auto' or a number; got {diameter!r}")
    plane = np.asarray(plane, dtype=np.float32)
    info: dict = {"nuclei_threshold": None, "nucleus_diameter": None, "removed_small": 0,
                  "removed_large": 0, "removed_border": 0}
    empty = np.zeros(plane.shape, np.int32)

    smoothed = smooth(plane, smoothing_sigma)
    guard_scale = _GUARD_SCALE if auto else max(_GUARD_SCALE, 3.0 * float(diameter))
    threshold = None
    if min_snr <= 0 or has_contrast(plane, smoothed, sigma=smoothing_sigma, min_snr=min_snr,
                                    method=threshold_method, background_scale=guard_scale):
        threshold = auto_threshold(
            smoothed, method=threshold_method, correction=threshold_correction,
            min_threshold=min_threshold, max_threshold=max_threshold, min_snr=0.0,
        )
    if threshold is None:
        logger.info("No nuclei: the DNA image looks blank (no contrast above background noise)")
        return empty, info, empty.copy()
    info["nuclei_threshold"] = float(threshold)

    foreground = smoothed > threshold
    d = estimate_diameter(fill_all_holes(foreground)) if auto else float(diameter)
    if d is None:
        return empty, info, empty.copy()
    if foreground.mean() > CONFLUENT:
        # A confluent field (of cell bodies, or a DNA stain seen through cytoplasm) thresholds
        # as one giant "nucleus": then no nucleus is taken to be wider than a sixth of the field.
        d = min(d, min(plane.shape) / MAX_FIELD_FRACTION)
    rules = {"threshold_method": threshold_method, "threshold_correction": threshold_correction,
             "min_threshold": min_threshold, "max_threshold": max_threshold,
             "diameter_min": diameter_min, "diameter_max": diameter_max, "declump": declump,
             "declump_min_distance": declump_min_distance,
             "subtract_background": subtract_background, "fill_holes": fill_holes,
             "exclude_border": exclude_border}
    labels, found, discarded = _objects_at(plane, smoothed, threshold, d, **rules)
    if auto and labels.max(initial=0) >= MIN_OBJECTS_RESCALE:
        # Second pass: the foreground's inscribed disks misjudge the scale of dense fields
        # (clumps) and of tiny nuclei (smoothing); the objects found at d measure it better.
        areas = np.bincount(labels.ravel())[1:]
        d2 = float(2.0 * np.sqrt(np.median(areas[areas > 0]) / np.pi))
        if abs(np.log(d2 / d)) > np.log(RESCALE_TOLERANCE):
            d = d2
            labels, found, discarded = _objects_at(plane, smoothed, threshold, d, **rules)
    info.update(found)
    info["nucleus_diameter"] = d
    return labels, info, discarded


def _objects_at(plane, smoothed, threshold, d, *, threshold_method, threshold_correction,
                min_threshold, max_threshold, diameter_min, diameter_max, declump,
                declump_min_distance, subtract_background, fill_holes, exclude_border):
    """Nuclei at typical diameter ``d``: background removal and second threshold, local
    threshold, holes, specks, declumping, size and border rules (see :func:`find_nuclei`)."""
    info = {"removed_small": 0, "removed_large": 0, "removed_border": 0}
    flat = smoothed
    foreground = smoothed > threshold
    if subtract_background:
        # Uneven background and dim nuclei beside bright ones: threshold again once the
        # background at three nucleus diameters is removed (the guard above judged content).
        flat = smoothed - background(smoothed, BACKGROUND_SCALE * d)
        second = auto_threshold(
            flat, method=threshold_method, correction=threshold_correction,
            min_threshold=min_threshold, max_threshold=max_threshold, min_snr=0.0,
        )
        if second is not None:
            threshold, foreground = second, flat > second
    info["nuclei_threshold"] = float(threshold)
    # Adaptive component: dim nuclei that the global threshold misses, but that stand out from
    # their own neighbourhood (above the mid-range of a window of LOCAL_WINDOW x d).
    foreground |= flat > np.maximum(local_midrange(flat, LOCAL_WINDOW * d),
                                    max(LOCAL_FLOOR * threshold, min_threshold))
    dmin, dmax, min_distance = size_rules(d, diameter_min, diameter_max, declump_min_distance)
    min_area = np.pi / 4 * dmin**2
    max_area = np.pi / 4 * dmax**2

    if fill_holes:
        # Small holes (dark nucleoli, below the smallest nucleus area) are filled before
        # declumping so they do not create extra distance-transform peaks; larger background
        # pockets may be gaps enclosed by several nuclei and are left to the per-object fill.
        foreground = fill_small_holes(foreground, min_area)
    components, _ = ndi.label(foreground)
    specks = filter_by_area(components, min_area, np.inf)
    info["removed_small"] += _n_labels(components) - _n_labels(specks)
    foreground = specks > 0

    if declump == "none":
        labels, _ = ndi.label(foreground)
    else:
        score = declump_score(plane, foreground, declump, d, dmin)
        markers = find_markers(score, foreground, min_distance)
        labels = segmentation.watershed(-score, markers, mask=foreground)
    labels = trim_to_own_peak(labels, flat, OWN_PEAK_FRACTION)
    if fill_holes:
        labels = fill_holes_per_object(labels)
    candidates = labels
    areas = np.bincount(labels.ravel())
    areas[0] = 0
    present = areas > 0
    small = present & (areas < min_area)
    large = present & (areas > max_area)
    info["removed_small"] += int(small.sum())
    info["removed_large"] += int(large.sum())
    labels = filter_by_area(labels, min_area, max_area)
    if exclude_border:
        before = _n_labels(labels)
        labels = segmentation.clear_border(labels)
        info["removed_border"] = before - _n_labels(labels)
    labels = relabel(labels)
    n_kept = int(labels.max(initial=0))
    dropped = (candidates > 0) & (labels == 0)
    discarded = np.zeros(labels.shape, np.int32)
    if dropped.any():
        discarded = relabel(np.where(dropped, candidates, 0), offset=n_kept + 1)
    return labels, info, discarded


def trim_to_own_peak(labels: np.ndarray, flat: np.ndarray, fraction: float) -> np.ndarray:
    """Each object keeps only its pixels above ``fraction`` x its own peak (of the
    background-subtracted, smoothed image), and of those only its largest connected piece.

    One global threshold cuts bright nuclei wide (their blurred halo is above it) and lets a
    bright nucleus swallow a dim neighbour; cutting each object at a fraction of its own
    brightness (a per-object "half-maximum" contour) fixes both. A dim nucleus merged into a
    bright one is lost rather than split off (measured: splitting such remainders off as new
    objects made more fragments than nuclei).
    """
    n = int(labels.max(initial=0))
    if n == 0 or fraction <= 0:
        return labels
    peak = np.asarray(ndi.maximum(flat, labels, np.arange(n + 1)), np.float32)
    peak[0] = np.inf
    kept = np.where(flat >= fraction * peak[labels], labels, 0)
    pieces, n_pieces = ndi.label(kept > 0)
    if n_pieces > np.count_nonzero(np.bincount(kept.ravel())[1:]):
        # a label cut in several pieces: keep its largest
        on = pieces > 0
        size = np.bincount(pieces.ravel(), minlength=n_pieces + 1)
        owner = np.zeros(n_pieces + 1, np.int64)
        owner[pieces[on]] = kept[on]
        ids = np.arange(1, n_pieces + 1)
        order = ids[np.lexsort((size[1:], owner[1:]))]  # by owner, then size
        last = np.append(owner[order][1:] != owner[order][:-1], True)
        best = np.zeros(n + 1, np.int64)
        best[owner[order][last]] = order[last]
        kept = np.where(on & (best[kept] == pieces), kept, 0)
    return kept.astype(np.int32, copy=False)


def local_midrange(image: np.ndarray, size: float) -> np.ndarray:
    """Bernsen's local threshold: the mean of the minimum and the maximum in a ``size``-px
    square window (at least 3 px, odd)."""
    k = max(3, round(size) | 1)
    return 0.5 * (ndi.maximum_filter(image, k) + ndi.minimum_filter(image, k))


def declump_score(plane: np.ndarray, foreground: np.ndarray, declump: str, diameter: float,
                  diameter_min: float) -> np.ndarray:
    """The surface whose peaks are nucleus centres (markers) and whose valleys are the borders
    between touching nuclei.

    * ``shape``: the distance transform of the foreground (Gaussian sigma 1 px);
    * ``intensity``: the DNA image smoothed with sigma = min diameter / 3.5 (CellProfiler);
    * ``blob``: a blob detector at the nucleus scale plus the shape term: the negated
      Laplacian of Gaussian (sigma = :data:`BLOB_SIGMA` x diameter, scale-normalised) and the
      distance transform, each divided by its 99th percentile in the foreground and added.
      The LoG peaks at the centre of each nucleus-sized bright blob, also where two nuclei
      touch along a wide front with no neck (where the distance transform has one peak); the
      shape term keeps dim, flat nuclei split along their necks.
    """
    if declump == "intensity":
        return smooth(plane, diameter_min / 3.5)
    edt = smooth(ndi.distance_transform_edt(foreground).astype(np.float32), 1.0)
    if declump == "shape":
        return edt
    sigma = BLOB_SIGMA * diameter
    # LoG as the discrete Laplacian of the Gaussian-smoothed image (2 filter passes, not 4).
    blurred = ndi.gaussian_filter(np.asarray(plane, np.float32), sigma, mode="nearest")
    blob = -ndi.laplace(blurred, mode="nearest") * np.float32(sigma**2)
    inside = foreground & (blob > 0)
    scale_blob = float(np.percentile(blob[inside], 99)) if inside.any() else 1.0
    scale_edt = float(np.percentile(edt[foreground], 99)) if foreground.any() else 1.0
    return (blob / max(scale_blob, 1e-12) + edt / max(scale_edt, 1e-12)).astype(np.float32)


def background(smoothed: np.ndarray, size: float) -> np.ndarray:
    """Background under objects narrower than ``size`` px: a grey opening by a ``size``-px
    square (minimum then maximum filter) smoothed by a Gaussian of ``size / 4`` px, computed on
    a grid subsampled ``size / 8`` times (it varies slowly) and upsampled (nearest)."""
    f = max(1, int(size // 8))
    small = smoothed[::f, ::f] if f > 1 else smoothed
    k = max(3, round(size / f) | 1)
    bg = ndi.gaussian_filter(ndi.maximum_filter(ndi.minimum_filter(small, k), k), k / 4)
    return upsample(bg, f, smoothed.shape) if f > 1 else bg


def _n_labels(labels: np.ndarray) -> int:
    return int(np.count_nonzero(np.bincount(labels.ravel())[1:]))
