"""The illumination stage's I/O: a plate's flat-field per channel, and its correction per batch.

:func:`estimate_plate_illumination` reads the plate's QC table and the raw images of the sites
that passed, and writes ``results/illumination/{plate}/flatfield.tiff`` (one float32 flat-field
per channel, mean 1) and a one-row-per-channel summary table.
:func:`correct_illumination` is the QC gate: it divides every passing site of a batch by the
flat-fields and writes ``results/preprocessed/{plate}/{batch}/{well}/s{site}.tiff`` in the
storage type ``preprocess.storage`` names; a site the gate stops gets a placeholder that says
why (see :mod:`plateflow.core.contract`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from plateflow.core.contract import (
    new_site_path,
    parse_site_ids,
    read_qc_decisions,
    write_placeholder,
)
from plateflow.core.correction import STORAGES, correct_site, write_reference
from plateflow.core.imageio import (
    dtype_max,
    read_image,
    read_site,
    read_stack,
    sha256_file,
    write_stack,
)
from plateflow.core.params import params_hash
from plateflow.core.provenance import add_provenance, combine_hashes, write_table
from plateflow.core.stats import corner_to_centre_ratio, evenly_spaced
from plateflow.illumination.flatfield import estimate_flatfield

logger = logging.getLogger(__name__)

__all__ = ["correct_illumination", "estimate_plate_illumination"]

#: ``preprocess.storage`` where params do not name one (the schema's default): see
#: :mod:`plateflow.core.correction` for the three storages.
DEFAULT_STORAGE = "reference"


def estimate_plate_illumination(
    *,
    channels: Sequence[str],
    plate: str,
    qc_sites_table: str | Path,
    params: Mapping,
    out_image: str | Path,
    out_table: str | Path,
) -> np.ndarray:
    """Estimate one flat-field per channel from the plate's QC-passed sites.

    The plate QC table says which sites passed and where their files are
    (``Metadata_FileName_<channel>``).

    Parameters
    ----------
    channels : sequence of str
        The plate's channels, in stack order.
    plate : str
    qc_sites_table : path
        The plate's QC table (``results/qc/{plate}/sites.parquet``).
    params : mapping
        The ``illumination`` config section.
    out_image, out_table : path
        The flat-field stack and its summary table.

    Returns
    -------
    (C, Y, X) float32 ndarray
        The flat-fields, as written.
    """
    step_params = {"illumination": dict(params), "channels": list(channels)}
    passed = [d for d in read_qc_decisions(qc_sites_table, channels).values() if d.passed]
    passed_files = [d.files for d in passed]
    if not passed_files:
        raise ValueError(f"plate {plate}: no site passed QC, so no flat-field can be estimated; "
                         f"see the QC table '{qc_sites_table}'")
    chosen = evenly_spaced(passed_files, params["max_sites"])
    fields = []
    for channel in channels:
        planes = (read_image(files[channel]) for files in chosen)
        fields.append(estimate_flatfield(planes, params=params))
    stack = np.stack(fields).astype(np.float32)
    write_stack(out_image, stack, metadata={"plate": plate, "channels": list(channels),
                                            "n_sites": len(chosen),
                                            "camera_offset": float(params["camera_offset"]),
                                            "params_hash": params_hash(step_params)})
    rows = pd.DataFrame({
        "Metadata_Plate": plate,
        "Metadata_Channel": list(channels),
        "Metadata_Sites_Used": len(chosen),
        "Illumination_Min": stack.reshape(len(channels), -1).min(axis=1),
        "Illumination_Max": stack.reshape(len(channels), -1).max(axis=1),
        "Illumination_CornerToCentre": [corner_to_centre_ratio(f) for f in stack],
    })
    rows = add_provenance(
        rows, step="estimate_illumination", params=step_params,
        image_sha256=combine_hashes(d.image_sha256 for d in passed),
    )
    write_table(rows, out_table, step="estimate_illumination", params=step_params)
    return stack


def correct_illumination(
    *,
    sites: Sequence[str],
    channels: Sequence[str],
    plate: str,
    flatfield: str | Path,
    qc_table: str | Path,
    params: Mapping,
    bit_depth: int | None,
    out_dir: str | Path,
) -> int:
    """Divide every site of a batch by its plate's flat-fields and scale to [0, 1].

    This is the QC gate: a site that did not pass QC is not read; its output is a placeholder
    that says why, and segmentation and feature extraction skip it too. The batch's QC table
    holds each site's decision and raw files (``Metadata_FileName_<channel>``).

    Parameters
    ----------
    sites : sequence of str
        The batch's sites as ``"well/site"`` strings.
    channels : sequence of str
    plate : str
    flatfield : path
        The plate's (C, Y, X) flat-field stack from :func:`estimate_plate_illumination`.
    qc_table : path
        The batch's QC table.
    params : mapping
        The ``preprocess`` config section: ``storage`` is how the corrected site is kept
        (``reference``, the default: no pixels, corrected when read; ``float32``; ``float16``;
        see :mod:`plateflow.core.correction`).
    bit_depth : int or None
        The detector's bit depth; None for the raw type's maximum.
    out_dir : path
        Writes ``<out_dir>/<well>/s<site>.tiff`` per site, which
        :func:`plateflow.core.correction.read_preprocessed` reads as a (C, Y, X) float32 stack.

    Returns
    -------
    int
        The number of sites corrected.
    """
    step_params = {"preprocess": dict(params), "channels": list(channels), "bit_depth": bit_depth}
    storage = params.get("storage", DEFAULT_STORAGE)
    if storage not in STORAGES:
        raise ValueError(f"preprocess.storage must be one of {', '.join(STORAGES)}, "
                         f"not {storage!r}")
    out_dtype = STORAGES[storage] or np.float32
    decisions = read_qc_decisions(qc_table, channels)
    fields, field_meta = read_stack(flatfield)
    if list(field_meta.get("channels", channels)) != list(channels):
        raise ValueError(f"plate {plate}: flat-field '{flatfield}' has channels "
                         f"{field_meta.get('channels')}, expected {list(channels)}")
    lineage = {
        "estimate_illumination": field_meta.get("params_hash"),
        "correct_illumination": params_hash(step_params),
    }
    flatfield_sha = sha256_file(flatfield)
    site_ids = parse_site_ids(sites)
    n_corrected = 0
    for well, site in site_ids:
        if (well, site) not in decisions:
            raise ValueError(f"plate {plate}, well {well}, site {site}: missing from the QC "
                             f"table '{qc_table}'")
        decision = decisions[(well, site)]
        output = new_site_path(out_dir, well, site, ".tiff")
        keep = {"plate": plate, "well": well, "site": site, "channels": list(channels),
                "image_sha256": decision.image_sha256}
        if not decision.passed:
            logger.warning("plate %s, well %s, site %s: skipped, QC %s: %s", plate, well, site,
                           decision.status, decision.reasons)
            write_placeholder(output, pages=len(channels), dtype=out_dtype,
                              reason=f"QC {decision.status}: {decision.reasons}",
                              metadata={**keep, "lineage": lineage})
            continue
        image = read_site(decision.files, channels)
        if image.shape[1:] != fields.shape[1:]:
            raise ValueError(
                f"plate {plate}, well {well}, site {site}: image size {image.shape[1:]} differs "
                f"from the plate's flat-field {fields.shape[1:]} "
                f"('{decision.files[channels[0]]}')"
            )
        maximum = dtype_max(image.dtype, bit_depth=bit_depth)
        offset = field_meta.get("camera_offset", 0.0)
        meta = {**keep, "flatfield_sha256": flatfield_sha, "lineage": lineage}
        if storage == "reference":
            write_reference(output, files=decision.files, channels=channels, flatfield=flatfield,
                            flatfield_sha256=flatfield_sha, dtype_max=maximum,
                            camera_offset=offset, metadata=meta)
        else:
            corrected = correct_site(image, fields, dtype_max=maximum, camera_offset=offset)
            write_stack(output, corrected.astype(out_dtype, copy=False),
                        metadata={**meta, "storage": storage}, predictor=True)
        n_corrected += 1
    logger.info("plate %s: %d sites corrected (%s), %d stopped by the QC gate", plate,
                n_corrected, storage, len(site_ids) - n_corrected)
    return n_corrected
