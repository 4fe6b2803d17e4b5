"""Pair independently found nuclei and cells into the :class:`~.base.Segmentation` contract.

A model that segments nuclei and cells in two separate passes (Cellpose) returns two unrelated
label images: a cell may hold no nucleus or several, a nucleus may straddle two cells or stick
out of its cell. :func:`pair_objects` turns them into pairs, by these rules, in this order:

1. **Size.** Nuclei and cells larger than ``max_size`` px are dropped
   (``*_removed_max_size``).
2. **Host cell.** Each nucleus belongs to the cell it overlaps most (ties: the lower cell
   label). A nucleus that overlaps no cell is dropped (``nuclei_removed_no_cell``).
3. **One nucleus per cell.** Of the nuclei that a cell hosts, it keeps the one overlapping it
   most (ties: the lower nucleus label); the others are dropped
   (``nuclei_removed_extra_in_cell``). A cell that hosts no nucleus is dropped
   (``cells_removed_no_nucleus``).
4. **Clip.** Each kept nucleus loses its pixels outside its cell
   (``nuclei_clipped``: how many nuclei lost pixels).

The kept pairs are numbered 1..N in the order of their input nucleus labels, so that cell ``i``
contains nucleus ``i``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Pairing", "pair_objects", "remove_large"]


@dataclass(frozen=True)
class Pairing:
    """The paired label images and where each object came from.

    Attributes
    ----------
    nuclei, cells : (Y, X) int32 ndarray
        Nuclei labelled 1..N, cell ``i`` containing nucleus ``i``.
    nucleus_source, cell_source : (N,) int64 ndarray
        Input label of the nucleus / cell that became output object ``i + 1``.
    removed : dict
        How many objects (or nuclei clipped) each rule affected, keys as in the module
        docstring.
    """

    nuclei: np.ndarray
    cells: np.ndarray
    nucleus_source: np.ndarray
    cell_source: np.ndarray
    removed: dict = field(default_factory=dict)


def remove_large(labels: np.ndarray, max_size: float | None) -> tuple[np.ndarray, int]:
    """``labels`` without the objects of more than ``max_size`` px (None: keep all), and how
    many were removed."""
    labels = np.asarray(labels)
    if max_size is None or labels.max(initial=0) == 0:
        return labels, 0
    areas = np.bincount(labels.ravel())
    large = np.flatnonzero(areas > max_size)
    large = large[large > 0]
    if large.size == 0:
        return labels, 0
    keep = np.ones(areas.size, bool)
    keep[large] = False
    keep[0] = True
    return np.where(keep[labels], labels, 0), int(large.size)


def _best_partner(pairs: np.ndarray, counts: np.ndarray, n_keys: int) -> np.ndarray:
    """For each key (column 0 of ``pairs``, in 0..n_keys-1), the partner (column 1) with the
    largest count, ties to the lower partner; 0 where a key has no pair."""
    best = np.zeros(n_keys, np.int64)
    if pairs.shape[0] == 0:
        return best
    # sort by key, then count descending, then partner ascending: the first row of each key wins
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
    keys = pairs[order, 0]
    first = np.ones(keys.size, bool)
    first[1:] = keys[1:] != keys[:-1]
    best[keys[first]] = pairs[order, 1][first]
    return best


def pair_objects(nuclei: np.ndarray, cells: np.ndarray, *,
                 max_size: float | None = None) -> Pairing:
    """Pair nuclei and cells by the rules of the module docstring.

    Parameters
    ----------
    nuclei, cells : (Y, X) int ndarray
        Label images found independently (0 = background; labels need not be consecutive).
    max_size : float, optional
        Largest allowed object area in px, for nuclei and cells alike (None: no limit).

    Returns
    -------
    Pairing
    """
    nuclei = np.asarray(nuclei).astype(np.int64, copy=False)
    cells = np.asarray(cells).astype(np.int64, copy=False)
    if nuclei.shape != cells.shape:
        raise ValueError(f"nuclei {nuclei.shape} and cells {cells.shape} differ in shape")
    nuclei, n_large_nuclei = remove_large(nuclei, max_size)
    cells, n_large_cells = remove_large(cells, max_size)
    n_nuclei_in = np.unique(nuclei[nuclei > 0]).size
    n_cells_in = np.unique(cells[cells > 0]).size

    # overlap counts of every (nucleus, cell) pair
    n_max, c_max = int(nuclei.max(initial=0)) + 1, int(cells.max(initial=0)) + 1
    both = (nuclei > 0) & (cells > 0)
    codes, counts = np.unique(nuclei[both] * c_max + cells[both], return_counts=True)
    pairs = np.stack([codes // c_max, codes % c_max], axis=1)
    host = _best_partner(pairs, counts, n_max)  # nucleus -> host cell (0: none)
    # overlap of each nucleus with its host cell; then each cell keeps its best hosted nucleus
    hosted = pairs[host[pairs[:, 0]] == pairs[:, 1]]
    hosted_counts = counts[host[pairs[:, 0]] == pairs[:, 1]]
    keeper = _best_partner(hosted[:, ::-1], hosted_counts, c_max)  # cell -> kept nucleus

    cell_source = np.flatnonzero(keeper)
    nucleus_source = keeper[cell_source]
    order = np.argsort(nucleus_source, kind="stable")
    nucleus_source, cell_source = nucleus_source[order], cell_source[order]
    new_label = np.arange(1, nucleus_source.size + 1, dtype=np.int64)
    nucleus_map = np.zeros(n_max, np.int64)
    nucleus_map[nucleus_source] = new_label
    cell_map = np.zeros(c_max, np.int64)
    cell_map[cell_source] = new_label

    out_cells = cell_map[cells]
    out_nuclei = nucleus_map[nuclei]
    kept_nuclei = out_nuclei > 0
    outside = kept_nuclei & (out_cells != out_nuclei)
    n_clipped = np.unique(out_nuclei[outside]).size
    out_nuclei[outside] = 0

    n_with_cell = np.count_nonzero(host[np.unique(nuclei[nuclei > 0])])
    removed = {
        "nuclei_removed_max_size": n_large_nuclei,
        "cells_removed_max_size": n_large_cells,
        "nuclei_removed_no_cell": int(n_nuclei_in - n_with_cell),
        "nuclei_removed_extra_in_cell": int(n_with_cell - nucleus_source.size),
        "cells_removed_no_nucleus": int(n_cells_in - cell_source.size),
        "nuclei_clipped": int(n_clipped),
    }
    return Pairing(nuclei=out_nuclei.astype(np.int32), cells=out_cells.astype(np.int32),
                   nucleus_source=nucleus_source, cell_source=cell_source, removed=removed)
