"""Tests for the ``ensemble`` segmentation method (plateflow.segmentation.ensemble): the merge
rule on hand-made votes, and the classical method with two parameter sets and with flips."""

from __future__ import annotations

import copy
import hashlib
from typing import ClassVar

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.segmentation import expand_labels

from plateflow.core.contract import new_site_path
from plateflow.core.imageio import read_stack, write_stack
from plateflow.segmentation import (
    DEFAULT_PARAMS,
    Segmentation,
    SegmentationMethod,
    SiteImage,
    build_method,
    cytoplasm_from,
    get_method,
    register,
)
from plateflow.segmentation import base as seg_base
from plateflow.segmentation.ensemble import Ensemble, best_iou, merge_votes
from plateflow.segmentation.metrics import score
from plateflow.segmentation.run import segment

CHANNELS = ("DNA", "CellBody")
CENTERS = [(40 + 60 * i, 40 + 60 * j) for i in range(4) for j in range(4)]
BORDER = (4, 140)  # a nucleus cut by the top edge


def _disk(shape, center, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


@pytest.fixture(scope="module")
def site() -> np.ndarray:
    """(2, 280, 280) float32: 16 nuclei (r 10) on a grid with cell bodies (r 22), and one
    nucleus cut by the top border."""
    rng = np.random.default_rng(0)
    shape = (280, 280)
    image = np.full((2, *shape), 0.02, np.float32)
    for center in [*CENTERS, BORDER]:
        image[0][_disk(shape, center, 10)] = 0.5
        cell = _disk(shape, center, 22)
        image[1][cell] = np.maximum(image[1][cell], 0.3)
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    return np.clip(image, 0, 1)


def _params(members, *, flips=False, cells_channel="CellBody"):
    params = copy.deepcopy(DEFAULT_PARAMS)
    params.update(method="ensemble", cells_channel=cells_channel)
    params["ensemble"] = {"members": members, "flips": flips}
    return params


def _run(params, image) -> Segmentation:
    method = build_method(params)
    method.load()
    return method.segment(SiteImage(image, CHANNELS))


def _classical(image, **options) -> Segmentation:
    params = copy.deepcopy(DEFAULT_PARAMS)
    params.update(cells_channel="CellBody")
    params["classical"].update(options)
    return _run(params, image)


def assert_label_contract(seg: Segmentation):
    """The guarantees of plateflow.segmentation.base."""
    n = seg.n_objects
    for labels in (seg.nuclei, seg.cells, seg.cytoplasm):
        assert labels.dtype == np.int32
    assert set(np.unique(seg.nuclei)) == set(range(n + 1))  # 1..N consecutive
    assert set(np.unique(seg.cells)) == set(range(n + 1))  # no cell without a nucleus
    inside = seg.nuclei > 0
    assert np.array_equal(seg.cells[inside], seg.nuclei[inside])  # cell i contains nucleus i
    assert np.array_equal(seg.cytoplasm, cytoplasm_from(seg.cells, seg.nuclei))
    for values in seg.objects.values():
        assert len(values) == n


def _label_at(labels, point):
    return int(labels[point])


# ----------------------------------------------------------------------------- merge rule --


def _vote(nuclei, cells=None, **objects) -> Segmentation:
    nuclei = np.asarray(nuclei, np.int32)
    cells = nuclei if cells is None else np.asarray(cells, np.int32)
    return Segmentation(nuclei=nuclei, cells=cells, cytoplasm=cytoplasm_from(cells, nuclei),
                        method="hand", objects={k: np.asarray(v, np.float32)
                                                for k, v in objects.items()})


def _squares(shape, boxes):
    labels = np.zeros(shape, np.int32)
    for i, (y, x, size) in enumerate(boxes, start=1):
        labels[y:y + size, x:x + size] = i
    return labels


def test_best_iou_of_each_object():
    a = _squares((20, 20), [(0, 0, 4), (10, 10, 4)])
    b = _squares((20, 20), [(0, 0, 4), (10, 12, 4)])  # the second one shifted by half
    best_a, best_b = best_iou(a, b)
    assert best_a.tolist() == [1.0, pytest.approx(8 / 24)]
    assert best_b.tolist() == [1.0, pytest.approx(8 / 24)]
    assert best_iou(a, np.zeros_like(a))[0].tolist() == [0.0, 0.0]


def test_identical_votes_give_the_same_objects_and_agreement_one():
    nuclei = _squares((30, 30), [(2, 2, 5), (15, 15, 6), (2, 20, 4)])
    cells = expand_labels(nuclei, 2)
    votes = [_vote(nuclei, cells, Nuclei_Segmentation_Confidence=[0.1, 0.2, 0.3])] * 3
    merged_nuclei, merged_cells, objects, reference = merge_votes(votes)
    assert reference == 0
    assert np.array_equal(merged_nuclei, nuclei) and np.array_equal(merged_cells, cells)
    assert objects["Nuclei_Segmentation_Agreement"].tolist() == [1.0, 1.0, 1.0]
    assert objects["Cells_Segmentation_Agreement"].tolist() == [1.0, 1.0, 1.0]
    assert objects["Nuclei_Segmentation_Confidence"].tolist() == pytest.approx([0.1, 0.2, 0.3])


def test_a_majority_decides_which_nuclei_exist():
    shape = (30, 30)
    # nucleus P is seen by all three votes, Q by two, R by one (the reference)
    a = _squares(shape, [(2, 2, 5), (15, 15, 6), (2, 20, 4)])
    b = _squares(shape, [(2, 2, 5), (15, 15, 6)])
    c = _squares(shape, [(2, 2, 5)])
    nuclei, _, objects, _ = merge_votes([_vote(a), _vote(b), _vote(c)])
    assert nuclei.max() == 2  # R (1 vote of 3) is dropped
    assert np.array_equal(nuclei, b)
    assert objects["Nuclei_Segmentation_Agreement"] == pytest.approx([1.0, 2 / 3])
    # with two votes, a nucleus either one sees is kept, at agreement 0.5
    nuclei, _, objects, _ = merge_votes([_vote(c), _vote(a)])
    assert nuclei.max() == 3
    assert sorted(objects["Nuclei_Segmentation_Agreement"].tolist()) == [0.5, 0.5, 1.0]


def test_the_best_agreeing_vote_decides_how_nuclei_are_split():
    shape = (20, 40)
    split = np.zeros(shape, np.int32)
    split[5:15, 5:15], split[5:15, 15:25] = 1, 2
    merged = (split > 0).astype(np.int32)
    # two votes split the pair, one merges it: a split vote is the reference
    nuclei, _, objects, reference = merge_votes([_vote(merged), _vote(split), _vote(split)])
    assert reference == 1 and nuclei.max() == 2
    assert np.array_equal(nuclei, split)
    assert objects["Nuclei_Segmentation_Agreement"] == pytest.approx([(1 + 1 + 0.5) / 3] * 2)


def test_cells_are_repaired_to_contain_their_nucleus():
    shape = (30, 30)
    # vote a: one nucleus with a large cell; vote b: a second nucleus inside a's cell
    a_nuc = _squares(shape, [(5, 5, 5)])
    a_cell = _squares(shape, [(0, 0, 25)])
    b_nuc = _squares(shape, [(15, 15, 5)])
    b_cell = _squares(shape, [(12, 12, 12)])
    seg_nuclei, seg_cells, objects, _ = merge_votes([_vote(a_nuc, a_cell), _vote(b_nuc, b_cell)])
    seg = Segmentation(seg_nuclei, seg_cells, cytoplasm_from(seg_cells, seg_nuclei), "ensemble",
                       objects=objects)
    assert_label_contract(seg)
    assert seg.n_objects == 2
    # the second nucleus keeps its own pixels although the reference's cell covers them
    second = _label_at(seg_nuclei, (17, 17))
    assert second == 2 and seg_cells[17, 17] == 2


def test_votes_of_different_sizes_are_an_error():
    with pytest.raises(ValueError, match="different sizes"):
        merge_votes([_vote(np.zeros((4, 4))), _vote(np.zeros((5, 5)))])


# ------------------------------------------------------------ the classical method, twice --


def test_identical_members_give_agreement_one(site):
    members = [{"method": "classical", "params": {}}, {"method": "classical", "params": {}}]
    seg = _run(_params(members), site)
    single = _classical(site)
    assert seg.method == "ensemble"
    assert_label_contract(seg)
    assert np.array_equal(seg.nuclei, single.nuclei) and np.array_equal(seg.cells, single.cells)
    assert seg.objects["Nuclei_Segmentation_Agreement"].tolist() == [1.0] * seg.n_objects
    assert seg.objects["Cells_Segmentation_Agreement"].tolist() == [1.0] * seg.n_objects
    assert seg.info["ensemble_votes"] == 2 and seg.info["ensemble_mean_agreement"] == 1.0


@pytest.mark.parametrize("border_first", [False, True])
def test_a_member_that_misses_a_nucleus_lowers_its_agreement(site, border_first):
    keep = {"method": "classical", "params": {}}
    drop = {"method": "classical", "params": {"exclude_border": True}}
    with_border = _classical(site)
    without = _classical(site, exclude_border=True)
    assert with_border.n_objects == 17 and without.n_objects == 16  # the member misses one
    seg = _run(_params([drop, keep] if border_first else [keep, drop]), site)
    assert_label_contract(seg)
    assert seg.n_objects == 17
    agreement = seg.objects["Nuclei_Segmentation_Agreement"]
    border = _label_at(seg.nuclei, (1, 140)) - 1
    # its own member sees it exactly (IoU 1), the other not at all (0): mean 0.5
    assert agreement[border] == pytest.approx(0.5)
    assert np.delete(agreement, border) == pytest.approx(np.ones(16))
    assert seg.objects["Cells_Segmentation_Agreement"][border] <= 0.55
    # the merged nuclei are the nuclei of the member that sees them all
    assert score(with_border.nuclei, seg.nuclei)["AP_50_95"] == 1.0


def test_flips_of_the_classical_method_agree(site):
    seg = _run(_params([{"method": "classical", "params": {}}], flips=True), site)
    assert_label_contract(seg)
    assert seg.info["ensemble_votes"] == 4
    assert seg.n_objects == 17
    agreement = seg.objects["Nuclei_Segmentation_Agreement"]
    assert agreement.min() >= 0.95 and agreement.mean() >= 0.99
    assert seg.objects["Cells_Segmentation_Agreement"].mean() >= 0.95
    assert score(_classical(site).nuclei, seg.nuclei)["AP_50"] == 1.0


def test_ensemble_without_a_cells_channel(site):
    members = [{"method": "classical", "params": {}},
               {"method": "classical", "params": {"cell_expansion_px": 6}}]
    seg = _run(_params(members, cells_channel=None), site)
    assert_label_contract(seg)
    assert seg.n_objects == 17
    assert seg.objects["Nuclei_Segmentation_Agreement"] == pytest.approx(np.ones(17))
    assert 0.2 < seg.objects["Cells_Segmentation_Agreement"].mean() < 1.0


# ------------------------------------------------------------------------ configuration --


def test_defaults_and_config_errors():
    assert Ensemble.defaults == DEFAULT_PARAMS["ensemble"]
    assert get_method("ensemble") is Ensemble
    with pytest.raises(ValueError, match="at least one member"):
        build_method(_params([]))
    with pytest.raises(ValueError, match=r"members\[1\].*Unknown segmentation method 'nope'"):
        build_method(_params([{"method": "classical"}, {"method": "nope"}]))
    with pytest.raises(ValueError, match=r"members\[0\].*no option 'smoothing'"):
        build_method(_params([{"method": "classical", "params": {"smoothing": 2}}]))
    with pytest.raises(ValueError, match="cannot be a member"):
        build_method(_params([{"method": "ensemble"}]))
    with pytest.raises(ValueError, match="no key 'weights'"):
        build_method(_params([{"method": "classical", "weights": "x"}]))


@pytest.fixture
def counting_method(monkeypatch, tmp_path):
    """A method registered for one test that counts its load() calls and loads "weights"."""
    monkeypatch.setattr(seg_base, "METHODS", dict(seg_base.METHODS))  # unregistered afterwards
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"not a real model")

    @register("counting_member")
    class Counting(SegmentationMethod):
        defaults: ClassVar[dict] = {"level": 0.25}
        calls: ClassVar[dict] = {"load": 0, "sites": 0}

        def load(self):
            self.calls["load"] += 1
            self.record_weights(weights, name="toy-model")

        def segment(self, site):
            self.calls["sites"] += 1
            nuclei = ndi.label(site.plane(self.nuclei_channel, key="nuclei_channel")
                               > self.config["level"])[0]
            return self.result(nuclei, expand_labels(nuclei, 3))

    return Counting, weights, hashlib.sha256(weights.read_bytes()).hexdigest()


