"""The classical method: global threshold + watershed, after CellProfiler's
IdentifyPrimaryObjects / IdentifySecondaryObjects / IdentifyTertiaryObjects."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from plateflow.segmentation.base import Segmentation, SegmentationMethod, SiteImage, register
from plateflow.segmentation.cells import expand_cells, grow_cells
from plateflow.segmentation.nuclei import DECLUMP_METHODS, find_nuclei
from plateflow.segmentation.thresholds import THRESHOLD_METHODS

logger = logging.getLogger(__name__)

__all__ = ["Classical"]


@register("classical")
class Classical(SegmentationMethod):
    """Nuclei by a global threshold and a marker-controlled watershed
    (:func:`~plateflow.segmentation.nuclei.find_nuclei`), cells grown from them in the cell-body
    channel (:func:`~plateflow.segmentation.cells.grow_cells`) or, without one, by a fixed
    distance (:func:`~plateflow.segmentation.cells.expand_cells`). Loads nothing."""

    #: The ``segmentation.classical`` section.
    defaults: ClassVar[dict[str, Any]] = {
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
        # (robust: MAD_SCALE * MAD of the below-threshold pixels) above the background median,
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
    }

    def __init__(self, config=None, *, nuclei_channel: str, cells_channel: str | None = None,
                 weights=None):
        super().__init__(config, nuclei_channel=nuclei_channel, cells_channel=cells_channel,
                         weights=weights)
        p = self.config
        for key in ("threshold_method", "cells_threshold_method"):
            if p[key] not in THRESHOLD_METHODS:
                raise ValueError(f"segmentation.classical.{key} is {p[key]!r}; allowed: "
                                 f"{', '.join(THRESHOLD_METHODS)}")
        if p["declump"] not in DECLUMP_METHODS:
            raise ValueError(f"Unknown declump method {p['declump']!r} "
                             f"(segmentation.classical.declump); allowed: "
                             f"{', '.join(DECLUMP_METHODS)}")
        dmin, dmax = float(p["nucleus_diameter_min"]), float(p["nucleus_diameter_max"])
        if not 0 < dmin <= dmax:
            raise ValueError("segmentation.classical: the nucleus diameter range must satisfy "
                             f"0 < nucleus_diameter_min <= nucleus_diameter_max; got "
                             f"({dmin}, {dmax})")
        if p["cell_expansion_px"] < 0:
            raise ValueError("segmentation.classical.cell_expansion_px must be >= 0; got "
                             f"{p['cell_expansion_px']}")

    def segment(self, site: SiteImage) -> Segmentation:
        """Nuclei, cells and cytoplasm of one site.

        Parameters
        ----------
        site : SiteImage
            (C, Y, X) float32 image in [0, 1] and its channel names.

        Returns
        -------
        Segmentation
            ``info`` holds ``nuclei_threshold`` and ``cells_threshold`` (None: blank image /
            no cells channel or no cell-body signal).
        """
        p = self.config
        nuclei, info, discarded = find_nuclei(
            site.plane(self.nuclei_channel, key="nuclei_channel"),
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
        if self.cells_channel is None:
            cells = expand_cells(nuclei, distance=p["cell_expansion_px"], competitors=discarded)
            info["cells_threshold"] = None
        else:
            cells, info["cells_threshold"] = grow_cells(
                site.plane(self.cells_channel, key="cells_channel"),
                nuclei,
                competitors=discarded,
                smoothing_sigma=p["smoothing_sigma"],
                threshold_method=p["cells_threshold_method"],
                threshold_correction=p["cells_threshold_correction"],
                fill_holes=p["fill_holes"],
            )
        logger.debug("classical segmentation: %d nuclei, thresholds %s",
                     nuclei.max(initial=0), info)
        return self.result(nuclei, cells, info=info)
