"""The features batch job: corrected stacks and label stacks in, one Parquet table per site out.

Input, per site: ``<preprocessed_dir>/<well>/s<site>.tiff`` (the corrected site in any
``preprocess.storage``, read by :func:`plateflow.core.correction.read_preprocessed`, used as
float32) and ``<labels_dir>/<well>/s<site>.tiff`` (the
label stack, its pages named by ``compartments`` in its metadata). Output, per site:
``<out_dir>/<well>/s<site>.parquet``, one row per cell: the site keys
(:data:`plateflow.core.contract.SITE_KEYS`), :func:`~plateflow.features.measure.feature_columns`,
the segmentation's per-object columns (``<Compartment>_Segmentation_<Name>``, from the label
stack's metadata ``objects``, see :func:`join_object_columns`) and the provenance columns. A
site the QC gate stopped gets an empty table with every column,
whose metadata says why (``skipped``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from plateflow.core.contract import new_site_path, parse_site_ids, site_frame, site_path, skipped
from plateflow.core.correction import read_preprocessed
from plateflow.core.imageio import read_stack
from plateflow.core.provenance import add_provenance, write_table
from plateflow.features.measure import OBJECT_NUMBER, SiteLabels, feature_columns, measure_objects

logger = logging.getLogger(__name__)

__all__ = ["extract_features", "extract_site_features", "join_object_columns"]

#: Compartments whose per-object segmentation columns join the feature rows.
_COMPARTMENTS = ("Nuclei", "Cells", "Cytoplasm")


def extract_features(
    *, sites: Sequence[str], preprocessed_dir: str | Path, labels_dir: str | Path, params: Mapping,
    out_dir: str | Path,
) -> int:
    """Measure every cell of every site of a batch: ``<out_dir>/<well>/s<site>.parquet``.

    Parameters
    ----------
    sites : sequence of str
        The batch's sites, ``"well/site"``.
    preprocessed_dir, labels_dir : path
        The batch's folders of corrected stacks and of label stacks.
    params : mapping
        The ``features:`` config section.
    out_dir : path
        The batch's folder of feature tables.

    Returns
    -------
    int
        The number of cells measured.
    """
    n_cells = 0
    for well, site in parse_site_ids(sites):
        n_cells += len(extract_site_features(
            preprocessed=site_path(preprocessed_dir, well, site, ".tiff"),
            labels=site_path(labels_dir, well, site, ".tiff"),
            params=params, output=new_site_path(out_dir, well, site, ".parquet"),
        ))
    return n_cells


def extract_site_features(
    *, preprocessed: str | Path, labels: str | Path, params: Mapping, output: str | Path
) -> pd.DataFrame:
    """Measure every cell of one site: one row per cell, CellProfiler-style columns.

    Returns
    -------
    pandas.DataFrame
        The table written to ``output`` (site keys, features, provenance).
    """
    stack, meta = read_stack(labels)
    reason = skipped(meta)
    if reason is not None:
        # No cells: an empty table with every column, so the gathers need no special case.
        columns = feature_columns(meta["channels"], params=params)
        table = pd.DataFrame(np.empty((0, len(columns) - 1), np.float32), columns=columns[1:])
        table.insert(0, OBJECT_NUMBER, np.empty(0, np.int64))
    else:
        image, _ = read_preprocessed(preprocessed)
        # corrected images may be stored as float16: measure in float32
        image = np.asarray(image, dtype=np.float32)
        pages = dict(zip(meta["compartments"], stack))
        seg = SiteLabels(nuclei=pages["Nuclei"], cells=pages["Cells"],
                         cytoplasm=pages["Cytoplasm"])
        table = measure_objects(image, meta["channels"], seg, params=params, dtype=np.float32)
        table = join_object_columns(table, meta.get("objects") or {})
    keys = site_frame(meta["plate"], meta["well"], meta["site"], len(table))
    table = pd.concat([keys, table.reset_index(drop=True)], axis=1)
    lineage = dict(meta["lineage"])
    table = add_provenance(table, step="extract_features", params=params,
                           image_sha256=meta["image_sha256"], lineage=lineage,
                           segmentation=meta["segmentation"])
    notes = {"site": str(meta["site"]), "image_sha256": meta["image_sha256"]}
    if reason is not None:
        notes["skipped"] = reason
    write_table(table, output, step="extract_features", params=params, lineage=lineage,
                notes=notes)
    logger.debug("plate %s, well %s, site %s: %d cells measured", meta["plate"], meta["well"],
                 meta["site"], len(table))
    return table


def join_object_columns(table: pd.DataFrame, objects: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Join the segmentation's per-object columns onto the feature rows, as float32.

    Parameters
    ----------
    table : DataFrame
        One row per object, with ``ObjectNumber``.
    objects : mapping of str to sequence of float
        ``<Compartment>_Segmentation_<Name>`` -> one value per object, index ``i`` for label
        ``i + 1`` (the label stack's metadata ``objects``). An object the list does not reach
        gets NaN (None in the list is NaN too).

    Returns
    -------
    DataFrame
        ``table`` with one more column per entry, after the feature columns.
    """
    if not objects:
        return table
    numbers = table[OBJECT_NUMBER].to_numpy(dtype=np.int64)
    out = table.copy()
    for name in sorted(objects):
        compartment, _, rest = name.partition("_")
        if compartment not in _COMPARTMENTS or not rest.startswith("Segmentation_"):
            raise ValueError(f"per-object column {name!r} is not named "
                             "<Nuclei|Cells|Cytoplasm>_Segmentation_<Name>")
        values = np.array([np.nan if v is None else v for v in objects[name]], dtype=np.float32)
        column = np.full(len(numbers), np.nan, dtype=np.float32)
        inside = (numbers >= 1) & (numbers <= values.size)
        column[inside] = values[numbers[inside] - 1]
        out[name] = column
    return out
