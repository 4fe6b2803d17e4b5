"""Segment one site into nuclei, cells and cytoplasm label images.

The public entry point is :func:`segment_site`. It dispatches on ``params["method"]``; only the
``"classical"`` method (thresholding plus watershed, after CellProfiler's IdentifyPrimaryObjects /
IdentifySecondaryObjects / IdentifyTertiaryObjects) lives here. Other methods (e.g. Cellpose) plug
in behind the same function by adding an entry to ``_METHODS`` and must return a
:class:`Segmentation` with the same guarantees:

* ``nuclei``, ``cells``, ``cytoplasm`` are int32 ``(Y, X)`` label images, 0 = background;
* nuclei are labelled 1..N consecutively;
* cell ``i`` contains nucleus ``i`` (same label number), and there is no cell without a nucleus;
* ``cytoplasm`` is ``cells`` with the nucleus pixels set to 0 (same label numbers; a cell whose
  nucleus fills it has no cytoplasm pixels).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, segmentation

logger = logging.getLogger(__name__)

#: Defaults for :func:`segment_site`. The YAML config schema fills the same keys.
DEFAULT_PARAMS: dict[str, Any] = {
    # Which algorithm to use; see ``ALLOWED_METHODS``.
    "method": "classical",
    # Ask the scheduler for a GPU per segmentation job (used by the workflow's resources).
    "gpu": False,
    # Weights of a model-based method (staged by the workflow's stage_model rule).
    "model": {"name": None, "source": None, "sha256": None},
    # Channel (by name) holding the nuclear stain (Hoechst/DAPI).
    "nuclei_channel": "DNA",
    # Channel used to find cell bodies; None -> cells are nuclei grown by cell_expansion_px.
    "cells_channel": None,
    "classical": {
        # Gaussian sigma (px) applied before thresholding (CellProfiler's default threshold
        # smoothing scale 1.3488 corresponds to sigma = 1.0).
        "smoothing_sigma": 1.0,
        # Automatic threshold: "otsu" or "li" (minimum cross-entropy, CellProfiler's default).
        "threshold_method": "otsu",
        # Multiply the automatic nucleus threshold by this (>1 stricter, <1 more permissive).
        "threshold_correction": 1.0,
        # Absolute lower bound on the nucleus threshold, in image units (0..1).
        "min_threshold": 0.0,
        # Blank-image guard: the automatic threshold must lie at least this many noise SDs
        # (robust: 1.4826 * MAD of the below-threshold pixels) above the background median,
        # otherwise the image is considered to hold no objects.
        "min_snr": 4.0,
        # Expected nucleus diameter range (px). Objects with an area outside
        # [pi/4 * min^2, pi/4 * max^2] are discarded (CellProfiler's "typical diameter").
        "nucleus_diameter_min": 8,
        "nucleus_diameter_max": 80,
        # How touching nuclei are split: "shape" (distance-transform peaks), "intensity"
        # (peaks of the smoothed DNA image) or "none".
        "declump": "shape",
        # Minimum distance (px) between two nucleus centres; None -> nucleus_diameter_min / 1.5
        # (CellProfiler's automatic value).
        "declump_min_distance": None,
        # Fill holes in nuclei (small holes before declumping, then any hole enclosed by a
        # single object) and in cells.
        "fill_holes": True,
        # Discard nuclei (and their cells) touching the image border.
        "exclude_border": False,
        # Cells channel: automatic threshold method ("otsu" or "li") and correction factor.
        # Li suits cell-body stains (skewed, dim cytoplasm) better than Otsu, which tends to
        # keep only the brightest cells.
        "cells_threshold_method": "li",
        "cells_threshold_correction": 1.0,
        # Cells without a cells channel: grow each nucleus by this many pixels (no overlaps).
        "cell_expansion_px": 10,
    },
}

ALLOWED_METHODS = ("classical",)
_THRESHOLD_METHODS = ("otsu", "li")
_DECLUMP_METHODS = ("shape", "intensity", "none")


@dataclass(frozen=True)
class Segmentation:
    """Label images of one site.

    Attributes
    ----------
    nuclei, cells, cytoplasm : (Y, X) int32 ndarray
        Label images, 0 = background; the same number is the same cell in all three.
    method : str
        Segmentation method that produced them (``"classical"``, ...).
    model : str or None
        Model name for learned methods; None for the classical method.
    weights_sha256 : str or None
        SHA-256 of the model weights file for learned methods; None for the classical method.
    info : dict
        Method-specific details worth recording for QC (thresholds used, ...).
    """

    nuclei: np.ndarray
    cells: np.ndarray
    cytoplasm: np.ndarray
    method: str
    model: str | None = None
    weights_sha256: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_objects(self) -> int:
        """Number of nuclei (= number of cells)."""
        return int(self.nuclei.max(initial=0))


def segment_site(image: np.ndarray, channels: list[str], *, params: dict) -> Segmentation:
    """Segment nuclei, cells and cytoplasm in one site.

    Parameters
    ----------
    image : (C, Y, X) float ndarray
        Preprocessed (illumination-corrected) image, intensities in [0, 1].
    channels : list of str
        Channel names, one per plane of ``image``.
    params : dict
        Keys as in :data:`DEFAULT_PARAMS` (``method``, ``nuclei_channel``, ``cells_channel`` and
        a sub-dict named after the method).

    Returns
    -------
    Segmentation
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(
            f"segment_site expects one site as a (channels, Y, X) array; got shape {image.shape}"
        )
    if image.shape[0] != len(channels):
        raise ValueError(
            f"The image has {image.shape[0]} channels but {len(channels)} channel names were "
            f"given ({list(channels)})"
        )
    method = params["method"]
    if method not in _METHODS:
        raise ValueError(
            f"Unknown segmentation method {method!r}; allowed methods: {', '.join(ALLOWED_METHODS)}"
        )
    return _METHODS[method](image, list(channels), params)


