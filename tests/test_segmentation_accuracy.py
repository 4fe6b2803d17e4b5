"""Accuracy of the classical segmentation against hand-annotated masks and CellProfiler, and the
behaviours behind it (automatic scale, robust thresholds, Propagation, cytoplasm, domain rules,
per-object contrast). Figures and their rationale: docs/segmentation.md; the full tables come
from bench/bench_segmentation_accuracy.py."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import tifffile
from helpers.synthetic import make_example_plate
from scipy import ndimage as ndi

from plateflow.segmentation import DEFAULT_PARAMS, SiteImage, build_method
from plateflow.segmentation.base import cytoplasm_from
from plateflow.segmentation.metrics import pooled, score
from plateflow.segmentation.propagation import propagate
from plateflow.segmentation.scale import estimate_diameter
from plateflow.segmentation.thresholds import auto_threshold

#: ExampleHuman.cppipe's IdentifyPrimary/Secondary/Tertiary settings in our terms.
CELLPROFILER_EXAMPLEHUMAN = {
    "threshold_method": "li", "nucleus_diameter": 12, "nucleus_diameter_min": 8,
    "nucleus_diameter_max": 80, "declump": "intensity", "exclude_border": True,
    "cells_threshold_method": "li", "cells_threshold_correction": 0.8,
    "cells_smoothing_sigma": 0.0, "propagation_lambda": 0.05,
}


def _method(cells=None, **classical):
    params = copy.deepcopy(DEFAULT_PARAMS)
    params["classical"].update(classical)
    params["nuclei_channel"] = "DNA"
    params["cells_channel"] = cells
    method = build_method(params)
    method.load()
    return method


def _as_float(image):
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535
    return image.astype(np.float32)


def _disks(shape, radius, spacing, value=0.5, seed=0):
    rng = np.random.default_rng(seed)
    image = np.full(shape, 0.02, np.float32)
    truth = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    n = 0
    for cy in range(spacing // 2, shape[0] - radius, spacing):
        for cx in range(spacing // 2, shape[1] - radius, spacing):
            n += 1
            disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
            image[disk] = value
            truth[disk] = n
    image = ndi.gaussian_filter(image, 1.0)
    return np.clip(image + rng.normal(0, 0.01, shape).astype(np.float32), 0, 1), truth


# --------------------------------------------------------------------------------------------
# behaviours
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("radius", "spacing", "shape"), [(4, 16, (256, 256)),
                                                         (50, 170, (520, 520))])
def test_one_default_config_serves_8_px_and_100_px_nuclei(radius, spacing, shape):
    image, truth = _disks(shape, radius, spacing)
    seg = _method().segment(SiteImage(image[None], ("DNA",)))
    assert seg.info["nucleus_diameter"] == pytest.approx(2 * radius, rel=0.25)
    s = score(truth, seg.nuclei)
    assert s["AP_50"] >= 0.95, s
    # a fixed diameter is used as given
    fixed = _method(nucleus_diameter=2 * radius).segment(SiteImage(image[None], ("DNA",)))
    assert fixed.info["nucleus_diameter"] == 2 * radius
    assert score(truth, fixed.nuclei)["AP_50"] >= 0.95


def test_diameter_estimate_ignores_specks_and_clumps():
    _, truth = _disks((256, 256), 10, 40)
    foreground = truth > 0
    rng = np.random.default_rng(3)
    specks = rng.random(foreground.shape) < 0.01  # 1-px noise specks, 650 of them
    assert estimate_diameter(foreground | specks) == pytest.approx(20, rel=0.15)
    clumped = foreground | ndi.shift(foreground, (0, 12), order=0)  # pairs of touching disks
    assert estimate_diameter(clumped) == pytest.approx(20, rel=0.15)


def test_bright_specks_do_not_pull_the_threshold_up():
    image, truth = _disks((300, 300), 8, 30, value=0.1)
    rng = np.random.default_rng(1)
    specks = rng.random(image.shape) < 0.002  # 0.2 % saturated pixels
    image[specks] = 1.0
    for method in ("otsu", "li"):
        threshold = auto_threshold(image, method=method, min_snr=0)
        assert 0.02 < threshold < 0.1, (method, threshold)
    # the triangle method suits sparse objects on a dominant background
    sparse, _ = _disks((300, 300), 5, 60, value=0.3)
    sparse += 0.05  # (no pixels clipped at 0, whose spike would be the histogram's peak)
    sparse[specks] = 1.0
    assert 0.07 < auto_threshold(sparse, method="triangle", min_snr=0) < 0.35
    seg = _method(threshold_method="otsu").segment(SiteImage(image[None], ("DNA",)))
    assert abs(seg.n_objects - truth.max()) <= 2


def test_dim_nuclei_beside_bright_ones_are_found():
    # bright nuclei, and a field half of nuclei at 12 % of their contrast, below the global
    # threshold: the adaptive component (local mid-range) finds most of the dim ones
    # (measured AP@0.5 0.67; the global threshold alone 0.33, the bright nuclei only)
    image, truth = _disks((200, 400), 8, 40, value=0.6)
    dim = truth > 0
    dim[:100] = False
    image[dim] = (image[dim] - 0.02) * 0.12 + 0.02
    seg = _method().segment(SiteImage(image[None], ("DNA",)))
    assert score(truth, seg.nuclei)["AP_50"] >= 0.6


def test_second_pass_measures_the_scale_from_the_objects(monkeypatch):
    # the inscribed-disk estimate is off by 2x: the objects found at that scale set it right
    from plateflow.segmentation import nuclei

    image, truth = _disks((256, 256), 6, 30)
    monkeypatch.setattr(nuclei, "estimate_diameter", lambda foreground: 24.0)
    seg = _method().segment(SiteImage(image[None], ("DNA",)))
    assert seg.info["nucleus_diameter"] == pytest.approx(12, rel=0.2)
    assert score(truth, seg.nuclei)["AP_50"] >= 0.95


def test_threshold_bounds():
    image, _ = _disks((200, 200), 8, 40, value=0.5)
    low = auto_threshold(image, min_snr=0, max_threshold=0.05)
    assert low == pytest.approx(0.05)
    assert auto_threshold(image, min_snr=0, min_threshold=0.3) == pytest.approx(0.3)
    seg = _method(max_threshold=0.05, subtract_background=False).segment(
        SiteImage(image[None], ("DNA",)))
    assert seg.info["nuclei_threshold"] == pytest.approx(0.05)


def test_domain_rules_count_what_they_remove():
    image, _ = _disks((200, 200), 8, 50)
    yy, xx = np.mgrid[:200, :200]
    image[(yy - 5) ** 2 + (xx - 100) ** 2 <= 64] = 0.5  # a nucleus cut by the border
    image[(yy - 100) ** 2 + (xx - 190) ** 2 <= 2] = 0.5  # a speck (about 13 px)
    seg = _method(exclude_border=True, nucleus_diameter=16).segment(
        SiteImage(image[None], ("DNA",)))
    assert seg.info["removed_border"] >= 1
    assert seg.info["removed_small"] >= 1
    assert seg.n_objects == 16
    big = _method(nucleus_diameter=16, nucleus_diameter_max=10).segment(
        SiteImage(image[None], ("DNA",)))
    assert big.n_objects == 0 and big.info["removed_large"] >= 16


def test_nuclei_contrast_column():
    image, _ = _disks((160, 160), 8, 40, value=0.3)
    image[:80] *= 0.5  # dim top half, bright bottom half
    seg = _method().segment(SiteImage(image[None], ("DNA",)))
    contrast = seg.objects["Nuclei_Segmentation_Contrast"]
    assert contrast.dtype == np.float32 and contrast.shape == (seg.n_objects,)
    centres = ndi.center_of_mass(seg.nuclei > 0, seg.nuclei, np.arange(1, seg.n_objects + 1))
    top = np.array([c[0] < 80 for c in centres])
    assert top.any() and (~top).any()
    assert np.all(contrast > 3)
    assert contrast[top].max() < contrast[~top].min()


def test_propagation_follows_the_cell_image_and_the_mask():
    # two cells of different brightness touching at x = 60; nuclei at x = 30 and x = 75
    image = np.zeros((60, 100), np.float32)
    image[10:50, 5:60] = 0.6
    image[10:50, 60:95] = 0.2
    seeds = np.zeros(image.shape, np.int32)
    seeds[27:33, 27:33] = 1
    seeds[27:33, 72:78] = 2
    mask = image > 0.1
    labels = propagate(image, seeds, mask, 0.05)
    # the border follows the intensity step, not the mid-point between the nuclei (52)
    assert (labels[10:50, 5:59] == 1).all() and (labels[10:50, 61:95] == 2).all()
    assert not labels[~mask].any()
    # large lambda: a Voronoi split at the mid-point
    voronoi = propagate(image, seeds, mask, 100.0)
    assert voronoi[30, 50] == 1 and voronoi[30, 55] == 2
    # the coarse solve agrees away from the border
    coarse = propagate(image, seeds, mask, 0.05, factor=2)
    assert np.mean(coarse[mask] == labels[mask]) > 0.97


def test_cytoplasm_shrinks_the_nucleus_by_one_pixel():
    nuclei = np.zeros((20, 20), np.int32)
    nuclei[5:10, 5:10] = 1
    nuclei[5:10, 10:15] = 2  # touching nuclei are shrunk apart
    cells = nuclei.copy()
    out = cytoplasm_from(cells, nuclei, shrink=1)
    assert out[6:9, 6:9].sum() == 0 and out[5, 5] == 1 and out[7, 9] == 1 and out[7, 10] == 2
    assert np.array_equal(cytoplasm_from(cells, nuclei, shrink=0), np.zeros_like(cells))


# --------------------------------------------------------------------------------------------
# accuracy: synthetic example plate, stardist's image, dsb2018, CellProfiler's ExampleHuman
# --------------------------------------------------------------------------------------------


def test_synthetic_example_accuracy(tmp_path):
    folder = make_example_plate(tmp_path, plate="ACC", size=512, sites_per_well=3)
    flat = tifffile.imread(folder / "flatfield.tif")
    method = _method(cells="ER")
    nuclei_scores, cell_scores = [], []
    for well in ("B02", "B03"):
        for site in (1, 2, 3):
            stem = f"ACC_{well}_s{site}"
            raw = [tifffile.imread(folder / "images" / f"{stem}_w{c}.tif") for c in (1, 2)]
            image = np.clip(np.stack([(r.astype(np.float32) - 100) / 65535 / f
                                      for r, f in zip(raw, flat[:2])]), 0, 1)
            seg = method.segment(SiteImage(image, ("DNA", "ER")))
            nuclei_scores.append(score(tifffile.imread(folder / "truth" / f"{stem}_nuclei.tif"),
                                       seg.nuclei))
            cell_scores.append(score(tifffile.imread(folder / "truth" / f"{stem}_cells.tif"),
                                     seg.cells))
    # measured: nuclei 0.997, cells 0.992 (target 0.90)
    assert pooled(nuclei_scores)["AP_50"] >= 0.90
    assert pooled(cell_scores)["AP_50"] >= 0.90


def test_stardist_image_accuracy():
    data = pytest.importorskip("stardist.data")
    image, truth = data.test_image_nuclei_2d(return_mask=True)
    seg = _method().segment(SiteImage(_as_float(image)[None], ("DNA",)))
    s = score(truth, seg.nuclei)
    # measured 0.763 (precision 0.91, recall 0.82); issue 9's target: 0.75
    assert s["AP_50"] >= 0.75, s
    assert seg.info["nucleus_diameter"] == pytest.approx(23.7, rel=0.2)


@pytest.mark.realdata
def test_dsb2018_accuracy_with_one_config(real_data):
    folder = real_data / "dsb2018-nuclei"
    method = _method()
    rows = []
    for path in sorted((folder / "images").glob("*.tif")):
        image = _as_float(tifffile.imread(path))
        truth = tifffile.imread(folder / "masks" / path.name)
        rows.append(score(truth, method.segment(SiteImage(image[None], ("DNA",))).nuclei))
    assert len(rows) == 53 and sum(r["N_True"] for r in rows) == 3083
    result = pooled(rows)
    # measured 0.603 (precision 0.81, recall 0.70), from 0.41 before issue 9; its target: 0.60
    # (docs/segmentation.md has the per-size table)
    assert result["AP_50"] >= 0.60, result
    assert result["Precision_50"] >= 0.80 and result["Recall_50"] >= 0.69, result


def _examplehuman(folder, classical):
    planes = [_as_float(tifffile.imread(folder / f"AS_09125_050116030001_D03f00d{i}.tif"))
              for i in (0, 2)]
    return _method(cells="CellBody", **classical).segment(
        SiteImage(np.stack(planes), ("DNA", "CellBody")))


def _matched_areas(seg, folder):
    pd = pytest.importorskip("pandas")
    nuclei = pd.read_csv(folder / "Nuclei.csv")
    cells = pd.read_csv(folder / "Cells.csv").set_index("ObjectNumber")["AreaShape_Area"]
    cyto = pd.read_csv(folder / "Cytoplasm.csv").set_index("Parent_Nuclei")["AreaShape_Area"]
    n = seg.n_objects
    centres = np.array(ndi.center_of_mass(seg.nuclei > 0, seg.nuclei, np.arange(1, n + 1)))
    ours_cells = np.bincount(seg.cells.ravel(), minlength=n + 1)[1:]
    ours_cyto = np.bincount(seg.cytoplasm.ravel(), minlength=n + 1)[1:]
    pairs = []
    for number, x, y in zip(nuclei["ObjectNumber"], nuclei["Location_Center_X"],
                            nuclei["Location_Center_Y"]):
        d = np.hypot(centres[:, 0] - y, centres[:, 1] - x)
        j = int(np.argmin(d))
        if d[j] <= 5:  # the same nucleus
            pairs.append((cells[number], ours_cells[j], cyto[number], ours_cyto[j]))
    return np.array(pairs, float), len(nuclei)


@pytest.mark.realdata
@pytest.mark.parametrize("settings", ["defaults", "cellprofiler"])
def test_examplehuman_cells_match_cellprofiler(real_data, settings):
    folder = real_data / "examplehuman-cellprofiler"
    classical = CELLPROFILER_EXAMPLEHUMAN if settings == "cellprofiler" else {}
    seg = _examplehuman(folder, classical)
    pairs, cp_count = _matched_areas(seg, folder)
    assert cp_count == 289
    if settings == "cellprofiler":
        # measured 285 (-1.4 %)
        assert abs(seg.n_objects - cp_count) <= 0.05 * cp_count, seg.n_objects
    else:
        # measured 326 (+12.8 %, issue 9's target: within 10 %): the defaults keep the border
        # nuclei that CellProfiler's pipeline discards; counted as CellProfiler counts (nuclei
        # off the border), the defaults find 294 (+1.7 %)
        assert abs(seg.n_objects - cp_count) <= 0.15 * cp_count, seg.n_objects
        edge = np.concatenate([seg.nuclei[0], seg.nuclei[-1], seg.nuclei[:, 0],
                               seg.nuclei[:, -1]])
        n_inner = seg.n_objects - len(np.unique(edge[edge > 0]))
        assert abs(n_inner - cp_count) <= 0.10 * cp_count, n_inner
    assert len(pairs) >= 0.97 * cp_count
    for cp, ours in ((pairs[:, 0], pairs[:, 1]), (pairs[:, 2], pairs[:, 3])):
        # measured: r 0.962-0.973, median |relative difference| 3.7-7.8 %
        assert np.corrcoef(cp, ours)[0, 1] >= 0.90
        assert np.median(np.abs(ours - cp) / cp) <= 0.10
    # few cells are just their nucleus (measured 3.4 % with the defaults, 10 % before issue 9's
    # Propagation; CellProfiler: none)
    n_cells = np.bincount(seg.cells.ravel(), minlength=seg.n_objects + 1)[1:]
    n_nuclei = np.bincount(seg.nuclei.ravel(), minlength=seg.n_objects + 1)[1:]
    assert np.mean(n_cells <= n_nuclei) < 0.05
