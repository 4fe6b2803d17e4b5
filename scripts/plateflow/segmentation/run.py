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
from plateflow.segmentation.base import (
    Segmentation,
    SegmentationMethod,
    SiteImage,
    build_method,
)
from plateflow.segmentation.statistics import site_statistics

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
    pending: list[tuple[np.ndarray, Mapping, Path]] = []
    n_segmented = 0
    loaded = False
    for well, site in parse_site_ids(sites):
        image, meta = read_preprocessed(site_path(preprocessed_dir, well, site, ".tiff"))
        output = new_site_path(out_dir, well, site, ".tiff")
        if skipped(meta) is not None:
            _write_placeholder(meta, step_hash, output)
            continue
        if not loaded:
            method.load()
            loaded = True
        pending.append((image, meta, output))
        if len(pending) >= max(1, int(method.sites_per_call)):
            n_segmented += _segment_sites(method, pending, step_hash)
            pending = []
    if pending:
        n_segmented += _segment_sites(method, pending, step_hash)
    return n_segmented


def _kept(meta: Mapping, step_hash: str) -> dict:
    keep = {k: meta[k] for k in ("plate", "well", "site", "channels", "image_sha256")}
    return {**keep, "lineage": dict(meta["lineage"], segment=step_hash)}


def _write_placeholder(meta: Mapping, step_hash: str, output: Path) -> None:
    """Pass on the placeholder of a site the QC gate stopped."""
    reason = skipped(meta)
    logger.warning("plate %s, well %s, site %s: not segmented, %s", meta["plate"],
                   meta["well"], meta["site"], reason)
    write_placeholder(output, pages=len(COMPARTMENTS), dtype=np.int32, reason=reason,
                      metadata={**_kept(meta, step_hash), "segmentation": dict(_NO_SEGMENTATION)})


def _segment_sites(method: SegmentationMethod, pending: Sequence[tuple[np.ndarray, Mapping, Path]],
                   step_hash: str) -> int:
    """Segment sites that passed the gate in one call of the method, write their stacks."""
    # corrected images may be stored as float16: segment in float32
    images = [SiteImage(np.asarray(image, dtype=np.float32), tuple(meta["channels"]))
              for image, meta, _ in pending]
    results = method.segment_batch(images)
    if len(results) != len(images):
        raise RuntimeError(f"segmentation method {method.name!r} returned {len(results)} "
                           f"results for {len(images)} sites")
    for (_, meta, output), result in zip(pending, results):
        _write_result(result, meta, step_hash, output)
    return len(results)


def _write_result(result: Segmentation, meta: Mapping, step_hash: str, output: Path) -> None:
    labels = np.stack([result.nuclei, result.cells, result.cytoplasm]).astype(np.int32)
    info = {**site_statistics(result), **result.info}
    write_stack(output, labels, metadata={
        **_kept(meta, step_hash),
        "compartments": list(COMPARTMENTS),
        "segmentation": {"method": result.method, "model": result.model,
                         "weights_sha256": result.weights_sha256, "info": info},
        # per-object columns, joined to the feature rows by the feature step
        "objects": {name: [round(float(v), 6) for v in values]
                    for name, values in result.objects.items()},
    })
    logger.info("plate %s, well %s, site %s: %d nuclei, %d cells (%s)", meta["plate"],
                meta["well"], meta["site"], int(result.nuclei.max(initial=0)),
                int(result.cells.max(initial=0)), result.method)
