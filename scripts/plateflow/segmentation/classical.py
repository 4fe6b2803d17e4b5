"""The classical method: robust global threshold, automatic scale and watershed declumping for
nuclei, Propagation for cells, after CellProfiler's IdentifyPrimaryObjects /
IdentifySecondaryObjects / IdentifyTertiaryObjects."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from plateflow.segmentation.base import (
    Segmentation,
    SegmentationMethod,
    SiteImage,
    cytoplasm_from,
    register,
)
from plateflow.segmentation.cells import expand_cells, grow_cells
from plateflow.segmentation.confidence import local_contrast
from plateflow.segmentation.nuclei import DECLUMP_METHODS, find_nuclei
from plateflow.segmentation.propagation import propagation_factor
from plateflow.segmentation.thresholds import THRESHOLD_METHODS

logger = logging.getLogger(__name__)

__all__ = ["Classical"]


@register("classical")
class Classical(SegmentationMethod):
    """Nuclei by a global threshold and a marker-controlled watershed at the site's own scale
    (:func:`~plateflow.segmentation.nuclei.find_nuclei`), cells grown from them by
    CellProfiler's Propagation in the cell-body channel
    (:func:`~plateflow.segmentation.cells.grow_cells`) or, without one, by a fixed distance
    (:func:`~plateflow.segmentation.cells.expand_cells`), cytoplasm = cell - shrunk nucleus
    (:func:`~plateflow.segmentation.base.cytoplasm_from`). Loads nothing."""

    #: The ``segmentation.classical`` section.
    defaults: ClassVar[dict[str, Any]] = {
        # Gaussian sigma (px) applied before thresholding (CellProfiler's default threshold
        # smoothing scale 1.3488 corresponds to sigma = 1.0).
        "smoothing_sigma": 1.0,
        # Automatic threshold: "otsu", "li" (minimum cross-entropy, CellProfiler's default) or
        # "triangle"; the top 0.5 % of pixels are clipped first (robust to bright specks).
        "threshold_method": "li",
        # Multiply the automatic nucleus threshold by this (>1 stricter, <1 more permissive).
        "threshold_correction": 1.0,
        # Bounds on the nucleus threshold, in image units (0..1).
        "min_threshold": 0.0,
        "max_threshold": 1.0,
        # Blank-image guard: the automatic threshold must lie at least this many noise SDs
        # (robust: MAD_SCALE * MAD of the below-threshold pixels) above the background median,
        # otherwise the image is considered to hold no objects.
        "min_snr": 4.0,
        # Typical nucleus diameter (px), or "auto": estimated per site from the thresholded
        # foreground (recorded as info["nucleus_diameter"]).
        "nucleus_diameter": "auto",
        # Nuclei with a diameter outside [min, max] px are discarded (areas outside
        # [pi/4 * min^2, pi/4 * max^2]); None: 0.4x and 3x the typical diameter.
        "nucleus_diameter_min": None,
        "nucleus_diameter_max": None,
        # How touching nuclei are split: "blob" (Laplacian of Gaussian at the nucleus scale
        # plus distance transform), "shape" (distance-transform peaks), "intensity" (peaks of
        # the smoothed DNA image, CellProfiler) or "none".
        "declump": "blob",
        # Minimum distance (px) between two nucleus centres; None: 0.2x the typical diameter.
        "declump_min_distance": None,
        # Threshold the DNA image again after removing the background under objects narrower
        # than 3 typical diameters (uneven background, dim nuclei beside bright ones).
        "subtract_background": True,
        # Fill holes in nuclei (small holes before declumping, then any hole enclosed by a
        # single object) and in cells.
        "fill_holes": True,
        # Discard nuclei (and their cells) touching the image border.
        "exclude_border": False,
        # Cells channel: automatic threshold method, correction factor and smoothing (px).
        # Li suits cell-body stains (skewed, dim cytoplasm) better than Otsu, which tends to
        # keep only the brightest cells.
        "cells_threshold_method": "li",
        "cells_threshold_correction": 1.0,
        "cells_smoothing_sigma": 1.0,
        # CellProfiler's Propagation regularization factor lambda (image units per px step):
        # small follows the cell-body image, large tends to a Voronoi tessellation.
        "propagation_lambda": 0.05,
        # Cytoplasm = cell - nucleus shrunk by this many px first (CellProfiler: 1).
        "cytoplasm_shrink_px": 1,
        # Cells without a cells channel: grow each nucleus by this many pixels (no overlaps).
        "cell_expansion_px": 10,
    }

    def __init__(self, config=None, **common):
        super().__init__(config, **common)
        p = self.config
        for key in ("threshold_method", "cells_threshold_method"):
            if p[key] not in THRESHOLD_METHODS:
                raise ValueError(f"segmentation.classical.{key} is {p[key]!r}; allowed: "
                                 f"{', '.join(THRESHOLD_METHODS)}")
        if p["declump"] not in DECLUMP_METHODS:
            raise ValueError(f"Unknown declump method {p['declump']!r} "
                             f"(segmentation.classical.declump); allowed: "
                             f"{', '.join(DECLUMP_METHODS)}")
        d = p["nucleus_diameter"]
        if isinstance(d, str) and d != "auto" or not isinstance(d, str) and not d > 0:
            raise ValueError("segmentation.classical.nucleus_diameter must be 'auto' or a "
                             f"number of px > 0; got {d!r}")
        dmin, dmax = p["nucleus_diameter_min"], p["nucleus_diameter_max"]
        if (dmin is not None and not dmin > 0) or (
                dmin is not None and dmax is not None and dmin > dmax):
            raise ValueError("segmentation.classical: the nucleus diameter range must satisfy "
                             f"0 < nucleus_diameter_min <= nucleus_diameter_max; got "
                             f"({dmin}, {dmax})")
        if p["min_threshold"] > p["max_threshold"]:
            raise ValueError("segmentation.classical: min_threshold must not exceed "
                             f"max_threshold; got ({p['min_threshold']}, {p['max_threshold']})")
        for key in ("cell_expansion_px", "cytoplasm_shrink_px", "propagation_lambda"):
            if p[key] < 0:
                raise ValueError(f"segmentation.classical.{key} must be >= 0; got {p[key]}")

    def segment(self, site: SiteImage) -> Segmentation:
        """Nuclei, cells and cytoplasm of one site.

        Parameters
        ----------
        site : SiteImage
            (C, Y, X) float32 image in [0, 1] and its channel names.

        Returns
        -------
        Segmentation
            ``info``: ``nuclei_threshold`` and ``cells_threshold`` (None: blank image / no
            cells channel or no cell-body signal), ``nucleus_diameter`` (typical diameter used,
            px), objects removed per rule (``removed_small``, ``removed_large``,
            ``removed_border``, ``removed_unnucleated``: cell-body regions without a
            nucleus). ``objects``: ``Nuclei_Segmentation_Contrast``, each nucleus's contrast
            against its local background in noise SDs (:func:`~plateflow.segmentation.
            confidence.local_contrast`).
        """
        p = self.config
        dna = site.plane(self.nuclei_channel, key="nuclei_channel")
        nuclei, info, discarded = find_nuclei(
            dna,
            smoothing_sigma=p["smoothing_sigma"],
            threshold_method=p["threshold_method"],
            threshold_correction=p["threshold_correction"],
            min_threshold=p["min_threshold"],
            max_threshold=p["max_threshold"],
            min_snr=p["min_snr"],
            diameter=p["nucleus_diameter"],
            diameter_min=p["nucleus_diameter_min"],
            diameter_max=p["nucleus_diameter_max"],
            declump=p["declump"],
            declump_min_distance=p["declump_min_distance"],
            subtract_background=p["subtract_background"],
            fill_holes=p["fill_holes"],
            exclude_border=p["exclude_border"],
        )
        # As CellProfiler does, nuclei discarded for size or border still claim their own cell
        # territory while cells are grown (then that territory is dropped), so that their
        # neighbours do not swallow it.
        info["removed_unnucleated"] = 0
        if self.cells_channel is None:
            cells = expand_cells(nuclei, distance=p["cell_expansion_px"], competitors=discarded)
            info["cells_threshold"] = None
        else:
            cells, info["cells_threshold"], info["removed_unnucleated"] = grow_cells(
                site.plane(self.cells_channel, key="cells_channel"),
                nuclei,
                competitors=discarded,
                smoothing_sigma=p["cells_smoothing_sigma"],
                threshold_method=p["cells_threshold_method"],
                threshold_correction=p["cells_threshold_correction"],
                propagation_lambda=p["propagation_lambda"],
                fill_holes=p["fill_holes"],
                factor=propagation_factor(info["nucleus_diameter"]),
            )
        contrast = local_contrast(dna, nuclei, info["nucleus_diameter"])
        logger.debug("classical segmentation: %d nuclei, %s", nuclei.max(initial=0), info)
        return self.result(
            nuclei, cells, info=info,
            cytoplasm=cytoplasm_from(cells, nuclei, shrink=p["cytoplasm_shrink_px"]),
            objects={"Nuclei_Segmentation_Contrast": contrast},
        )