# --------------------------------------------------------------------------------------------
# classical method
# --------------------------------------------------------------------------------------------


def _segment_classical(image: np.ndarray, channels: list[str], params: dict) -> Segmentation:
    p = params["classical"]
    nuclei_plane = image[_channel_index(channels, params["nuclei_channel"], "nuclei_channel")]
    nuclei, info, discarded = _segment_nuclei(
        nuclei_plane,
        smoothing_sigma=p["smoothing_sigma"],
        threshold_method=p["threshold_method"],
        threshold_correction=p["threshold_correction"],
        min_threshold=p["min_threshold"],
        min_snr=p["min_snr"],
        diameter_range=(p["nucleus_diameter_min"], p["nucleus_diameter_max"]),
        declump=p["declump"],
        declump_min_distance=p["declump_min_distance"],
        fill_holes=p["fill_holes"],
        exclude_border=p["exclude_border"],
    )
    # As CellProfiler does, nuclei discarded for size or border still claim their own cell
    # territory while cells are grown (then that territory is dropped), so that their
    # neighbours do not swallow it.
    cells_channel = params["cells_channel"]
    if cells_channel is None:
        cells = expand_cells(nuclei, distance=p["cell_expansion_px"], competitors=discarded)
        info["cells_threshold"] = None
    else:
        plane = image[_channel_index(channels, cells_channel, "cells_channel")]
        cells, info["cells_threshold"] = grow_cells(
            plane,
            nuclei,
            competitors=discarded,
            smoothing_sigma=p["smoothing_sigma"],
            threshold_method=p["cells_threshold_method"],
            threshold_correction=p["cells_threshold_correction"],
            fill_holes=p["fill_holes"],
        )
    cells = cells.astype(np.int32, copy=False)
    logger.debug("classical segmentation: %d nuclei, thresholds %s", nuclei.max(initial=0), info)
    return Segmentation(
        nuclei=nuclei,
        cells=cells,
        cytoplasm=cytoplasm_from(cells, nuclei),
        method="classical",
        model=None,
        weights_sha256=None,
        info=info,
    )


_METHODS: dict[str, Callable[[np.ndarray, list[str], dict], Segmentation]] = {
    "classical": _segment_classical,
}


