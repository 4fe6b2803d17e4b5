"""Tests for plateflow.segmentation: the classical method on synthetic and real images, the
method registry, and the batch job (a method's load() once per batch)."""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from skimage.segmentation import expand_labels

from plateflow.core.contract import new_site_path, skipped, write_placeholder
from plateflow.core.correction import write_reference
from plateflow.core.imageio import read_stack, sha256_file, sha256_site, write_stack
from plateflow.core.params import params_hash
from plateflow.segmentation import (
    DEFAULT_PARAMS,
    METHODS,
    Segmentation,
    SegmentationMethod,
    SiteImage,
    build_method,
    get_method,
    register,
)
from plateflow.segmentation import base as seg_base
from plateflow.segmentation.base import COMMON_DEFAULTS
from plateflow.segmentation.morphology import fill_holes_per_object
from plateflow.segmentation.run import segment

CHANNELS = ["DNA", "CellBody"]


def segment_site(image, channels, *, params):
    """One site through the method the config selects, as the batch job runs it."""
    method = build_method(params)
    method.load()
    return method.segment(SiteImage(image, channels))


def _disk_mask(shape, center, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def _site(shape, nuclei, cells=(), *, noise=0.01, seed=0):
    """(2, Y, X) float32 image: DNA with disks ``nuclei`` [(cy, cx, r, value)], cell body with
    disks ``cells``, both on a 0.02 background with Gaussian noise."""
    rng = np.random.default_rng(seed)
    image = np.full((2, *shape), 0.02, np.float32)
    for cy, cx, r, value in nuclei:
        image[0][_disk_mask(shape, (cy, cx), r)] = value
    for cy, cx, r, value in cells:
        plane = image[1]
        plane[_disk_mask(shape, (cy, cx), r)] = np.maximum(
            plane[_disk_mask(shape, (cy, cx), r)], value
        )
    image += rng.normal(0, noise, image.shape).astype(np.float32)
    return np.clip(image, 0, 1)


def _shrunk(nuclei):
    """Nucleus pixels whose 8 neighbours are in the same nucleus (separate disks here): what
    is left after CellProfiler removes the outline (centrosome's ``outline``)."""
    return ndi.binary_erosion(nuclei > 0, structure=np.ones((3, 3)), border_value=0)


def _params(**classical):
    params = copy.deepcopy(DEFAULT_PARAMS)
    params["classical"].update(classical)
    return params


GRID_CENTERS = [(40 + 60 * i, 40 + 60 * j) for i in range(4) for j in range(4)]


@pytest.fixture(scope="module")
def grid_site():
    nuclei = [(cy, cx, 10, 0.5) for cy, cx in GRID_CENTERS]
    cells = [(cy, cx, 22, 0.3) for cy, cx in GRID_CENTERS]
    return _site((280, 280), nuclei, cells)


def test_counts_separate_nuclei_and_labels_are_consecutive(grid_site):
    seg = segment_site(grid_site, CHANNELS, params=_params())
    assert isinstance(seg, Segmentation)
    assert seg.method == "classical" and seg.model is None and seg.weights_sha256 is None
    for lab in (seg.nuclei, seg.cells, seg.cytoplasm):
        assert lab.dtype == np.int32 and lab.shape == grid_site.shape[1:]
    assert seg.n_objects == 16
    assert set(np.unique(seg.nuclei)) == set(range(17))
    # each nucleus sits on one true disk and has about its area (pi * 10^2 = 314); Li's
    # threshold (the default) sits low on these sharp disks blurred by the smoothing, so its
    # nuclei are about one pixel wider (measured +19 %), Otsu's match the disks
    areas = np.bincount(seg.nuclei.ravel())[1:]
    assert np.all(np.abs(areas - np.pi * 100) < 0.25 * np.pi * 100)
    otsu = segment_site(grid_site, CHANNELS, params=_params(threshold_method="otsu"))
    areas = np.bincount(otsu.nuclei.ravel())[1:]
    assert np.all(np.abs(areas - np.pi * 100) < 0.15 * np.pi * 100)
    for cy, cx in GRID_CENTERS:
        assert seg.nuclei[cy, cx] > 0
    # the estimated typical diameter (auto) is the disks' (20 px)
    assert 17 <= seg.info["nucleus_diameter"] <= 24


def test_touching_nuclei_are_split():
    # two pairs of overlapping disks (centres 1.5 radii apart) and one single disk
    nuclei = [(60, 50, 12, 0.6), (60, 68, 12, 0.6), (150, 60, 11, 0.5), (168, 60, 11, 0.5)]
    nuclei += [(110, 150, 12, 0.6)]
    image = _site((220, 220), nuclei)
    for declump in ("shape", "intensity"):
        labels = segment_site(image, CHANNELS, params=_params(declump=declump)).nuclei
        assert labels.max() == 5, declump
        # the two halves of a pair get different labels
        assert labels[60, 44] != labels[60, 74] and labels[60, 44] > 0 and labels[60, 74] > 0
        assert labels[144, 60] != labels[174, 60] and labels[144, 60] > 0
    merged = segment_site(image, CHANNELS, params=_params(declump="none")).nuclei
    assert merged.max() == 3


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((2, 128, 128), np.float32),
        np.full((2, 128, 128), 0.3, np.float32),
        np.clip(np.random.default_rng(1).normal(0.1, 0.02, (2, 128, 128)), 0, 1),
        # noise on a gradient (uneven background, no objects)
        np.clip(
            np.random.default_rng(2).normal(0.05, 0.01, (2, 128, 128))
            + np.linspace(0, 0.05, 128)[None, None, :],
            0,
            1,
        ),
    ],
    ids=["zeros", "constant", "noise", "noise+gradient"],
)
def test_blank_image_gives_no_objects(image):
    params = _params()
    params["cells_channel"] = "CellBody"
    seg = segment_site(image.astype(np.float32), CHANNELS, params=params)
    assert seg.n_objects == 0
    assert not seg.nuclei.any() and not seg.cells.any() and not seg.cytoplasm.any()
    assert seg.info["nuclei_threshold"] is None


