"""The ``ensemble`` method: several segmentations of one site merged into one, with each object's
agreement across them (uncertainty per object).

Members are registered methods with their own options (``segmentation.ensemble.members``), for
example the classical method with two threshold settings, or two Cellpose models. With
``flips: true`` every member also segments the site flipped left-right, up-down and both
(test-time augmentation); each result is flipped back. Every (member, view) pair is one *vote*.

**The merge rule.**

1. *Ranking.* The agreement of two votes is the mean, over the objects of both, of each
   object's best IoU with the other vote's nuclei (1 = the same nuclei; a nucleus the other
   vote lacks counts 0). A vote's score is its mean agreement with the other votes; the vote
   with the highest score is the reference (the first in config order on a tie).
2. *Foreground by majority.* A pixel is nuclear where at least half the votes put a nucleus.
3. *Nuclei.* The votes, in rank order, offer their nuclei cut to that foreground; a nucleus is
   taken when at least half of its pixels are in the foreground and none of them has been taken
   already. So the reference decides how nuclei are split and outlined, the other votes add
   the nuclei it missed, and a nucleus that fewer than half the votes see is dropped (with two
   votes, a nucleus either one sees is kept).
4. *Cells.* A taken nucleus brings the cell its vote paired with it. Where cells of several votes
   overlap, the cell of the higher-ranked vote keeps the pixel; every nucleus pixel belongs to
   its own nucleus's cell, and no cell takes another nucleus's pixels, so cell ``i`` contains
   nucleus ``i`` (:mod:`plateflow.segmentation.base`).
5. *Agreement.* Each merged nucleus (cell) gets ``Nuclei_Segmentation_Agreement``
   (``Cells_Segmentation_Agreement``): the mean over the votes of its best IoU with that vote's
   nuclei (cells), its own vote included. Identical votes give 1.0; a nucleus that one of two
   votes misses gets 0.5.

Other per-object columns of the members (e.g. a confidence) are carried over from the vote that
contributed each object (NaN where that vote has no such column). ``info`` holds the reference
vote's own ``info`` plus ``ensemble_votes``, ``ensemble_reference`` and
``ensemble_mean_agreement``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from plateflow.core.provenance import combine_hashes
from plateflow.segmentation.base import (
    Segmentation,
    SegmentationMethod,
    SiteImage,
    get_method,
    register,
)
from plateflow.segmentation.metrics import label_iou

logger = logging.getLogger(__name__)

__all__ = ["Ensemble", "best_iou", "merge_votes"]

#: Test-time views: name -> axes flipped (of a (Y, X) plane).
VIEWS: dict[str, tuple[int, ...]] = {"none": (), "lr": (1,), "ud": (0,), "both": (0, 1)}
AGREEMENT = "Segmentation_Agreement"


def _flip(array: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``array`` flipped along ``axes`` of its last two dimensions (its own inverse)."""
    if not axes:
        return array
    offset = array.ndim - 2
    return np.ascontiguousarray(np.flip(array, axis=tuple(a + offset for a in axes)))