def segment_nuclei(plane: np.ndarray, **options: Any) -> tuple[np.ndarray, dict]:
    """Find nuclei in a DNA image (CellProfiler IdentifyPrimaryObjects, global threshold).

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
        See :data:`DEFAULT_PARAMS` and :func:`auto_threshold`.
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
        Nuclei labelled 1..N.
    info : dict
        ``{"nuclei_threshold": float or None}`` (None: image judged blank).
    """
    labels, info, _ = _segment_nuclei(plane, **options)
    return labels, info


def _segment_nuclei(
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
    """:func:`segment_nuclei`, also returning the discarded objects.

    Returns
    -------
    labels : (Y, X) int32 ndarray
        Kept nuclei, 1..N.
    info : dict
    discarded : (Y, X) int32 ndarray
        Objects dropped by the size / border filters, labelled N+1.. (0 elsewhere).
    """
    if declump not in _DECLUMP_METHODS:
        raise ValueError(
            f"Unknown declump method {declump!r}; allowed: {', '.join(_DECLUMP_METHODS)}"
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

    smoothed = _smooth(plane, smoothing_sigma)
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
        foreground = _fill_small_holes(foreground, min_area)
    components, _ = ndi.label(foreground)
    foreground = _filter_by_area(components, min_area, np.inf) > 0

    if declump == "none":
        labels, _ = ndi.label(foreground)
    else:
        if declump == "shape":
            score = ndi.distance_transform_edt(foreground).astype(np.float32)
            score = _smooth(score, 1.0)
        else:
            score = _smooth(plane, dmin / 3.5)
        markers = _find_markers(score, foreground, min_distance)
        labels = segmentation.watershed(-score, markers, mask=foreground)
    if fill_holes:
        labels = fill_holes_per_object(labels)
    candidates = labels
    labels = _filter_by_area(labels, min_area, max_area)
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


def grow_cells(
    plane: np.ndarray,
    nuclei: np.ndarray,
    *,
    competitors: np.ndarray | None = None,
    smoothing_sigma: float = 1.0,
    threshold_method: str = "otsu",
    threshold_correction: float = 1.0,
    fill_holes: bool = True,
) -> tuple[np.ndarray, float | None]:
    """Grow cells from nuclei in a cell-body image (seeded watershed, cf. CellProfiler's
    IdentifySecondaryObjects "Propagation").

    The cell-body image is smoothed and thresholded; each nucleus floods the foreground
    (foreground OR nuclei) over the inverted smoothed intensity, so borders between touching
    cells follow the dim valleys between them. Foreground not reachable from any nucleus stays
    background, so every cell has exactly one nucleus with the same label.

    Parameters
    ----------
    plane : (Y, X) float ndarray
        Cell-body stain, intensities in [0, 1].
    nuclei : (Y, X) int ndarray
        Nuclei label image (the seeds).
    competitors : (Y, X) int ndarray, optional
        Extra seeds (e.g. nuclei discarded for size or border) with labels not used in
        ``nuclei``: they compete for territory, then their regions are set to background.

    Returns
    -------
    cells : (Y, X) int32 ndarray
        Same label numbers as ``nuclei``; each cell contains its nucleus.
    threshold : float or None
        Threshold used on the smoothed cell image (None: no cell-body signal, cells = nuclei).
    """
    nuclei = np.asarray(nuclei)
    if nuclei.max(initial=0) == 0:
        return np.zeros(nuclei.shape, np.int32), None
    seeds = _with_competitors(nuclei, competitors)
    smoothed = _smooth(np.asarray(plane, dtype=np.float32), smoothing_sigma)
    # No SNR guard here: with nuclei present, "blank" cell-body images just give cells = nuclei.
    threshold = auto_threshold(
        smoothed, method=threshold_method, correction=threshold_correction, min_snr=0.0
    )
    mask = seeds > 0
    if threshold is not None:
        mask |= smoothed > threshold
    cells = segmentation.watershed(-smoothed, markers=seeds, mask=mask)
    if fill_holes:
        cells = fill_holes_per_object(cells)
    cells[cells > nuclei.max()] = 0  # competitors' territory
    # Watershed keeps marker pixels, but be explicit: a nucleus always belongs to its own cell.
    cells[nuclei > 0] = nuclei[nuclei > 0]
    return cells.astype(np.int32, copy=False), None if threshold is None else float(threshold)


def expand_cells(
    nuclei: np.ndarray, *, distance: float, competitors: np.ndarray | None = None
) -> np.ndarray:
    """Cells as nuclei grown by ``distance`` pixels without overlap (CellProfiler's Distance-N).

    Parameters
    ----------
    nuclei : (Y, X) int ndarray
    distance : float
        Growth in pixels (Euclidean); 0 gives cells = nuclei.
    competitors : (Y, X) int ndarray, optional
        Extra objects that also grow and block their neighbours, then are removed
        (see :func:`grow_cells`).

    Returns
    -------
    (Y, X) int32 ndarray
    """
    nuclei = np.asarray(nuclei)
    if distance < 0:
        raise ValueError(f"cell_expansion_px must be >= 0; got {distance}")
    if nuclei.max(initial=0) == 0:
        return np.zeros(nuclei.shape, np.int32)
    cells = segmentation.expand_labels(_with_competitors(nuclei, competitors), distance=distance)
    cells[cells > nuclei.max()] = 0
    return cells.astype(np.int32, copy=False)


def _with_competitors(nuclei: np.ndarray, competitors: np.ndarray | None) -> np.ndarray:
    seeds = np.asarray(nuclei).astype(np.int32, copy=True)
    if competitors is not None:
        competitors = np.asarray(competitors)
        extra = (competitors > 0) & (seeds == 0)
        if extra.any() and competitors[extra].min() <= nuclei.max():
            raise ValueError("competitor labels must be larger than all nucleus labels")
        seeds[extra] = competitors[extra]
    return seeds


def cytoplasm_from(cells: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """Cytoplasm = cells minus nuclei, keeping the cell label numbers.

    Parameters
    ----------
    cells, nuclei : (Y, X) int ndarray

    Returns
    -------
    (Y, X) int32 ndarray
    """
    cytoplasm = np.array(cells, dtype=np.int32, copy=True)
    cytoplasm[np.asarray(nuclei) > 0] = 0
    return cytoplasm


def smoothed_pixel_noise(plane: np.ndarray, sigma: float) -> float:
    """Noise SD left after Gaussian smoothing, from neighbouring-pixel differences.

    ``1.4826 * MAD(horizontal differences) / sqrt(2)`` measures the per-pixel (camera/shot)
    noise almost independently of cells and illumination; smoothing white noise with a
    Gaussian of ``sigma`` px divides its SD by ``2 * sqrt(pi) * sigma`` (sigma >= ~0.7).

    Parameters
    ----------
    plane : (Y, X) ndarray
        The unsmoothed image.
    sigma : float
        The Gaussian sigma that was applied.
    """
    diffs = np.diff(np.asarray(plane, dtype=np.float32), axis=1).ravel()
    pixel = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / np.sqrt(2.0)
    if sigma <= 0:
        return pixel
    return pixel / max(1.0, 2.0 * np.sqrt(np.pi) * float(sigma))


def has_contrast(
    plane: np.ndarray,
    smoothed: np.ndarray,
    *,
    sigma: float,
    min_snr: float,
    method: str = "otsu",
    background_scale: float = 80.0,
) -> bool:
    """Blank-field guard: does the image hold objects above the noise?

    The large-scale background (Gaussian of ``background_scale`` px: vignetting, gradients) is
    removed first, then the automatic threshold must sit ``min_snr`` noise SDs above the median
    of the pixels below it. The noise SD is the smaller of the below-threshold pixels' robust
    spread and the per-pixel noise from neighbouring differences (:func:`smoothed_pixel_noise`):
    confluent fields have no true background, and the spread of their textured cell bodies
    alone would make them look like noise (real Transfluor fields score 1.0-1.3 that way).

    Parameters
    ----------
    plane : (Y, X) ndarray
        The unsmoothed image.
    smoothed : (Y, X) ndarray
        ``plane`` after the segmentation's Gaussian smoothing of ``sigma`` px.
    """
    flat = np.asarray(smoothed, np.float32)
    flat = flat - ndi.gaussian_filter(flat, float(background_scale), mode="reflect")
    threshold = auto_threshold(flat, method=method, min_snr=min_snr,
                               pixel_noise=smoothed_pixel_noise(plane, sigma))
    return threshold is not None


def auto_threshold(
    smoothed: np.ndarray,
    *,
    method: str = "otsu",
    correction: float = 1.0,
    min_threshold: float = 0.0,
    min_snr: float = 4.0,
    pixel_noise: float | None = None,
) -> float | None:
    """Automatic global threshold with CellProfiler-style correction and a blank-image guard.

    Parameters
    ----------
    smoothed : (Y, X) float ndarray
        Smoothed image.
    method : {"otsu", "li"}
        Otsu's method, or Li's minimum cross-entropy (CellProfiler's default).
    correction : float
        Factor applied to the automatic threshold.
    min_threshold : float
        Lower bound on the final threshold.
    min_snr : float
        The automatic (uncorrected) threshold must exceed the median of the below-threshold ("background")
        pixels by ``min_snr`` robust noise SDs (1.4826 * their MAD). On a blank, noise-only
        image any automatic threshold splits the noise and sits only ~1.1-1.4 SD above the
        median (Gaussian, Poisson, uniform noise, with or without a gradient); on real nuclei
        images it sits 8-100 SDs above (measured on the project's real data). Very defocused
        images (BBBC006 z00, 32 um out of focus) score 1.3-2.6 and count as blank.
        0 disables the guard.
    pixel_noise : float, optional
        Noise SD of ``smoothed`` measured from neighbouring-pixel differences of the unsmoothed
        image (see :func:`smoothed_pixel_noise`). Confluent fields have no true background: the
        below-threshold pixels are textured cell bodies and their MAD overstates the noise
        (real Transfluor fields then score 1.0-1.3, like pure noise). When given, the smaller
        of the two noise estimates is used, so such fields are not called blank. Blank fields
        should be stopped by the QC gate before segmentation in any case.

    Returns
    -------
    float or None
        The threshold (foreground is ``smoothed > threshold``), or None when the image has no
        usable contrast (constant image, or the guard failed).
    """
    if method not in _THRESHOLD_METHODS:
        raise ValueError(
            f"Unknown threshold method {method!r}; allowed: {', '.join(_THRESHOLD_METHODS)}"
        )
    values = np.asarray(smoothed, dtype=np.float32).ravel()
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.min() == finite.max():
        return None
    if method == "otsu":
        # 1024 bins instead of skimage's 256: 16-bit data scaled to [0, 1] is often dim, and
        # one bright speck would otherwise squeeze the whole signal into a few bins.
        raw = float(filters.threshold_otsu(finite, nbins=1024))
    else:
        raw = float(filters.threshold_li(finite))
    if min_snr > 0:
        # Judge the image content with the automatic threshold itself (not the corrected one),
        # so a permissive correction factor never makes a real image "blank".
        background = finite[finite <= raw]
        level = float(np.median(background))
        noise = 1.4826 * float(np.median(np.abs(background - level)))
        if pixel_noise is not None:
            # A noise-free (or sub-quantum) image: any structure in it is real.
            noise = min(noise, float(pixel_noise))
        if noise > 0 and (raw - level) / noise < min_snr:
            logger.debug(
                "threshold %.4g is only %.2f noise SDs above background %.4g: treated as blank",
                raw,
                (raw - level) / noise,
                level,
            )
            return None
    threshold = max(raw * float(correction), float(min_threshold))
    if threshold >= finite.max():
        return None
    return threshold


def fill_holes_per_object(labels: np.ndarray) -> np.ndarray:
    """Fill background holes that are enclosed by a single object (vectorised).

    A hole bordered by two or more objects (e.g. a gap enclosed by a ring of touching nuclei)
    is left as background, as in CellProfiler's per-object hole filling.

    Parameters
    ----------
    labels : (Y, X) int ndarray

    Returns
    -------
    (Y, X) ndarray, same dtype, holes filled.
    """
    holes = ndi.binary_fill_holes(labels > 0) & (labels == 0)
    if not holes.any():
        return labels
    hole_labels, n_holes = ndi.label(holes)
    # Pixels 4-adjacent to a hole (binary_fill_holes uses 4-connected background) are objects.
    ring = ndi.binary_dilation(holes) & ~holes
    ring_hole = ndi.grey_dilation(hole_labels, footprint=ndi.generate_binary_structure(2, 1))
    ring_hole = ring_hole[ring]
    ring_obj = labels[ring]
    index = np.arange(1, n_holes + 1)
    lo = ndi.minimum(ring_obj, ring_hole, index)
    hi = ndi.maximum(ring_obj, ring_hole, index)
    fill_value = np.where((lo == hi) & (lo > 0), hi, 0).astype(labels.dtype)
    lut = np.concatenate([[0], fill_value])
    out = labels.copy()
    out[holes] = lut[hole_labels[holes]]
    return out


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _channel_index(channels: list[str], name: str, key: str) -> int:
    if name not in channels:
        raise ValueError(
            f"segmentation.{key} is {name!r}, but this image only has channels {channels}"
        )
    return channels.index(name)


def _smooth(plane: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return np.asarray(plane, dtype=np.float32)
    return ndi.gaussian_filter(np.asarray(plane, dtype=np.float32), sigma, mode="nearest")


def _filter_by_area(labels: np.ndarray, min_area: float, max_area: float) -> np.ndarray:
    """Set objects whose pixel count is outside [min_area, max_area] to 0."""
    areas = np.bincount(labels.ravel())
    drop = (areas < min_area) | (areas > max_area)
    drop[0] = False
    if not drop.any():
        return labels
    out = labels.copy()
    out[drop[labels]] = 0
    return out


def _fill_small_holes(mask: np.ndarray, max_hole_area: float) -> np.ndarray:
    """Fill background holes of ``mask`` with fewer than ``max_hole_area`` pixels."""
    holes = ndi.binary_fill_holes(mask) & ~mask
    if not holes.any():
        return mask
    hole_labels, _ = ndi.label(holes)
    small = np.bincount(hole_labels.ravel()) < max_hole_area
    small[0] = False
    return mask | small[hole_labels]


def _find_markers(score: np.ndarray, foreground: np.ndarray, min_distance: float) -> np.ndarray:
    """One watershed marker per local maximum of ``score`` inside ``foreground``.

    Local maxima are pixels equal to the maximum in a (2r+1)^2 window, r = round(min_distance);
    maxima closer than ``min_distance`` to each other (plateaus, twin peaks) are merged into one
    marker. Foreground components that received no marker get one covering the whole component.
    """
    radius = max(1, round(min_distance))
    masked = np.where(foreground, score, -np.inf).astype(np.float32)
    peaks = (masked == ndi.maximum_filter(masked, size=2 * radius + 1)) & foreground
    # Merge peaks within min_distance of each other: group by a dilation of half that size.
    half = max(1, round(min_distance / 2))
    disk = _disk(half)
    groups, _ = ndi.label(ndi.binary_dilation(peaks, structure=disk) & foreground)
    markers = np.where(peaks, groups, 0)
    components, n_components = ndi.label(foreground)
    if n_components:
        has_marker = ndi.maximum(markers, components, np.arange(1, n_components + 1)) > 0
        orphan = ~np.concatenate([[True], has_marker])
        if orphan.any():
            # Each marker-less component becomes its own marker (fresh, unused numbers).
            offset = markers.max(initial=0)
            orphan_pixels = orphan[components]
            markers[orphan_pixels] = components[orphan_pixels] + offset
    return markers


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (yy**2 + xx**2) <= radius**2


def default_params() -> dict:
    """A deep copy of :data:`DEFAULT_PARAMS`, safe to modify."""
    return copy.deepcopy(DEFAULT_PARAMS)