def test_single_nucleus_on_noise_is_found():
    image = _site((128, 128), [(64, 64, 10, 0.3)], noise=0.02)
    assert segment_site(image, CHANNELS, params=_params()).n_objects == 1


def test_min_threshold_and_correction_bound_the_threshold():
    image = _site((160, 160), [(50, 50, 10, 0.3), (110, 110, 10, 0.6)], noise=0.002)
    default = segment_site(image, CHANNELS, params=_params())
    assert default.n_objects == 2
    strict = segment_site(image, CHANNELS, params=_params(min_threshold=0.45))
    assert strict.n_objects == 1 and strict.nuclei[110, 110] == 1
    assert strict.info["nuclei_threshold"] == pytest.approx(0.45)
    raw = default.info["nuclei_threshold"]
    corrected = segment_site(image, CHANNELS, params=_params(threshold_correction=1.5))
    assert corrected.info["nuclei_threshold"] == pytest.approx(1.5 * raw)
    # a correction above the brightest pixel leaves nothing
    assert segment_site(image, CHANNELS, params=_params(threshold_correction=50)).n_objects == 0


def test_size_filter_drops_specks_and_giants():
    nuclei = [(40, 40, 10, 0.5), (40, 120, 2, 0.5), (140, 100, 45, 0.5)]
    image = _site((220, 220), nuclei, noise=0.002)
    params = _params(nucleus_diameter_min=8, nucleus_diameter_max=40, declump="none")
    labels = segment_site(image, CHANNELS, params=params).nuclei
    assert labels.max() == 1 and labels[40, 40] == 1


def test_exclude_border():
    image = _site((128, 128), [(64, 64, 10, 0.5), (5, 64, 10, 0.5)])
    assert segment_site(image, CHANNELS, params=_params()).n_objects == 2
    seg = segment_site(image, CHANNELS, params=_params(exclude_border=True))
    assert seg.n_objects == 1 and seg.nuclei[64, 64] == 1
    # the discarded border nucleus keeps its territory: the kept cell does not grow into it
    assert seg.cells[8, 64] == 0