def best_iou(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each object's best IoU with the other image's objects.

    Parameters
    ----------
    a, b : (Y, X) int ndarray
        Label images, 0 = background, labels 1..N (a missing label gets 0).

    Returns
    -------
    best_a : (N_a,) float ndarray
        For label ``i + 1`` of ``a``, the largest IoU with any object of ``b`` (0 if none).
    best_b : (N_b,) float ndarray
        The same for the objects of ``b``.
    """
    iou = label_iou(a, b)
    if iou.size == 0:
        return np.zeros(iou.shape[0]), np.zeros(iou.shape[1])
    return iou.max(axis=1), iou.max(axis=0)


def _pair_agreement(a: np.ndarray, b: np.ndarray) -> float:
    best_a, best_b = best_iou(a, b)
    n = best_a.size + best_b.size
    return float((best_a.sum() + best_b.sum()) / n) if n else 1.0


def _rank(votes: list[Segmentation]) -> list[int]:
    """Vote indices, best-agreeing first (config order on ties)."""
    n = len(votes)
    scores = np.zeros(n)
    for i in range(n):
        for j in range(i + 1, n):
            agreement = _pair_agreement(votes[i].nuclei, votes[j].nuclei)
            scores[i] += agreement
            scores[j] += agreement
    # a stable sort on the negated, rounded scores keeps config order on ties
    return [int(i) for i in np.argsort(-np.round(scores, 9), kind="stable")]


def _take_nuclei(votes: list[Segmentation], order: list[int]) -> tuple[np.ndarray, list]:
    """Steps 2-3 of the merge rule: the merged nuclei, and for each vote (in ``order``) the
    lookup table from its nucleus labels to merged labels (0 = not taken)."""
    shape = votes[0].nuclei.shape
    count = np.zeros(shape, np.int32)
    for vote in votes:
        count += vote.nuclei > 0
    foreground = 2 * count >= len(votes)
    merged = np.zeros(shape, np.int32)
    taken = []
    n_taken = 0
    for index in order:
        labels = votes[index].nuclei
        n = int(labels.max(initial=0))
        lut = np.zeros(n + 1, np.int32)
        if n:
            area = np.bincount(labels.ravel(), minlength=n + 1)
            kept = labels * foreground
            in_fg = np.bincount(kept.ravel(), minlength=n + 1)
            clash = np.bincount(kept[merged > 0].ravel(), minlength=n + 1)
            ok = (2 * in_fg >= area) & (in_fg > 0) & (clash == 0)
            ok[0] = False
            lut[ok] = np.arange(n_taken + 1, n_taken + 1 + int(ok.sum()), dtype=np.int32)
            n_taken += int(ok.sum())
            merged = np.where(merged > 0, merged, lut[kept])
        taken.append((index, lut))
    return merged, taken


def _take_cells(votes: list[Segmentation], nuclei: np.ndarray, taken: list) -> np.ndarray:
    """Step 4 of the merge rule: each merged nucleus's cell, from the vote that gave it."""
    cells = np.zeros(nuclei.shape, np.int32)
    free = nuclei == 0
    for index, lut in taken:
        own = votes[index].cells
        if own.max(initial=0) == 0:
            continue
        mapped = lut[np.minimum(own, lut.size - 1)] * (own < lut.size)
        cells = np.where((cells == 0) & free & (mapped > 0), mapped, cells)
    return np.where(nuclei > 0, nuclei, cells).astype(np.int32)


def _agreement(merged: np.ndarray, votes: list[np.ndarray]) -> np.ndarray:
    """Per merged object, the mean over votes of its best IoU with the vote's objects."""
    n = int(merged.max(initial=0))
    if n == 0:
        return np.zeros(0, np.float32)
    total = np.zeros(n)
    for labels in votes:
        best, _ = best_iou(merged, labels)
        total += best
    return (total / len(votes)).astype(np.float32)


def _carried_objects(votes: list[Segmentation], taken: list, n: int) -> dict[str, np.ndarray]:
    """The members' per-object columns, each merged object's value from its own vote."""
    names = sorted({name for vote in votes for name in vote.objects})
    out = {name: np.full(n, np.nan, np.float32) for name in names}
    for index, lut in taken:
        source = np.flatnonzero(lut[1:]) + 1  # the vote's labels that were taken
        if source.size == 0:
            continue
        for name, values in votes[index].objects.items():
            values = np.asarray(values, dtype=np.float32)
            out[name][lut[source] - 1] = values[source - 1]
    return out


def merge_votes(votes: list[Segmentation]) -> tuple[np.ndarray, np.ndarray, dict, int]:
    """Merge several segmentations of one site by the rule of this module's docstring.

    Parameters
    ----------
    votes : list of Segmentation
        At least one; all of the same (Y, X) shape, each satisfying the label contract.

    Returns
    -------
    nuclei, cells : (Y, X) int32 ndarray
        The merged labels (nuclei 1..N, cell i contains nucleus i).
    objects : dict
        Per-object columns: the members' own, plus ``Nuclei_Segmentation_Agreement`` and
        ``Cells_Segmentation_Agreement``.
    reference : int
        Index (in ``votes``) of the reference vote.
    """
    if not votes:
        raise ValueError("an ensemble needs at least one vote")
    shapes = {v.nuclei.shape for v in votes}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members returned labels of different sizes: {sorted(shapes)}")
    order = _rank(votes)
    nuclei, taken = _take_nuclei(votes, order)
    cells = _take_cells(votes, nuclei, taken)
    n = int(nuclei.max(initial=0))
    objects = _carried_objects(votes, taken, n)
    objects[f"Nuclei_{AGREEMENT}"] = _agreement(nuclei, [v.nuclei for v in votes])
    objects[f"Cells_{AGREEMENT}"] = _agreement(cells, [v.cells for v in votes])
    return nuclei, cells, objects, order[0]


@register("ensemble")
class Ensemble(SegmentationMethod):
    """Several members (registered methods with their own options), optionally with test-time
    flips, merged into one segmentation with a per-object agreement (module docstring).

    Each member is built with the ensemble's channel mapping and staged weights, and its
    ``load()`` runs once, in the ensemble's :meth:`load`.
    """

    #: The ``segmentation.ensemble`` section.
    defaults: ClassVar[dict[str, Any]] = {
        # The members: [{method: <registered method>, params: {<its options>}}, ...].
        "members": [{"method": "classical", "params": {}}],
        # Also segment each site flipped left-right, up-down and both (4 votes per member).
        "flips": False,
    }

    def __init__(self, config=None, **common):
        super().__init__(config, **common)
        specs = self.config["members"]
        if not isinstance(specs, (list, tuple)) or not specs:
            raise ValueError("segmentation.ensemble.members must list at least one member, "
                             "e.g. [{method: classical, params: {}}]")
        self.members: list[SegmentationMethod] = []
        for i, spec in enumerate(specs):
            self.members.append(self._member(i, spec))
        self.views = list(VIEWS) if self.config["flips"] else ["none"]
        self.sites_per_call = max(int(m.sites_per_call) for m in self.members)

    def _member(self, index: int, spec) -> SegmentationMethod:
        where = f"segmentation.ensemble.members[{index}]"
        if not isinstance(spec, Mapping) or "method" not in spec:
            raise ValueError(f"{where} must be {{method: <name>, params: {{...}}}}; got {spec!r}")
        unknown = sorted(set(spec) - {"method", "params"})
        if unknown:
            raise ValueError(f"{where} has no key {unknown[0]!r}; allowed: method, params")
        if spec["method"] == self.name:
            raise ValueError(f"{where}: an ensemble cannot be a member of an ensemble")
        try:
            return get_method(spec["method"])(
                spec.get("params") or {}, nuclei_channel=self.nuclei_channel,
                cells_channel=self.cells_channel, weights=self.weights, model=self.model_config)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err

    def load(self) -> None:
        """Load every member (once per batch job) and record their models."""
        for member in self.members:
            member.load()
        models = [(m.model, m.weights_sha256) for m in self.members if m.model is not None]
        if models:
            self.model = "+".join(dict.fromkeys(name for name, _ in models))
            hashes = sorted({sha for _, sha in models if sha})
            self.weights_sha256 = (hashes[0] if len(hashes) == 1
                                   else combine_hashes(hashes) if hashes else None)

    def segment(self, site: SiteImage) -> Segmentation:
        """Segment one site with every member (and view) and merge the votes."""
        return self.segment_batch([site])[0]

    def segment_batch(self, sites: list[SiteImage]) -> list[Segmentation]:
        """Every member segments all views of all ``sites`` in one call; then each site's
        votes are merged."""
        votes: list[list[Segmentation]] = [[] for _ in sites]
        names: list[str] = []
        for m, member in enumerate(self.members):
            views = [SiteImage(_flip(site.image, VIEWS[v]), site.channels)
                     for site in sites for v in self.views]
            results = member.segment_batch(views)
            if len(results) != len(views):
                raise RuntimeError(f"ensemble member {m} ({member.name}) returned "
                                   f"{len(results)} results for {len(views)} images")
            for k, result in enumerate(results):
                s, v = divmod(k, len(self.views))
                votes[s].append(_unflip(result, VIEWS[self.views[v]]))
            names += [f"{m}:{member.name}" + ("" if v == "none" else f"/{v}")
                      for v in self.views]
        return [self._merged(site_votes, names) for site_votes in votes]

    def _merged(self, votes: list[Segmentation], names: list[str]) -> Segmentation:
        nuclei, cells, objects, reference = merge_votes(votes)
        agreement = objects[f"Nuclei_{AGREEMENT}"]
        info = {
            **votes[reference].info,
            "ensemble_votes": len(votes),
            "ensemble_reference": names[reference],
            "ensemble_mean_agreement": float(agreement.mean()) if agreement.size else None,
        }
        return self.result(nuclei, cells, info=info, objects=objects)


def _unflip(result: Segmentation, axes: tuple[int, ...]) -> Segmentation:
    """A view's segmentation in the orientation of the original site."""
    if not axes:
        return result
    return Segmentation(
        nuclei=_flip(result.nuclei, axes), cells=_flip(result.cells, axes),
        cytoplasm=_flip(result.cytoplasm, axes), method=result.method, model=result.model,
        weights_sha256=result.weights_sha256, info=result.info, objects=result.objects)
