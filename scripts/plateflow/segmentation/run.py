"""The segmentation batch job: corrected image stacks in, label stacks out.

Input, per site: ``<preprocessed_dir>/<well>/s<site>.tiff``, the corrected site in any
``preprocess.storage`` (read by :func:`plateflow.core.correction.read_preprocessed`, used as
float32), with ``plate``, ``well``, ``site``, ``channels``, ``image_sha256`` and ``lineage`` in
its metadata. Output, per site:
``<out_dir>/<well>/s<site>.tiff``, a (3, Y, X) int32 stack of the Nuclei, Cells and Cytoplasm
labels with the same keys plus ``compartments`` and ``segmentation`` (method, model,
weights_sha256). A site the QC gate stopped stays a placeholder (see
:mod:`plateflow.core.contract`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from plateflow.core.contract import (
    new_site_path,
    parse_site_ids,
    site_path,
    skipped,
    write_placeholder,
)
from plateflow.core.correction import read_preprocessed
from plateflow.core.imageio import write_stack
from plateflow.core.params import params_hash
from plateflow.segmentation.base import SegmentationMethod, SiteImage, build_method

logger = logging.getLogger(__name__)

__all__ = ["COMPARTMENTS", "segment"]

#: The pages of a label stack, in order.
COMPARTMENTS = ["Nuclei", "Cells", "Cytoplasm"]
_NO_SEGMENTATION = {"method": None, "model": None, "weights_sha256": None}


def segment(
    *, sites: Sequence[str], preprocessed_dir: str | Path, params: Mapping, out_dir: str | Path,
    weights: str | Path | None = None,
) -> int:
    """Segment nuclei, cells and cytoplasm of every site of a batch.

    The method that ``params["method"]`` names is built once, and its ``load()`` (a model's
    weights) runs once, before the first site that passed the QC gate; a batch whose sites
    were all stopped loads nothing.

    Parameters
    ----------
    sites : sequence of str
        The batch's sites, ``"well/site"``.
    preprocessed_dir : path
        The batch's folder of corrected stacks.
    params : mapping
        The ``segmentation:`` config section.
    out_dir : path
        The batch's folder of label stacks.
    weights : path, optional
        The staged weights file of a model-based method.

    Returns
    -------
    int
        The number of sites segmented (the others were stopped by the QC gate).
    """
    method = build_method(params, weights=weights)
    step_hash = params_hash(dict(params))
    loaded = False
    n_segmented = 0
    for well, site in parse_site_ids(sites):
        image, meta = read_preprocessed(site_path(preprocessed_dir, well, site, ".tiff"))
        output = new_site_path(out_dir, well, site, ".tiff")
        if skipped(meta) is None and not loaded:
            method.load()
            loaded = True
        n_segmented += _segment_site(method, image, meta, step_hash, output)
    return n_segmented


def _segment_site(method: SegmentationMethod, image: np.ndarray, meta: Mapping, step_hash: str,
                  output: Path) -> bool:
    """Segment one site, or pass on its placeholder; True if it was segmented."""
    lineage = dict(meta["lineage"], segment=step_hash)
    keep = {k: meta[k] for k in ("plate", "well", "site", "channels", "image_sha256")}
    reason = skipped(meta)
    if reason is not None:
        logger.warning("plate %s, well %s, site %s: not segmented, %s", meta["plate"],
                       meta["well"], meta["site"], reason)
        write_placeholder(output, pages=len(COMPARTMENTS), dtype=np.int32, reason=reason,
                          metadata={**keep, "lineage": lineage,
                                    "segmentation": dict(_NO_SEGMENTATION)})
        return False
    # corrected images may be stored as float16: segment in float32
    site = SiteImage(np.asarray(image, dtype=np.float32), tuple(meta["channels"]))
    result = method.segment(site)
    labels = np.stack([result.nuclei, result.cells, result.cytoplasm]).astype(np.int32)
    write_stack(output, labels, metadata={
        **keep,
        "compartments": list(COMPARTMENTS),
        "segmentation": {"method": result.method, "model": result.model,
                         "weights_sha256": result.weights_sha256, "info": result.info},
        "lineage": lineage,
    })
    logger.info("plate %s, well %s, site %s: %d nuclei, %d cells (%s)", meta["plate"],
                meta["well"], meta["site"], int(result.nuclei.max()), int(result.cells.max()),
                result.method)
    return True
