"""The cellpose method: pairing nuclei and cells (hand-made labels), weights staging and checks,
and real Cellpose 4 loading + inference on a CPU with a Cellpose-SAM network whose weights the
test writes itself (random: the masks are meaningless, so shapes, label validity, provenance,
channel mapping, batching and determinism are tested, never accuracy).

The inference tests need the install extra (``pip install -e ".[cellpose]"``) and skip
without it. They run the ViT-L network on five 256x256 tiles (two sites x two compartments,
then one site again): about 1.5 minutes on 2 idle cores with bfloat16 (AMX), when a CPU has it.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from plateflow.core.contract import new_site_path, site_path
from plateflow.core.imageio import read_stack, write_stack
from plateflow.segmentation import DEFAULT_PARAMS, SiteImage, get_method
from plateflow.segmentation.pairing import pair_objects, remove_large
from plateflow.segmentation.weights import (
    ModelStagingError,
    check_staged,
    stage_model,
)

REPO = Path(__file__).resolve().parents[1]
CHANNELS = ("DNA", "Actin", "Mito")
# Cellpose's mask computation builds a sparse tensor without invariant checks (harmless)
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")


def assert_contract(nuclei, cells):
    """The Segmentation contract: nuclei 1..N, cell i contains nucleus i, no other cells."""
    n = int(nuclei.max(initial=0))
    assert set(np.unique(nuclei)) - {0} == set(range(1, n + 1))
    assert set(np.unique(cells)) - {0} == set(range(1, n + 1))
    inside = nuclei > 0
    assert np.array_equal(cells[inside], nuclei[inside])


# --------------------------------------------------------------------------------------------
# pairing, on hand-made label images
# --------------------------------------------------------------------------------------------


def _box(labels, value, y0, y1, x0, x1):
    labels[y0:y1, x0:x1] = value


def test_pairing_keeps_one_nucleus_per_cell_and_counts_each_rule():
    cells = np.zeros((40, 60), np.int32)
    nuclei = np.zeros_like(cells)
    _box(cells, 7, 0, 20, 0, 20)     # two nuclei: 3 (big) and 9 (small)
    _box(cells, 4, 0, 20, 30, 50)    # no nucleus
    _box(cells, 2, 25, 40, 0, 30)    # nucleus 5, which sticks out of it
    _box(nuclei, 3, 2, 12, 2, 12)
    _box(nuclei, 9, 14, 18, 14, 18)
    _box(nuclei, 5, 22, 30, 5, 15)   # 3 rows above cell 2, 5 rows inside
    _box(nuclei, 8, 30, 35, 40, 45)  # no cell
    result = pair_objects(nuclei, cells)
    assert result.removed == {
        "nuclei_removed_max_size": 0, "cells_removed_max_size": 0,
        "nuclei_removed_no_cell": 1, "nuclei_removed_extra_in_cell": 1,
        "cells_removed_no_nucleus": 1, "nuclei_clipped": 1,
    }
    # numbered in the order of the input nucleus labels: 3 -> 1, 5 -> 2
    assert result.nucleus_source.tolist() == [3, 5]
    assert result.cell_source.tolist() == [7, 2]
    assert np.array_equal(result.cells == 1, cells == 7)
    assert np.array_equal(result.cells == 2, cells == 2)
    assert np.array_equal(result.nuclei == 1, nuclei == 3)
    assert np.array_equal(result.nuclei == 2, (nuclei == 5) & (cells == 2))  # clipped
    assert result.nuclei.dtype == np.int32 and result.cells.dtype == np.int32
    assert_contract(result.nuclei, result.cells)


def test_a_nucleus_over_two_cells_belongs_to_the_one_it_overlaps_most():
    cells = np.zeros((20, 40), np.int32)
    _box(cells, 1, 0, 20, 0, 20)
    _box(cells, 2, 0, 20, 20, 40)
    nuclei = np.zeros_like(cells)
    _box(nuclei, 1, 5, 15, 12, 22)   # 8 columns in cell 1, 2 in cell 2
    _box(nuclei, 2, 5, 15, 30, 35)   # cell 2's own nucleus
    result = pair_objects(nuclei, cells)
    assert result.cell_source.tolist() == [1, 2]
    assert result.removed["nuclei_clipped"] == 1
    assert np.count_nonzero(result.nuclei == 1) == 80
    assert_contract(result.nuclei, result.cells)


def test_pairing_drops_objects_over_max_size_and_their_partners():
    cells = np.zeros((30, 60), np.int32)
    nuclei = np.zeros_like(cells)
    _box(cells, 1, 0, 30, 0, 30)     # 900 px: too large
    _box(cells, 2, 0, 10, 40, 50)    # 100 px
    _box(nuclei, 1, 10, 15, 10, 15)
    _box(nuclei, 2, 2, 8, 42, 48)
    result = pair_objects(nuclei, cells, max_size=500)
    assert result.removed["cells_removed_max_size"] == 1
    assert result.removed["nuclei_removed_no_cell"] == 1
    assert result.nucleus_source.tolist() == [2] and result.nuclei.max() == 1
    assert remove_large(cells, None)[1] == 0 and remove_large(cells, 99)[1] == 2


def test_pairing_of_empty_images():
    empty = np.zeros((8, 8), np.int32)
    result = pair_objects(empty, empty)
    assert result.nuclei.max() == 0 and result.cells.max() == 0
    assert set(result.removed.values()) == {0}


# --------------------------------------------------------------------------------------------
# config and staging (no inference)
# --------------------------------------------------------------------------------------------


def test_schema_section_equals_the_method_defaults():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    segmentation = schema["properties"]["segmentation"]["properties"]
    section = segmentation["cellpose"]["properties"]
    assert {k: v["default"] for k, v in section.items()} == get_method("cellpose").defaults
    assert DEFAULT_PARAMS["cellpose"] == get_method("cellpose").defaults
    assert "cellpose" in segmentation["method"]["enum"]


def test_importing_the_package_loads_no_torch():
    import subprocess
    import sys

    code = "import sys, plateflow.segmentation; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_staging_offline_without_a_file_says_how_to_stage_one(tmp_path):
    model = {"name": "cpsam", "source": None, "sha256": "a" * 64}
    with pytest.raises(ModelStagingError, match="Copy the weights file to '.*cpsam'"):
        stage_model(model, tmp_path / "cache" / "cpsam")
    with pytest.raises(ModelStagingError, match="sha256 is not set"):
        stage_model({**model, "sha256": None}, tmp_path / "cache" / "cpsam")
    # a file a lab copied into the cache by hand is verified and kept
    staged = tmp_path / "cache" / "cpsam"
    staged.parent.mkdir()
    staged.write_bytes(b"weights copied by hand")
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    assert stage_model({**model, "sha256": digest}, staged) == staged
    with pytest.raises(ModelStagingError, match="expected"):
        stage_model(model, staged)


def test_a_job_checks_the_staged_file_before_loading(tmp_path):
    with pytest.raises(ModelStagingError, match="no model weights.*segmentation.model.name"):
        check_staged(None)
    with pytest.raises(ModelStagingError, match="no staged weights file.*never download"):
        check_staged(tmp_path / "cpsam")
    path = tmp_path / "cpsam"
    path.write_bytes(b"x")
    with pytest.raises(ModelStagingError, match="segmentation.model.sha256 is 0000"):
        check_staged(path, sha256="0" * 64)
    assert check_staged(path, sha256=hashlib.sha256(b"x").hexdigest()) == path


# --------------------------------------------------------------------------------------------
# real Cellpose: random weights written by the test, inference on the CPU
# --------------------------------------------------------------------------------------------


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


#: bfloat16 is 3x faster than float32 on CPUs with AMX / AVX512-BF16, much slower without
BF16 = _cpu_has_bf16()
#: Random weights find no object at Cellpose's defaults: keep every pixel above -1 and every
#: flow, so that label validity is tested on many (meaningless) objects.
TEST_CONFIG = {"flow_threshold": 0.0, "cellprob_threshold": -1.0, "min_size": 15,
               "bf16": BF16, "batch_size": 8, "sites_per_call": 2}


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """Cellpose-SAM weights with random values (the real architecture, ~1.2 GB)."""
    pytest.importorskip("cellpose.models",
                        reason="cellpose is not installed (pip install -e '.[cellpose]')")
    import torch
    from cellpose.vit import CPSAM

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "cpsam-random"
    torch.save(CPSAM().state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _sites(n=2, size=256):
    """Sites with disk nuclei and larger disk cells, different per site."""
    sites = []
    yy, xx = np.mgrid[:size, :size]
    for seed in range(n):
        rng = np.random.default_rng(seed)
        image = rng.normal(0.02, 0.005, (3, size, size)).astype(np.float32)
        for cy, cx in rng.integers(20, size - 20, (12, 2)):
            r2 = (yy - cy) ** 2 + (xx - cx) ** 2
            image[0][r2 < 64] = 0.5
            image[1][r2 < 400] += 0.2
            image[2][(r2 < 300) & (rng.random((size, size)) < 0.1)] += 0.3
        sites.append(SiteImage(np.clip(image, 0, 1), CHANNELS))
    return sites


def _method(weights, digest, **config):
    cls = get_method("cellpose")
    return cls({**TEST_CONFIG, **config}, nuclei_channel="DNA", cells_channel="Actin",
               weights=weights,
               model={"name": "cpsam-random", "source": str(weights), "sha256": digest})


@pytest.fixture(scope="module")
def batch(random_weights):
    """Two sites through one loaded model; every eval call recorded (the arrays as passed)."""
    path, digest = random_weights
    method = _method(path, digest)
    method.load()
    calls = []
    original = method.net.eval

    def spy(x, **kwargs):
        x_passed = np.array(x, copy=True)  # eval normalises x in place
        output = original(x, **kwargs)
        calls.append((x_passed, kwargs, output))
        return output

    method.net.eval = spy
    sites = _sites()
    results = method.segment_batch(sites)
    return {"method": method, "sites": sites, "results": results, "calls": calls,
            "digest": digest, "path": path}


def test_the_model_is_built_once_from_the_staged_file_on_the_cpu(batch):
    method = batch["method"]
    net = method.net
    assert type(net).__name__ == "CellposeModel" and method.device == "cpu"
    assert net.pretrained_model == str(batch["path"].resolve())
    method.load()
    assert method.net is net


def test_labels_have_the_contract_shapes_and_dtypes(batch):
    for result in batch["results"]:
        assert result.method == "cellpose"
        for labels in (result.nuclei, result.cells, result.cytoplasm):
            assert labels.shape == (256, 256) and labels.dtype == np.int32
        assert result.n_objects > 0  # random weights still give (meaningless) objects
        assert_contract(result.nuclei, result.cells)
        assert np.array_equal(result.cytoplasm, np.where(result.nuclei > 0, 0, result.cells))
        info = result.info
        assert info["device"] == "cpu" and info["n_nuclei_found"] >= result.n_objects
        assert info["n_nuclei_found"] - result.n_objects == (
            info["nuclei_removed_no_cell"] + info["nuclei_removed_extra_in_cell"])


def test_confidence_columns_per_object(batch):
    for result in batch["results"]:
        assert set(result.objects) == {
            "Nuclei_Segmentation_Probability", "Nuclei_Segmentation_FlowError",
            "Cells_Segmentation_Probability", "Cells_Segmentation_FlowError"}
        for name, values in result.objects.items():
            assert values.shape == (result.n_objects,) and values.dtype == np.float32
            assert np.isfinite(values).all(), name
            if name.endswith("Probability"):
                assert (values > 0).all() and (values < 1).all()
            else:
                assert (values >= 0).all()


def test_weights_hash_is_recorded(batch):
    for result in batch["results"]:
        assert result.weights_sha256 == batch["digest"]
        assert result.model == "cpsam-random"


def test_channels_are_mapped_by_name_and_sites_batched(batch):
    (nuclei_x, nuclei_kw, _), (cells_x, cells_kw, _) = batch["calls"]  # one per compartment
    dna = np.stack([s.plane("DNA", key="") for s in batch["sites"]])
    actin = np.stack([s.plane("Actin", key="") for s in batch["sites"]])
    assert nuclei_x.shape == cells_x.shape == (2, 256, 256, 3)
    assert np.array_equal(nuclei_x[..., 0], dna) and not nuclei_x[..., 1:].any()
    assert np.array_equal(cells_x[..., 0], actin) and np.array_equal(cells_x[..., 1], dna)
    assert not cells_x[..., 2].any()  # Mito is never used
    for kwargs in (nuclei_kw, cells_kw):
        assert kwargs["channel_axis"] == 3 and kwargs["batch_size"] == 8
        assert kwargs["flow_threshold"] == 0.0 and kwargs["cellprob_threshold"] == -1.0
        assert kwargs["min_size"] == 15 and kwargs["diameter"] is None
    assert batch["method"].sites_per_call == 2


def test_the_batch_job_gives_the_same_labels_again(batch, tmp_path):
    """Determinism, through the real batch job: a fresh model, on the first site alone, finds
    the same nuclei as in the batch of two (nuclei only, to spare a network pass: without a
    cells channel every nucleus is kept, in the model's own numbering)."""
    from plateflow.segmentation.run import segment

    site = batch["sites"][0]
    pre = tmp_path / "pre"
    write_stack(new_site_path(pre, "B02", "1", ".tiff"), site.image, metadata={
        "plate": "P", "well": "B02", "site": "1", "channels": list(CHANNELS),
        "image_sha256": "0" * 64, "lineage": {"correct_illumination": "abc"}})
    params = copy.deepcopy(DEFAULT_PARAMS)
    params.update(method="cellpose", cells_channel=None)
    params["cellpose"].update(TEST_CONFIG)
    params["model"] = {"name": "cpsam-random", "source": str(batch["path"]),
                       "sha256": batch["digest"]}
    out = tmp_path / "labels"
    assert segment(sites=["B02/1"], preprocessed_dir=pre, params=params, out_dir=out,
                   weights=batch["path"]) == 1
    labels, meta = read_stack(site_path(out, "B02", "1", ".tiff"))
    masks_in_batch = batch["calls"][0][2][0][0]  # nuclei call -> masks -> first site
    assert masks_in_batch.max() > 0
    assert np.array_equal(labels[0], masks_in_batch)
    assert_contract(labels[0], labels[1])
    assert meta["segmentation"]["weights_sha256"] == batch["digest"]
    assert meta["segmentation"]["info"]["nuclei_removed_no_cell"] == 0
    assert set(meta["objects"]) == {"Nuclei_Segmentation_Probability",
                                    "Nuclei_Segmentation_FlowError"}
    assert len(meta["objects"]["Nuclei_Segmentation_Probability"]) == masks_in_batch.max()


def test_missing_or_wrong_weights_are_refused_and_never_downloaded(random_weights, tmp_path,
                                                                   monkeypatch):
    from cellpose import utils

    downloads = []
    monkeypatch.setattr(utils, "download_url_to_file", lambda *a, **k: downloads.append(a))
    path, digest = random_weights
    missing = _method(tmp_path / "cpsam", digest)
    with pytest.raises(ModelStagingError, match="no staged weights file.*stage_model"):
        missing.load()
    wrong = _method(path, "0" * 64)
    with pytest.raises(ModelStagingError, match="segmentation.model.sha256 is 0000"):
        wrong.load()
    assert missing.net is None and wrong.net is None
    assert downloads == []


def test_the_batch_job_hands_the_configured_hash_to_the_method(tmp_path):
    from plateflow.segmentation import build_method

    weights = tmp_path / "cpsam"
    weights.write_bytes(b"weights copied into the cache by hand")
    params = copy.deepcopy(DEFAULT_PARAMS)
    params.update(method="cellpose", model={"name": "cpsam", "source": None, "sha256": "0" * 64})
    method = build_method(params, weights=weights)
    assert method.model_config == params["model"]
    with pytest.raises(ModelStagingError, match="segmentation.model.sha256 is 0000"):
        method.load()


def test_cells_without_a_cells_channel_are_grown_nuclei():
    """The no-cells-channel path on hand-made model outputs (no network)."""
    pytest.importorskip("cellpose", reason="cellpose is not installed")
    import torch

    method = get_method("cellpose")({"cell_expansion_px": 3, "max_size": 150},
                                    nuclei_channel="DNA")
    method.net = type("Net", (), {"device": torch.device("cpu")})()
    masks = np.zeros((40, 40), np.uint16)
    _box(masks, 1, 5, 15, 5, 15)       # 100 px
    _box(masks, 2, 20, 38, 20, 38)     # 324 px: over max_size
    logits = np.full((40, 40), 2.0, np.float32)
    flows = np.zeros((2, 40, 40), np.float32)
    result = method._site_result((masks, flows, logits), None)
    assert result.n_objects == 1 and result.info["nuclei_removed_max_size"] == 1
    assert np.count_nonzero(result.cells == 1) == 16 * 16 - 4 * 5  # grown by 3 px, round corners
    assert set(result.objects) == {"Nuclei_Segmentation_Probability",
                                   "Nuclei_Segmentation_FlowError"}
    assert result.objects["Nuclei_Segmentation_Probability"][0] == pytest.approx(
        1 / (1 + np.exp(-2.0)))
    # zero network flows: the error is the mean squared length of the mask's own unit flows
    assert 0 < result.objects["Nuclei_Segmentation_FlowError"][0] <= 1.0


# --------------------------------------------------------------------------------------------
# the workflow plans Cellpose jobs after staging (dry runs, no inference)
# --------------------------------------------------------------------------------------------


@pytest.mark.workflow
def test_the_workflow_stages_the_weights_before_segmenting(tmp_path):
    import subprocess
    import sys

    from helpers.synthetic import make_example_plate

    make_example_plate(tmp_path / "plate", plate="EXAMPLE1", size=64)
    weights = tmp_path / "fine-tuned.pt"
    weights.write_bytes(b"a lab's fine-tuned weights")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["plates"] = {"EXAMPLE1": {"folder": str(tmp_path / "plate" / "images"),
                                     "naming": "metaxpress",
                                     "platemap": str(tmp_path / "plate" / "platemap.csv")}}
    config["segmentation"].update(method="cellpose", gpu=True, model={
        "name": "fine-tuned.pt", "source": str(weights),
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()})
    (tmp_path / "config").mkdir()

    def dry_run():
        (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        return subprocess.run(
            [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
             "--directory", str(tmp_path), "-n", "--cores", "1"],
            capture_output=True, text=True, timeout=300, check=False)

    done = dry_run()
    assert done.returncode == 0, done.stderr[-3000:]
    plan = done.stdout
    assert "stage_model" in plan and "resources/models/fine-tuned.pt" in plan
    assert "segment" in plan
    config["segmentation"]["model"]["sha256"] = None
    done = dry_run()
    assert done.returncode != 0
    assert "model.name and model.sha256 are not both set" in done.stdout + done.stderr