def test_holes_inside_a_nucleus_are_filled():
    shape = (100, 100)
    image = np.full((2, *shape), 0.02, np.float32)
    ring = _disk_mask(shape, (50, 50), 14) & ~_disk_mask(shape, (50, 50), 3)  # dark nucleolus
    image[0][ring] = 0.6
    labels = segment_site(image, CHANNELS, params=_params(smoothing_sigma=0)).nuclei
    assert labels.max() == 1 and labels[50, 50] == 1
    unfilled = segment_site(
        image, CHANNELS, params=_params(smoothing_sigma=0, fill_holes=False)
    ).nuclei
    assert unfilled[50, 50] == 0


def test_hole_between_two_objects_is_not_filled():
    labels = np.zeros((20, 20), np.int32)
    labels[5:15, 5:10] = 1
    labels[5:15, 10:15] = 2
    labels[9:11, 9:11] = 0  # hole touching both objects
    out = fill_holes_per_object(labels)
    assert (out[9:11, 9:11] == 0).all()
    labels[9:11, 6:8] = 0  # hole inside object 1 only
    assert (fill_holes_per_object(labels)[9:11, 6:8] == 1).all()


def test_cells_from_channel_contain_their_nucleus(grid_site):
    params = _params()
    params["cells_channel"] = "CellBody"
    seg = segment_site(grid_site, CHANNELS, params=params)
    assert seg.n_objects == 16
    nuc = seg.nuclei > 0
    # every nucleus pixel is in the cell with the same label
    assert np.array_equal(seg.cells[nuc], seg.nuclei[nuc])
    # same label set, no cell without a nucleus
    assert set(np.unique(seg.cells)) == set(np.unique(seg.nuclei))
    # cells follow the cell-body disks (r = 22 -> area 1521)
    cell_areas = np.bincount(seg.cells.ravel())[1:]
    assert np.all(np.abs(cell_areas - np.pi * 22**2) < 0.15 * np.pi * 22**2)
    # cytoplasm = cells minus the nuclei shrunk by 1 px (CellProfiler), same labels
    assert np.array_equal(seg.cytoplasm, np.where(_shrunk(seg.nuclei), 0, seg.cells))
    assert seg.info["cells_threshold"] is not None


def test_touching_cells_are_divided_between_nuclei():
    nuclei = [(60, 50, 8, 0.5), (60, 90, 8, 0.5)]
    cells = [(60, 50, 22, 0.3), (60, 90, 22, 0.3)]
    image = _site((120, 140), nuclei, cells)
    params = _params()
    params["cells_channel"] = "CellBody"
    seg = segment_site(image, CHANNELS, params=params)
    assert seg.n_objects == 2
    assert seg.cells[60, 35] == seg.nuclei[60, 50] and seg.cells[60, 105] == seg.nuclei[60, 90]


def test_cell_body_without_nucleus_is_not_a_cell():
    nuclei = [(50, 50, 9, 0.5)]
    cells = [(50, 50, 20, 0.3), (50, 150, 20, 0.3)]  # second cell body has no nucleus
    image = _site((100, 200), nuclei, cells)
    params = _params()
    params["cells_channel"] = "CellBody"
    seg = segment_site(image, CHANNELS, params=params)
    assert seg.n_objects == 1
    assert seg.cells[50, 150] == 0
    assert set(np.unique(seg.cells)) == {0, 1}


def test_cells_without_channel_are_expanded_nuclei(grid_site):
    params = _params(cell_expansion_px=7)
    assert params["cells_channel"] is None
    seg = segment_site(grid_site, CHANNELS, params=params)
    assert np.array_equal(seg.cells, expand_labels(seg.nuclei, distance=7))
    assert np.array_equal(seg.cytoplasm, np.where(_shrunk(seg.nuclei), 0, seg.cells))
    # expansion by 7 px around r~10 disks, nucleus shrunk by 1 px: cytoplasm ring area
    # ~ pi*(17^2 - 9^2) = 653
    ring = np.bincount(seg.cytoplasm.ravel())[1:]
    assert np.all(np.abs(ring - np.pi * (17**2 - 9**2)) < 0.2 * np.pi * (17**2 - 9**2))
    plain = segment_site(grid_site, CHANNELS, params=_params(cell_expansion_px=7,
                                                            cytoplasm_shrink_px=0))
    assert np.array_equal(plain.cytoplasm, np.where(plain.nuclei > 0, 0, plain.cells))