def test_members_load_once_per_batch(counting_method, site, tmp_path):
    method, weights, weights_sha = counting_method
    sites = []
    for i, well_site in enumerate(("B02/1", "B02/2", "B03/1")):
        well, number = well_site.split("/")
        meta = {"plate": "P", "well": well, "site": number, "channels": list(CHANNELS),
                "image_sha256": f"{i:064x}", "lineage": {"correct_illumination": "abc"}}
        write_stack(new_site_path(tmp_path / "pre", well, number, ".tiff"), site, metadata=meta)
        sites.append(well_site)
    members = [{"method": "counting_member", "params": {"level": 0.3}},
               {"method": "counting_member", "params": {"level": 0.2}}]
    params = _params(members, flips=True)
    assert segment(sites=sites, preprocessed_dir=tmp_path / "pre", params=params,
                   out_dir=tmp_path / "seg", weights=weights) == 3
    assert method.calls == {"load": 2, "sites": 2 * 4 * 3}  # each member loads once
    labels, meta = read_stack(tmp_path / "seg" / "B03" / "s1.tiff")
    assert labels[0].max() == 17
    assert meta["segmentation"]["method"] == "ensemble"
    assert meta["segmentation"]["model"] == "toy-model"
    assert meta["segmentation"]["weights_sha256"] == weights_sha
    assert meta["objects"]["Nuclei_Segmentation_Agreement"] == [1.0] * 17
