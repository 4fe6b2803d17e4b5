"""Tests of the synthetic example plate (plateflow.synthetic)."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import synthetic
from helpers.synthetic import CHANNELS, DEFECTS, PLATE_LAYOUT, make_example_plate
from scipy import ndimage as ndi
from skimage import feature, filters, measure, segmentation

SIZE = 256
SITES = 6  # more than the minimum 3, so the flat-field is recoverable from the clean sites
PLATE = "TEST-1"
OFFSET = synthetic.DEFAULT_PARAMS["camera_offset"]
NAME_RE = re.compile(r"^(?P<plate>[A-Za-z0-9-]+)_(?P<well>[A-P]\d{2})_s(?P<site>\d+)_w(?P<ch>\d)\.tif$")


@pytest.fixture(scope="module")
def plate_dir(tmp_path_factory):
    return make_example_plate(tmp_path_factory.mktemp("plate"), plate=PLATE, seed=3, size=SIZE,
                              sites_per_well=SITES)


@pytest.fixture(scope="module")
def truth(plate_dir):
    return pd.read_csv(plate_dir / "truth.csv")


def _img(plate_dir, well, site, ch):
    return tifffile.imread(plate_dir / "images" / f"{PLATE}_{well}_s{site}_{ch}.tif")


def _site(plate_dir, well, site):
    return np.stack([_img(plate_dir, well, site, ch) for ch in CHANNELS])


def _masks(plate_dir, well, site):
    stem = plate_dir / "truth" / f"{PLATE}_{well}_s{site}"
    return tifffile.imread(f"{stem}_nuclei.tif"), tifffile.imread(f"{stem}_cells.tif")


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _clean_sites(truth):
    return truth[truth.defect == "none"]


# ----------------------------------------------------------------------------- files


def test_files_exist_and_parse(plate_dir, truth):
    names = sorted(p.name for p in (plate_dir / "images").iterdir())
    assert len(names) == len(PLATE_LAYOUT) * SITES * 3
    for name in names:
        m = NAME_RE.match(name)
        assert m, name
        assert m["plate"] == PLATE and 1 <= int(m["site"]) <= SITES and m["ch"] in "123"
    for well, *_ in PLATE_LAYOUT:
        for site in range(1, SITES + 1):
            for ch in CHANNELS:
                path = plate_dir / "images" / f"{PLATE}_{well}_s{site}_{ch}.tif"
                if DEFECTS.get((well, site)) == "corrupt" and ch == synthetic.CORRUPT_CHANNEL:
                    continue
                with tifffile.TiffFile(path) as tf:
                    assert len(tf.pages) == 1
                    img = tf.pages[0].asarray()
                assert img.shape == (SIZE, SIZE) and img.dtype == np.uint16
            nuc, cells = _masks(plate_dir, well, site)
            assert nuc.dtype == np.uint16 and cells.dtype == np.uint16
            assert nuc.shape == cells.shape == (SIZE, SIZE)

    pm = pd.read_csv(plate_dir / "platemap.csv")
    assert list(pm.columns) == ["well", "role", "compound", "dose_uM"]
    assert list(pm.well) == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09"]
    assert list(pm.role[:4]) == ["negative_control"] * 2 + ["positive_control"] * 2
    assert set(pm.role[4:]) == {"treatment"}
    assert list(pm.compound) == ["DMSO"] * 2 + ["PosCtrl"] * 2 + ["CMPD-1"] * 4
    assert list(pm.dose_uM[4:]) == [0.1, 0.3, 1.0, 3.0]
    assert list(pm.dose_uM[:2]) == [0.0, 0.0]

    assert list(truth.columns[:8]) == ["plate", "well", "site", "n_nuclei", "defect", "role",
                                       "compound", "dose_uM"]
    assert {"mito_factor", "nucleus_area_factor", "effect"} <= set(truth.columns)
    assert len(truth) == 8 * SITES and set(truth.plate) == {PLATE}
    assert set(truth.defect) == {"none", "out_of_focus", "saturated", "blank", "corrupt"}
    merged = truth.merge(pm, on="well", suffixes=("", "_pm"))
    assert (merged.role == merged.role_pm).all() and (merged.dose_uM == merged.dose_uM_pm).all()

    text = (plate_dir / "channels.yaml").read_text()
    assert re.search(r"^w1: DNA$", text, re.MULTILINE) and re.search(r"^w2: ER$", text, re.MULTILINE)
    assert re.search(r"^w3: Mito$", text, re.MULTILINE)


def test_deterministic(tmp_path):
    """Same arguments, byte-identical files (no timestamps); another seed, other images."""
    runs = [make_example_plate(tmp_path / name, plate="D", seed=seed, size=128)
            for name, seed in (("a", 1), ("b", 1), ("c", 2))]
    files = [sorted(p.relative_to(run) for p in run.rglob("*") if p.is_file()) for run in runs]
    assert files[0] == files[1] == files[2] and len(files[0]) == 24 * 3 + 24 * 2 + 4
    for rel in files[0]:
        assert _sha(runs[0] / rel) == _sha(runs[1] / rel), rel
    changed = [rel for rel in files[0] if _sha(runs[0] / rel) != _sha(runs[2] / rel)]
    assert len(changed) >= 24 * 3 + 24 * 2 - 2  # all but the blank site's empty masks
    assert _sha(runs[0] / "platemap.csv") == _sha(runs[2] / "platemap.csv")


# ----------------------------------------------------------------------------- truth


def test_truth_counts_match_masks(plate_dir, truth):
    min_area = synthetic.DEFAULT_PARAMS["min_visible_area"] * (SIZE / 512) ** 2
    for r in truth.itertuples():
        nuc, cells = _masks(plate_dir, r.well, r.site)
        ids = np.unique(nuc[nuc > 0])
        assert len(ids) == r.n_nuclei
        np.testing.assert_array_equal(ids, np.arange(1, r.n_nuclei + 1))  # numbered 1..n
        np.testing.assert_array_equal(np.unique(cells[cells > 0]), ids)  # one cell per nucleus
        if r.n_nuclei:
            assert np.bincount(nuc.ravel())[1:].min() >= min_area  # border slivers dropped
        if r.defect == "none":
            assert 40 <= r.n_nuclei <= 80, (r.well, r.site, r.n_nuclei)


def test_nucleus_inside_its_cell(plate_dir, truth):
    for r in truth.itertuples():
        nuc, cells = _masks(plate_dir, r.well, r.site)
        inside = nuc > 0
        np.testing.assert_array_equal(cells[inside], nuc[inside])
        if r.n_nuclei:
            # cells are a few times bigger than their nucleus
            ratio = np.bincount(cells.ravel())[1:].sum() / inside.sum()
            assert 2.5 < ratio < 10


def test_intensities_are_realistic(plate_dir, truth):
    flat = tifffile.imread(plate_dir / "flatfield.tif")
    for r in _clean_sites(truth).itertuples():
        img = _site(plate_dir, r.well, r.site)
        nuc, cells = _masks(plate_dir, r.well, r.site)
        assert img.max() < 10000  # nowhere near saturation on clean sites
        assert 90 <= img.min() and abs(np.median(img[0][cells == 0]) - OFFSET) < 80
        dna = (img[0] - OFFSET) / flat[0]
        over_bg = np.median(dna[nuc > 0]) - np.median(dna[cells == 0])
        assert 500 < over_bg < 4000
        # background is noisy: Poisson + read noise, not a constant
        assert img[0][cells == 0].std() > 3


# ----------------------------------------------------------------------------- defects


def test_corrupt_file_raises_other_channels_read(plate_dir):
    (well, site), = [k for k, v in DEFECTS.items() if v == "corrupt"]
    path = plate_dir / "images" / f"{PLATE}_{well}_s{site}_{synthetic.CORRUPT_CHANNEL}.tif"
    assert path.stat().st_size == synthetic.DEFAULT_PARAMS["corrupt_bytes"]
    with pytest.raises((ValueError, tifffile.TiffFileError)):
        tifffile.imread(path)
    for ch in set(CHANNELS) - {synthetic.CORRUPT_CHANNEL}:
        assert _img(plate_dir, well, site, ch).shape == (SIZE, SIZE)


def test_saturated_site(plate_dir, truth):
    img = _site(plate_dir, "B07", 1)
    frac = (img == 65535).mean(axis=(1, 2))
    assert (frac >= 0.05).all(), frac
    for r in truth[truth.well == "B07"].itertuples():
        if r.defect == "none":
            assert (_site(plate_dir, r.well, r.site) == 65535).mean() == 0


def test_blank_site(plate_dir, truth):
    row = truth[(truth.well == "B08") & (truth.site == 3)].iloc[0]
    assert row.defect == "blank" and row.n_nuclei == 0
    nuc, cells = _masks(plate_dir, "B08", 3)
    assert nuc.max() == 0 and cells.max() == 0
    flat = tifffile.imread(plate_dir / "flatfield.tif")
    blank = (_site(plate_dir, "B08", 3) - OFFSET) / flat
    clean = (_site(plate_dir, "B08", 1) - OFFSET) / flat
    for c in range(3):
        # flat after flat-field correction: no objects, only noise around the background level
        smooth = ndi.gaussian_filter(blank[c], 2)
        assert smooth.max() - np.median(smooth) < 30
        assert np.percentile(clean[c], 99.5) > 3 * np.percentile(blank[c], 99.5)


def _laplacian_var(img, presmooth):
    img = img.astype(float)
    if presmooth:
        img = ndi.gaussian_filter(img, presmooth)
    return ndi.laplace(img).var()


def test_out_of_focus_site(plate_dir, truth):
    oof = _site(plate_dir, "B06", 2)
    for site in (1, 3):
        clean = _site(plate_dir, "B06", site)
        for c in range(3):
            # after a light denoise (sigma 1 px) the focus score drops many-fold
            assert _laplacian_var(oof[c], 1) < 0.2 * _laplacian_var(clean[c], 1)
        # on the raw DNA image shot noise sets a floor, but the drop is still clear
        assert _laplacian_var(oof[0], 0) < 0.75 * _laplacian_var(clean[0], 0)
    # the specimen is there, only blurred
    assert truth[(truth.well == "B06") & (truth.site == 2)].n_nuclei.iloc[0] > 0


# ----------------------------------------------------------------------------- phenotype


SERIES = ["B02", "B06", "B07", "B08", "B09", "B04"]  # DMSO, 0.1, 0.3, 1, 3 uM, PosCtrl


def test_planted_phenotype_is_monotonic(truth):
    per_well = truth.groupby("well")[["effect", "mito_factor", "nucleus_area_factor"]].first()
    s = per_well.loc[SERIES]
    assert s.effect.iloc[0] == 0 and s.effect.iloc[-1] == 1
    assert (np.diff(s.effect) > 0).all()
    assert (np.diff(s.mito_factor) < 0).all()
    assert (np.diff(s.nucleus_area_factor) > 0).all()
    assert s.mito_factor.iloc[-1] == pytest.approx(0.4)
    assert s.nucleus_area_factor.iloc[-1] == pytest.approx(1.4)
    np.testing.assert_allclose(per_well.loc["B03"], per_well.loc["B02"])
    np.testing.assert_allclose(per_well.loc["B05"], per_well.loc["B04"])


def test_phenotype_measurable_from_images(plate_dir, truth):
    """Median of per-cell features, per well, follows the dose."""
    flat = tifffile.imread(plate_dir / "flatfield.tif")
    mito, area = {}, {}
    for r in _clean_sites(truth).itertuples():
        nuc, cells = _masks(plate_dir, r.well, r.site)
        m = (_img(plate_dir, r.well, r.site, "w3") - OFFSET) / flat[2]
        n = r.n_nuclei
        cell_area = np.bincount(cells.ravel(), minlength=n + 1)[1:]
        mito.setdefault(r.well, []).extend(
            np.bincount(cells.ravel(), m.ravel(), minlength=n + 1)[1:] / cell_area)
        area.setdefault(r.well, []).extend(np.bincount(nuc.ravel(), minlength=n + 1)[1:])
    med_mito = np.array([np.median(mito[w]) for w in SERIES])
    med_area = np.array([np.median(area[w]) for w in SERIES])
    assert (np.diff(med_mito[:5]) < 0).all(), med_mito  # DMSO > 0.1 > 0.3 > 1 > 3 uM
    assert 0.3 < med_mito[-1] / med_mito[0] < 0.5  # PosCtrl ~40 % of DMSO
    assert 1.25 < med_area[-1] / med_area[0] < 1.6  # PosCtrl nuclei ~+40 %
    assert med_area[0] < med_area[2] < med_area[3]  # DMSO < 0.3 < 1 uM
    # the truth table agrees with the images
    t_mito = truth[truth.defect == "none"].groupby("well").median_cell_mito_mean.median()
    np.testing.assert_allclose(t_mito.loc[SERIES], med_mito, rtol=0.1)


# ----------------------------------------------------------------------------- flat-field


def test_flatfield(plate_dir, truth):
    flat = tifffile.imread(plate_dir / "flatfield.tif")
    assert flat.shape == (3, SIZE, SIZE) and flat.dtype == np.float32
    np.testing.assert_allclose(flat.mean(axis=(1, 2)), 1.0, atol=1e-5)
    for c in range(3):
        f = flat[c]
        corners = f[[0, 0, -1, -1], [0, -1, 0, -1]] / f.max()
        assert (corners > 0.4).all() and (corners < 0.7).all(), corners
        cy, cx = np.unravel_index(np.argmax(f), f.shape)
        assert (cy, cx) != (SIZE // 2, SIZE // 2) and abs(cy - SIZE / 2) < 0.15 * SIZE
    assert np.abs(flat[0] - flat[1]).max() > 0.02  # channels differ slightly
    # recoverable from the images: mean of clean sites, smooth quadratic fit
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE - 0.5
    design = np.stack([np.ones_like(xx), xx, yy, xx * xx, yy * yy, xx * yy], -1).reshape(-1, 6)
    clean = _clean_sites(truth)
    for c, ch in enumerate(CHANNELS):
        mean = np.mean([_img(plate_dir, r.well, r.site, ch) - OFFSET
                        for r in clean.itertuples()], axis=0)
        fit = design @ np.linalg.lstsq(design, mean.ravel(), rcond=None)[0]
        assert np.corrcoef(fit, flat[c].ravel())[0, 1] >= 0.95


# ----------------------------------------------------------------------------- 512 px


@pytest.mark.parametrize("well,site", [("B02", 1), ("B03", 3), ("B04", 1), ("B05", 2),
                                       ("B08", 2), ("B09", 3)])
def test_classical_segmentation_counts_nuclei(well, site):
    """Otsu + distance-transform watershed counts clean 512 px sites within 10 %."""
    wi = [w for w, *_ in PLATE_LAYOUT].index(well)
    _, role, _, dose = PLATE_LAYOUT[wi]
    p = synthetic.DEFAULT_PARAMS
    flat = synthetic.make_flatfield(512, seed=0)
    res = synthetic._render_site(np.random.default_rng([0, wi, site]), 512,
                                 synthetic.dose_effect(dose, role), "none", flat, p)
    n_true = int(res["nuclei"].max())
    dna = filters.gaussian(res["image"][0].astype(float), 1)
    mask = dna > filters.threshold_otsu(dna)
    dist = ndi.distance_transform_edt(mask)
    peaks = feature.peak_local_max(dist, min_distance=7, labels=measure.label(mask),
                                   exclude_border=False)
    markers = np.zeros(mask.shape, int)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = segmentation.watershed(-dist, markers, mask=mask)
    n_found = int((np.bincount(labels.ravel())[1:] >= p["min_visible_area"]).sum())
    assert abs(n_found - n_true) <= 0.1 * n_true, (n_found, n_true)


# ----------------------------------------------------------------------------- API, CLI


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="sites_per_well"):
        make_example_plate(tmp_path, sites_per_well=2)
    with pytest.raises(ValueError, match="plate name"):
        make_example_plate(tmp_path, plate="MY_PLATE")
    with pytest.raises(ValueError, match="size"):
        make_example_plate(tmp_path, size=32)
    assert not any(tmp_path.iterdir())


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert synthetic.main([str(out), "--plate", "P-2", "--seed", "5", "--size", "64",
                           "--sites", "4"]) == 0
    assert len(list((out / "images").glob("P-2_*_s4_w*.tif"))) == 8 * 3
    t = pd.read_csv(out / "truth.csv")
    assert len(t) == 32 and set(t.site) == {1, 2, 3, 4}
    assert tifffile.imread(out / "flatfield.tif").shape == (3, 64, 64)
    with pytest.raises(SystemExit):
        synthetic.main([str(tmp_path / "bad"), "--sites", "1"])
    assert "sites_per_well" in capsys.readouterr().err