def test_zero_expansion_gives_empty_cytoplasm(grid_site):
    seg = segment_site(grid_site, CHANNELS, params=_params(cell_expansion_px=0))
    assert np.array_equal(seg.cells, seg.nuclei)
    # only the nuclei's outer 1-px rim is left (CellProfiler shrinks nuclei before subtracting)
    assert np.array_equal(seg.cytoplasm > 0, (seg.nuclei > 0) & ~_shrunk(seg.nuclei))
    plain = segment_site(grid_site, CHANNELS,
                         params=_params(cell_expansion_px=0, cytoplasm_shrink_px=0))
    assert not plain.cytoplasm.any()


def test_default_params_are_not_modified(grid_site):
    before = copy.deepcopy(DEFAULT_PARAMS)
    segment_site(grid_site, CHANNELS, params=DEFAULT_PARAMS)
    assert DEFAULT_PARAMS == before


def test_unknown_method_names_allowed_ones(grid_site):
    params = _params()
    params["method"] = "stardust"
    with pytest.raises(ValueError, match="classical"):
        segment_site(grid_site, CHANNELS, params=params)


def test_unknown_channel_and_bad_shapes_are_explained(grid_site):
    params = _params()
    params["nuclei_channel"] = "Hoechst"
    with pytest.raises(ValueError, match="Hoechst"):
        segment_site(grid_site, CHANNELS, params=params)
    with pytest.raises(ValueError, match="channel"):
        segment_site(grid_site, ["DNA"], params=_params())
    with pytest.raises(ValueError, match="Y, X"):
        segment_site(grid_site[0], CHANNELS, params=_params())
    with pytest.raises(ValueError, match="declump"):
        segment_site(grid_site, CHANNELS, params=_params(declump="magic"))


def test_deterministic(grid_site):
    a = segment_site(grid_site, CHANNELS, params=_params())
    b = segment_site(grid_site, CHANNELS, params=_params())
    assert np.array_equal(a.nuclei, b.nuclei) and np.array_equal(a.cells, b.cells)


def test_method_options_are_checked_when_the_method_is_built():
    params = _params()
    params["classical"]["smoothing"] = 2.0  # a typo of smoothing_sigma
    with pytest.raises(ValueError, match="smoothing_sigma"):
        build_method(params)
    with pytest.raises(ValueError, match="otsu, li, triangle"):
        build_method(_params(cells_threshold_method="magic"))
    with pytest.raises(ValueError, match="nucleus_diameter"):
        build_method(_params(nucleus_diameter="big"))
    with pytest.raises(ValueError, match="nucleus_diameter_min"):
        build_method(_params(nucleus_diameter_min=0))


def test_default_params_hold_every_method_section():
    assert set(DEFAULT_PARAMS) == set(COMMON_DEFAULTS) | set(METHODS)
    assert DEFAULT_PARAMS["classical"] == get_method("classical").defaults


# --------------------------------------------------------------------------------------------
# the batch job: run.segment
# --------------------------------------------------------------------------------------------


def _write_batch(folder: Path, images: dict, *, skip=()) -> list[str]:
    """Corrected stacks of a batch as the correction stage writes them; returns the site ids."""
    ids = []
    for i, (well_site, image) in enumerate(images.items()):
        well, site = well_site.split("/")
        meta = {"plate": "P", "well": well, "site": site, "channels": CHANNELS,
                "image_sha256": f"{i:064x}", "lineage": {"correct_illumination": "abc"}}
        path = new_site_path(folder, well, site, ".tiff")
        if well_site in skip:
            write_placeholder(path, pages=len(CHANNELS), dtype=np.float32, reason="QC fail: blur",
                              metadata=meta)
        else:
            write_stack(path, image, metadata=meta)
        ids.append(well_site)
    return ids


@pytest.fixture
def counting_method(monkeypatch, tmp_path):
    """A method registered for one test that counts its load() and segment() calls and loads
    "weights" from a file."""
    monkeypatch.setattr(seg_base, "METHODS", dict(seg_base.METHODS))  # unregistered afterwards
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"not a real model")

    @register("counting")
    class Counting(SegmentationMethod):
        defaults: ClassVar[dict] = {"level": 0.25}
        calls: ClassVar[dict] = {"load": 0, "segment": 0}

        def load(self):
            self.calls["load"] += 1
            self.record_weights(weights, name="toy-model")

        def segment(self, site):
            self.calls["segment"] += 1
            nuclei = ndi.label(site.plane(self.nuclei_channel, key="nuclei_channel")
                               > self.config["level"])[0]
            return self.result(nuclei, expand_labels(nuclei, 3))

    params = {**copy.deepcopy(DEFAULT_PARAMS), "method": "counting", "counting": {"level": 0.3}}
    return Counting, params, hashlib.sha256(weights.read_bytes()).hexdigest()


