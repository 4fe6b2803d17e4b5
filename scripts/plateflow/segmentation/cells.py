"""Cells grown from nuclei (CellProfiler's IdentifySecondaryObjects) and cytoplasm
(IdentifyTertiaryObjects)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import segmentation

from plateflow.segmentation.morphology import fill_holes_per_object
from plateflow.segmentation.propagation import propagate
from plateflow.segmentation.thresholds import auto_threshold, smooth

__all__ = ["expand_cells", "grow_cells"]


def grow_cells(
    plane: np.ndarray,
    nuclei: np.ndarray,
    *,
    competitors: np.ndarray | None = None,
    smoothing_sigma: float = 1.0,
    threshold_method: str = "li",
    threshold_correction: float = 1.0,
    propagation_lambda: float = 0.05,
    fill_holes: bool = True,
    factor: int = 1,
) -> tuple[np.ndarray, float | None, int]:
    """Grow cells from nuclei in a cell-body image by CellProfiler's Propagation
    (IdentifySecondaryObjects, :func:`~plateflow.segmentation.propagation.propagate`).

    The cell-body image is smoothed and thresholded; each nucleus claims the foreground pixels
    (foreground OR nuclei) it is closest to along paths through the foreground, path length
    summing image differences and ``propagation_lambda`` per step. Foreground not reachable
    from any nucleus stays background, so every cell has exactly one nucleus with the same
    label.

    Parameters
    ----------
    plane : (Y, X) float ndarray
        Cell-body stain, intensities in [0, 1].
    nuclei : (Y, X) int ndarray
        Nuclei label image (the seeds).
    competitors : (Y, X) int ndarray, optional
        Extra seeds (e.g. nuclei discarded for size or border) with labels not used in
        ``nuclei``: they compete for territory, then their regions are set to background.
    smoothing_sigma, threshold_method, threshold_correction
        See :func:`plateflow.segmentation.thresholds.auto_threshold`; the smoothed image
        is thresholded, the unsmoothed one steers the propagation (as in CellProfiler).
    propagation_lambda : float
        CellProfiler's regularization factor.
    fill_holes : bool
        Fill holes enclosed by a single cell.
    factor : int
        Coarsening of the shortest-path solve (see
        :func:`~plateflow.segmentation.propagation.propagate`).

    Returns
    -------
    cells : (Y, X) int32 ndarray
        Same label numbers as ``nuclei``; each cell contains its nucleus.
    threshold : float or None
        Threshold used on the smoothed cell image (None: no cell-body signal, cells = nuclei).
    unnucleated : int
        Foreground components that hold no nucleus (cell bodies without a nucleus, debris):
        left out by the "one nucleus per cell" rule.
    """
    nuclei = np.asarray(nuclei)
    if nuclei.max(initial=0) == 0:
        return np.zeros(nuclei.shape, np.int32), None, 0
    seeds = _with_competitors(nuclei, competitors)
    plane = np.asarray(plane, dtype=np.float32)
    smoothed = smooth(plane, smoothing_sigma)
    # No SNR guard here: with nuclei present, "blank" cell-body images just give cells = nuclei.
    threshold = auto_threshold(
        smoothed, method=threshold_method, correction=threshold_correction, min_snr=0.0
    )
    mask = seeds > 0
    if threshold is not None:
        mask |= smoothed > threshold
    cells = propagate(plane, seeds, mask, propagation_lambda, factor=factor)
    components, n_components = ndi.label(mask)
    seeded = np.bincount(components[seeds > 0], minlength=n_components + 1)[1:] > 0
    unnucleated = n_components - int(np.count_nonzero(seeded))
    if fill_holes:
        cells = fill_holes_per_object(cells)
    cells[cells > nuclei.max()] = 0  # competitors' territory
    # A nucleus always belongs to its own cell.
    cells[nuclei > 0] = nuclei[nuclei > 0]
    return (cells.astype(np.int32, copy=False), None if threshold is None else float(threshold),
            unnucleated)


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