def test_batch_loads_the_method_once(counting_method, grid_site, tmp_path):
    method, params, weights_sha = counting_method
    sites = _write_batch(tmp_path / "pre", {"B02/1": grid_site, "B02/2": grid_site[:, ::-1],
                                            "B03/1": grid_site[:, :, ::-1]})
    n = segment(sites=sites, preprocessed_dir=tmp_path / "pre", params=params,
                out_dir=tmp_path / "seg")
    assert n == 3
    assert method.calls == {"load": 1, "segment": 3}
    labels, meta = read_stack(tmp_path / "seg" / "B03" / "s1.tiff")
    assert labels.shape == (3, *grid_site.shape[1:]) and labels.dtype == np.int32
    assert labels[0].max() == 16
    assert meta["compartments"] == ["Nuclei", "Cells", "Cytoplasm"]
    info = meta["segmentation"].pop("info")
    assert info["n_nuclei"] == 16 and info["median_nucleus_area"] > 0
    assert meta["segmentation"] == {"method": "counting", "model": "toy-model",
                                    "weights_sha256": weights_sha}
    assert meta["lineage"] == {"correct_illumination": "abc", "segment": params_hash(params)}


def test_skipped_sites_stay_placeholders_and_load_nothing(counting_method, grid_site, tmp_path):
    method, params, _ = counting_method
    sites = _write_batch(tmp_path / "pre", {"B02/1": grid_site, "B02/2": grid_site},
                         skip={"B02/1", "B02/2"})
    assert segment(sites=sites, preprocessed_dir=tmp_path / "pre", params=params,
                   out_dir=tmp_path / "seg") == 0
    assert method.calls == {"load": 0, "segment": 0}  # no site to segment: no model loaded
    stack, meta = read_stack(tmp_path / "seg" / "B02" / "s2.tiff")
    assert stack.shape == (3, 1, 1) and stack.dtype == np.int32
    assert skipped(meta) == "QC fail: blur"
    assert meta["segmentation"] == {"method": None, "model": None, "weights_sha256": None}


def test_batch_job_gives_the_method_result_also_from_float16(grid_site, tmp_path):
    params = _params()
    params["cells_channel"] = "CellBody"
    half = grid_site.astype(np.float16)
    sites = _write_batch(tmp_path / "pre", {"C04/1": grid_site, "C04/2": half})
    assert segment(sites=sites, preprocessed_dir=tmp_path / "pre", params=params,
                   out_dir=tmp_path / "seg") == 2
    for site, image in (("s1", grid_site), ("s2", half.astype(np.float32))):
        expected = segment_site(image, CHANNELS, params=params)
        labels, meta = read_stack(tmp_path / "seg" / "C04" / f"{site}.tiff")
        assert np.array_equal(labels, np.stack([expected.nuclei, expected.cells,
                                                expected.cytoplasm]))
        info = meta["segmentation"].pop("info")
        assert info == {**info, **expected.info}
        assert info["n_nuclei"] == expected.n_objects
        assert meta["segmentation"] == {"method": "classical", "model": None,
                                        "weights_sha256": None}


def test_batch_job_reads_reference_storage(grid_site, tmp_path):
    """The default storage keeps no pixels: the stage corrects the raw files on reading."""
    raw = np.round(grid_site * 60000).astype(np.uint16)
    files = {}
    for name, plane in zip(CHANNELS, raw):
        files[name] = str(tmp_path / f"raw_{name}.tif")
        tifffile.imwrite(files[name], plane)
    flatfield = tmp_path / "flatfield.tiff"
    write_stack(flatfield, np.ones(raw.shape, np.float32), metadata={"channels": CHANNELS})
    meta = {"plate": "P", "well": "D05", "site": "1", "channels": CHANNELS,
            "image_sha256": sha256_site(files, CHANNELS), "lineage": {}}
    write_reference(new_site_path(tmp_path / "pre", "D05", "1", ".tiff"), files=files,
                    channels=CHANNELS, flatfield=flatfield, flatfield_sha256=sha256_file(flatfield),
                    dtype_max=65535, camera_offset=0.0, metadata=meta)
    params = _params()
    assert segment(sites=["D05/1"], preprocessed_dir=tmp_path / "pre", params=params,
                   out_dir=tmp_path / "seg") == 1
    labels, _ = read_stack(tmp_path / "seg" / "D05" / "s1.tiff")
    expected = segment_site(raw.astype(np.float32) * np.float32(1 / 65535), CHANNELS,
                            params=params)
    assert labels[0].max() == 16 and np.array_equal(labels[0], expected.nuclei)


# --------------------------------------------------------------------------------------------
# real data: CellProfiler ExampleHuman (HT29 cells, 512x512 uint8)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_data() -> Path:
    real = os.environ.get("PLATEFLOW_REAL_DATA")
    if not real:
        pytest.skip("PLATEFLOW_REAL_DATA is not set: real-data tests need ../shared/data")
    return Path(real)


@pytest.mark.realdata
def test_examplehuman_nuclei_match_cellprofiler(real_data):
    pd = pytest.importorskip("pandas")
    tifffile = pytest.importorskip("tifffile")
    folder = real_data / "examplehuman-cellprofiler"
    dna = tifffile.imread(folder / "AS_09125_050116030001_D03f00d0.tif")
    assert dna.dtype == np.uint8
    image = (dna.astype(np.float32) / 255.0)[None]
    cp_count = int(pd.read_csv(folder / "Image.csv")["Count_Nuclei"].iloc[0])
    cp_median_area = float(pd.read_csv(folder / "Nuclei.csv")["AreaShape_Area"].median())
    assert cp_count == 289

    params = copy.deepcopy(DEFAULT_PARAMS)
    seg = segment_site(image, ["DNA"], params=params)
    # defaults keep the border nuclei that CellProfiler's pipeline discards (measured: 326,
    # +12.8 %, of which 32 touch the border)
    assert abs(seg.n_objects - cp_count) <= 0.15 * cp_count, seg.n_objects
    assert seg.info["removed_border"] == 0
    # defaults with CellProfiler's border rule (measured: 294, +1.7 %)
    params["classical"]["exclude_border"] = True
    seg_nb = segment_site(image, ["DNA"], params=params)
    assert abs(seg_nb.n_objects - cp_count) <= 0.10 * cp_count, seg_nb.n_objects
    assert seg_nb.info["removed_border"] > 20
    # Li's minimum cross-entropy (the default, CellProfiler's method): sizes agree (measured
    # median-area ratio 1.09)
    ratio = np.median(np.bincount(seg_nb.nuclei.ravel())[1:]) / cp_median_area
    assert 0.9 <= ratio <= 1.2, ratio
    # the typical diameter is estimated from the image (measured 11.6 px; CellProfiler's
    # nuclei: median equivalent diameter 12.1 px)
    assert 10 <= seg.info["nucleus_diameter"] <= 14
    # Otsu's threshold (0.141) sits above CellProfiler's (0.099): smaller nuclei
    params["classical"]["threshold_method"] = "otsu"
    seg_otsu = segment_site(image, ["DNA"], params=params)
    ratio_otsu = np.median(np.bincount(seg_otsu.nuclei.ravel())[1:]) / cp_median_area
    assert ratio_otsu < ratio


@pytest.mark.realdata
def test_confluent_real_field_is_not_called_blank(real_data):
    """Transfluor fields are confluent (no true background); the blank guard must not fire."""
    import tifffile

    counts = []
    for path in sorted((real_data / "transfluor-plate").glob("*f00d2.TIF"))[:8]:
        plane = tifffile.imread(path).astype(np.float32) / 255
        params = {**DEFAULT_PARAMS, "nuclei_channel": "GFP", "cells_channel": None}
        counts.append(int(segment_site(plane[None], ["GFP"], params=params).nuclei.max()))
    assert sum(c > 20 for c in counts) >= 6, counts
