"""Tests of per-plate flat-field estimation and correction (plateflow.illumination)."""

from __future__ import annotations

import csv
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from helpers.synthetic import CHANNELS, make_example_plate
from scipy import ndimage as ndi

from plateflow import illumination as il
from plateflow.core.contract import site_path, skipped
from plateflow.core.correction import PreprocessedChangedError, correct_site, read_preprocessed
from plateflow.core.imageio import read_stack, sha256_site, write_stack
from plateflow.core.provenance import write_table
from plateflow.core.stats import corner_to_centre_ratio
from plateflow.illumination import flatfield
from plateflow.illumination.run import correct_illumination, estimate_plate_illumination

P = il.DEFAULT_PARAMS
SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def _vignetting(shape, corner=0.55, centre=(0.45, 0.55)):
    """Known smooth flat-field: radial falloff centred off the image centre, mean 1."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    y = yy / (shape[0] - 1) - centre[0]
    x = xx / (shape[1] - 1) - centre[1]
    v = 1.0 - (1.0 - corner) * (y**2 + x**2) / 0.5
    return (v / v.mean()).astype(np.float32)


def _blobs(rng, shape, n=40, radius=8.0):
    """Sparse bright cell-like blobs at random places, values 0..~1."""
    sig = np.zeros(shape, np.float32)
    ys, xs = rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)
    sig[ys, xs] = rng.uniform(0.5, 1.0, n).astype(np.float32) * (2 * np.pi * radius**2)
    return ndi.gaussian_filter(sig, radius)


def _plate(rng, truth, n_sites, *, bg=300.0, amp=3000.0, n_blobs=40):
    """Generator of raw uint16 sites: truth x (background + blobs) + Poisson/read noise."""
    for _ in range(n_sites):
        clean = truth * (bg + amp * _blobs(rng, truth.shape, n=n_blobs))
        noisy = rng.poisson(clean) + rng.normal(0, 3, truth.shape)
        yield np.clip(np.rint(noisy), 0, 65535).astype(np.uint16)


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def truth():
    return _vignetting((384, 448))


@pytest.fixture(scope="module")
def sites(truth):
    return list(_plate(np.random.default_rng(0), truth, 60))


# --------------------------------------------------------------------------- estimation
def test_recovers_known_vignetting(truth, sites):
    flat = il.estimate_flatfield(iter(sites), params=P)
    assert flat.shape == truth.shape and flat.dtype == np.float32
    assert _corr(flat, truth) >= 0.95
    # not just correlated: the right depth of the falloff, to within a few percent
    assert np.max(np.abs(flat / truth - 1)) < 0.05
    assert corner_to_centre_ratio(flat) == pytest.approx(
        corner_to_centre_ratio(truth), rel=0.05
    )


def test_other_methods_also_recover_it(truth, sites):
    median = il.estimate_flatfield(sites, params={**P, "method": "median"})
    assert _corr(median, truth) >= 0.95
    trimmed = il.estimate_flatfield(sites, params={**P, "method": "trimmed_mean"})
    assert _corr(trimmed, truth) >= 0.95
    # the plain mean is pulled by the bright cells (measured 0.96): usable, but less robust
    mean = il.estimate_flatfield(sites, params={**P, "method": "mean"})
    assert _corr(mean, truth) >= 0.9


def test_recovers_the_synthetic_plate_vignetting_in_every_channel(tmp_path):
    """Acceptance: flat-field vs the synthetic plate's true vignetting, correlation >= 0.95.

    20 clean sites of 256 px (8 wells x 3 sites, 4 planted defects left out), raw 16-bit with
    the camera offset. Measured with the default ``background`` method: DNA 1.000, ER 0.998,
    Mito 0.998; with ``median``: ER 0.43 (the dense ER cytoplasm covers about half of the sites
    at each pixel); with ``mean``: DNA 0.87.
    """
    make_example_plate(tmp_path, plate="FF", size=256, sites_per_well=3, seed=0)
    with open(tmp_path / "truth.csv", newline="") as handle:
        clean = [(r["well"], r["site"]) for r in csv.DictReader(handle) if r["defect"] == "none"]
    assert len(clean) == 20
    truth = tifffile.imread(tmp_path / "flatfield.tif")
    for c, code in enumerate(CHANNELS):
        sites = (
            tifffile.imread(tmp_path / "images" / f"FF_{well}_s{site}_{code}.tif")
            for well, site in clean
        )
        flat = il.estimate_flatfield(sites, params=P)
        assert _corr(flat, truth[c]) >= 0.95, (CHANNELS[code], _corr(flat, truth[c]))
        # dividing by it evens out the raw background (camera offset included): the low
        # quantile across the corrected sites is flat
        corrected = [
            correct_site(
                tifffile.imread(tmp_path / "images" / f"FF_{well}_s{site}_{code}.tif")[None],
                flat[None],
                dtype_max=65535,
            )[0]
            for well, site in clean
        ]
        background = np.quantile(np.stack(corrected), 0.1, axis=0)
        assert corner_to_centre_ratio(background) == pytest.approx(1.0, abs=0.05)


def test_camera_offset_gives_the_optical_vignetting_itself(tmp_path):
    """With the camera's black level removed, the flat-field has the depth of the true
    vignetting (not only its shape), so cell signal in the corners is fully corrected."""
    make_example_plate(tmp_path, plate="FF", size=128, sites_per_well=3, seed=1)
    with open(tmp_path / "truth.csv", newline="") as handle:
        clean = [(r["well"], r["site"]) for r in csv.DictReader(handle) if r["defect"] == "none"]
    truth = tifffile.imread(tmp_path / "flatfield.tif")
    code = next(iter(CHANNELS))  # DNA
    raw = [tifffile.imread(tmp_path / "images" / f"FF_{well}_s{site}_{code}.tif")
           for well, site in clean]
    true_ratio = corner_to_centre_ratio(truth[0])
    with_offset = il.estimate_flatfield(iter(raw), params=P)
    without = il.estimate_flatfield(iter(raw), params={**P, "camera_offset": 100.0})
    # The offset (100 ADU, not vignetted) makes the flat-field too shallow; removing it
    # recovers the depth of the optics' falloff.
    assert corner_to_centre_ratio(with_offset) > true_ratio + 0.15
    assert corner_to_centre_ratio(without) == pytest.approx(true_ratio, abs=0.05)
    assert _corr(without, truth[0]) >= 0.95
    corrected = correct_site(raw[0][None], without[None], dtype_max=65535,
                                camera_offset=100.0)[0]
    expected = np.clip((raw[0].astype(np.float32) - 100) / without / 65535, 0, 1)
    np.testing.assert_allclose(corrected, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="camera_offset"):
        il.estimate_flatfield(iter(raw), params={**P, "camera_offset": -1})


def test_mean_one_floor_and_odd_sizes():
    rng = np.random.default_rng(1)
    truth = _vignetting((250, 333), corner=0.3)
    flat = il.estimate_flatfield(
        _plate(rng, truth, 20, n_blobs=15), params={**P, "working_size": 64}
    )
    assert flat.shape == (250, 333) and flat.dtype == np.float32
    assert float(flat.mean(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)
    assert _corr(flat, truth) >= 0.95
    # a flat-field that would go (nearly) to zero in a corner is floored
    dark = _vignetting((128, 128), corner=-0.2)  # corners negative: a broken illumination
    imgs = [np.clip(dark * 1000, 0, None).astype(np.uint16) for _ in range(5)]
    floored = il.estimate_flatfield(imgs, params={**P, "floor": 0.1})
    assert floored.min() == pytest.approx(0.1)
    assert np.all(np.isfinite(floored))


def test_all_dark_channel_gives_ones():
    flat = il.estimate_flatfield([np.zeros((64, 64), np.uint16)] * 3, params=P)
    assert np.array_equal(flat, np.ones((64, 64), np.float32))


def test_generator_of_many_images_keeps_memory_bounded():
    truth = _vignetting((128, 128))
    n, max_sites = 2000, 40

    def gen():  # image i is (i + 100) x truth: the kept subset shows in the result's level
        for i in range(n):
            yield np.rint(truth * (i + 100)).astype(np.uint16)

    tracemalloc.start()
    try:
        flat = il.estimate_flatfield(
            gen(), params={**P, "max_sites": max_sites, "working_size": 64}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # all 2000 images held at once would be 64 MB; the kept ones are max_sites x 64 x 64 float32
    assert peak < 8 * 2**20, peak
    assert _corr(flat, truth) > 0.99


def test_subset_is_evenly_spread(monkeypatch):
    used = []
    orig = flatfield._stack_statistic

    def spy(stack, method, **kwargs):  # the images that reach the per-pixel statistic
        used.append(stack[:, 0, 0].astype(int).tolist())
        return orig(stack, method, **kwargs)

    monkeypatch.setattr(flatfield, "_stack_statistic", spy)
    params = {**P, "max_sites": 50}
    il.estimate_flatfield((np.full((16, 16), i, np.uint16) for i in range(1000)), params=params)
    kept = used[-1]
    assert 25 <= len(kept) <= 50
    assert kept[0] == 0 and kept[-1] >= 900  # spread over the whole plate, not the first 50
    assert len(set(np.diff(kept))) == 1  # at a regular stride

    class Lazy:  # a sequence: only the chosen items are ever read
        def __init__(self):
            self.reads = []

        def __len__(self):
            return 1000

        def __getitem__(self, i):
            self.reads.append(i)
            return np.full((16, 16), i, np.uint16)

    lazy = Lazy()
    il.estimate_flatfield(lazy, params=params)
    assert lazy.reads == list(range(0, 1000, 20))
    assert used[-1] == lazy.reads


def test_bad_input_raises():
    with pytest.raises(ValueError, match="No QC-passed sites"):
        il.estimate_flatfield(iter([]), params=P)
    with pytest.raises(ValueError, match="one channel"):
        il.estimate_flatfield([np.zeros((2, 16, 16))], params=P)
    with pytest.raises(ValueError, match="same image size"):
        il.estimate_flatfield([np.zeros((16, 16)), np.zeros((16, 20))], params=P)
    with pytest.raises(ValueError, match="method"):
        il.estimate_flatfield([np.zeros((16, 16))], params={**P, "method": "basic"})
    with pytest.raises(ValueError, match="background_quantile"):
        il.estimate_flatfield([np.zeros((16, 16))], params={**P, "background_quantile": 1.5})


# --------------------------------------------------------------------------- correction
def test_correct_site_range_dtype_and_values(truth, sites):
    flat = il.estimate_flatfield(sites, params=P)
    img = np.stack([sites[0], sites[1]])
    out = correct_site(img, np.stack([flat, flat]), dtype_max=65535)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    expected = img[0].astype(np.float64) / flat / 65535
    assert np.allclose(out[0], np.clip(expected, 0, 1), rtol=1e-5, atol=1e-8)
    # no per-image stretch: a dim image stays dim
    assert out.max() < 0.2
    # values pushed past the type's maximum clip at 1; uint8 works the same way
    u8 = np.full((1, 8, 8), 250, np.uint8)
    half = np.full((1, 8, 8), 0.5, np.float32)
    assert np.all(correct_site(u8, half, dtype_max=255) == 1.0)
    assert correct_site(u8, [np.ones((8, 8))], dtype_max=255)[0, 0, 0] == pytest.approx(
        250 / 255
    )


def test_correction_flattens_the_background(truth, sites):
    flat = il.estimate_flatfield(sites, params=P)
    raw_median = np.median(np.stack(sites), axis=0)
    corrected = [correct_site(s[None], flat[None], dtype_max=65535)[0] for s in sites]
    assert corner_to_centre_ratio(raw_median) < 0.7
    # the background (median over sites: the random cells cancel) is even after correction
    assert corner_to_centre_ratio(np.median(corrected, axis=0)) == pytest.approx(1.0, abs=0.03)
    # and a uniform specimen under the true vignetting comes out uniform
    uniform = correct_site((truth * 20000).astype(np.uint16)[None], flat[None], dtype_max=65535)[
        0
    ]
    assert corner_to_centre_ratio(uniform) == pytest.approx(1.0, abs=0.03)
    assert uniform.std() / uniform.mean() < 0.02


def test_correct_site_shape_mismatch_raises():
    with pytest.raises(ValueError, match="one flat-field per channel"):
        correct_site(np.zeros((2, 8, 8), np.uint16), np.ones((3, 8, 8)), dtype_max=65535)
    with pytest.raises(ValueError, match="channels, height, width"):
        correct_site(np.zeros((8, 8), np.uint16), np.ones((8, 8)), dtype_max=65535)


def test_corner_to_centre_ratio():
    img = np.full((100, 100), 10.0)
    assert corner_to_centre_ratio(img) == pytest.approx(1.0)
    img[:10, :10] = 2.0  # patch side = 10 px: one corner patch at 2 -> corners average 8
    assert corner_to_centre_ratio(img) == pytest.approx(0.8)
    img[45:55, 45:55] = 20.0
    assert corner_to_centre_ratio(img) == pytest.approx(0.4)
    img[45:55, 45:55] = 0.0  # a black centre: the ratio is undefined, not an error
    assert np.isnan(corner_to_centre_ratio(img))
    with pytest.raises(ValueError, match="height, width"):
        corner_to_centre_ratio(np.ones((2, 8, 8)))


# --------------------------------------------------------------------------- the stage's I/O
def _qc_tables(tmp_path, plate_dir, plate="FF"):
    """A plate QC table from the synthetic plate: the planted defects fail, the rest pass."""
    with open(plate_dir / "truth.csv", newline="") as handle:
        truth = list(csv.DictReader(handle))
    rows = []
    for r in truth:
        row = {"Metadata_Plate": plate, "Metadata_Well": r["well"], "Metadata_Site": r["site"],
               "QC_Status": "pass" if r["defect"] == "none" else "fail",
               "QC_Reasons": "" if r["defect"] == "none" else f"planted {r['defect']}",
               }
        for code, name in CHANNELS.items():
            row[f"Metadata_FileName_{name}"] = str(
                plate_dir / "images" / f"{plate}_{r['well']}_s{r['site']}_{code}.tif")
        row["Metadata_Provenance_ImageSHA256"] = sha256_site(
            {c: row[f"Metadata_FileName_{c}"] for c in CHANNELS.values()}, list(CHANNELS.values()))
        rows.append(row)
    table = pd.DataFrame(rows)
    path = tmp_path / "sites.parquet"
    write_table(table, path, step="collect_plate_qc", params={})
    return path, table


@pytest.fixture(scope="module")
def corrected_plate(tmp_path_factory):
    """The synthetic plate's flat-field, and every site corrected in each storage."""
    tmp = tmp_path_factory.mktemp("stage")
    make_example_plate(tmp / "plate", plate="FF", size=128, sites_per_well=3, seed=2)
    qc_path, table = _qc_tables(tmp, tmp / "plate")
    channels = list(CHANNELS.values())
    fields = estimate_plate_illumination(
        channels=channels, plate="FF", qc_sites_table=qc_path, params=P,
        out_image=tmp / "flatfield.tiff", out_table=tmp / "flatfield.parquet")
    sites = [f"{w}/{s}" for w, s in zip(table["Metadata_Well"], table["Metadata_Site"])]
    out = {}
    for storage in ("reference", "float16", "float32"):
        n = correct_illumination(
            sites=sites, channels=channels, plate="FF", flatfield=tmp / "flatfield.tiff",
            qc_table=qc_path, params={"storage": storage}, bit_depth=None,
            out_dir=tmp / storage)
        assert n == int((table["QC_Status"] == "pass").sum())
        out[storage] = tmp / storage
    return tmp, table, fields, out


def test_float32_storage_is_correct_site_exactly(corrected_plate):
    _, table, fields, out = corrected_plate
    row = table[table["QC_Status"] == "pass"].iloc[0]
    raw = np.stack([tifffile.imread(row[f"Metadata_FileName_{c}"]) for c in CHANNELS.values()])
    stack, meta = read_stack(site_path(out["float32"], row["Metadata_Well"],
                                       row["Metadata_Site"], ".tiff"))
    np.testing.assert_array_equal(stack, correct_site(raw, fields, dtype_max=65535))
    assert meta["flatfield_sha256"] and meta["image_sha256"] == row[
        "Metadata_Provenance_ImageSHA256"]


def test_reference_storage_reads_back_exactly_as_float32(corrected_plate):
    """``reference`` (the default) keeps no pixels; reading it gives the float32 image."""
    _, table, _, out = corrected_plate
    passed = table[table["QC_Status"] == "pass"]
    for well, site in zip(passed["Metadata_Well"], passed["Metadata_Site"]):
        path = site_path(out["reference"], well, site, ".tiff")
        assert path.stat().st_size < 4096
        got, meta = read_preprocessed(path)
        want, _ = read_stack(site_path(out["float32"], well, site, ".tiff"))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        assert meta["storage"] == "reference" and skipped(meta) is None


def test_reference_storage_refuses_a_changed_raw_image(corrected_plate, tmp_path):
    _, table, _, out = corrected_plate
    row = table[table["QC_Status"] == "pass"].iloc[0]
    path = site_path(out["reference"], row["Metadata_Well"], row["Metadata_Site"], ".tiff")
    stack, meta = read_stack(path)
    moved = tmp_path / "copy.tif"
    moved.write_bytes(b"not the image QC measured")
    meta["files"][next(iter(meta["files"]))] = str(moved)
    write_stack(tmp_path / "s1.tiff", stack, metadata=meta)
    with pytest.raises(PreprocessedChangedError, match="raw images changed since QC"):
        read_preprocessed(tmp_path / "s1.tiff")


def test_estimate_plate_illumination_writes_the_flatfield_and_its_summary(corrected_plate):
    tmp, table, fields, _ = corrected_plate
    stack, meta = read_stack(tmp / "flatfield.tiff")
    np.testing.assert_array_equal(stack, fields)
    assert stack.dtype == np.float32 and stack.shape == (3, 128, 128)
    assert meta["channels"] == list(CHANNELS.values())
    assert meta["n_sites"] == int((table["QC_Status"] == "pass").sum())
    summary = pd.read_parquet(tmp / "flatfield.parquet")
    assert summary["Metadata_Channel"].tolist() == list(CHANNELS.values())
    assert summary["Illumination_CornerToCentre"].tolist() == pytest.approx(
        [corner_to_centre_ratio(f) for f in fields])


def test_corrected_float16_stays_within_1e_3_of_float32(corrected_plate):
    """``preprocess.storage: float16`` moves no stored value by more than 1e-3 relative where
    the value is above 1e-3 (measured: at most 4.9e-4, float16's half ulp)."""
    _, table, _, out = corrected_plate
    passed = table[table["QC_Status"] == "pass"]
    worst = 0.0
    for well, site in zip(passed["Metadata_Well"], passed["Metadata_Site"]):
        half, meta16 = read_stack(site_path(out["float16"], well, site, ".tiff"))
        full, meta32 = read_stack(site_path(out["float32"], well, site, ".tiff"))
        assert half.dtype == np.float16 and full.dtype == np.float32
        assert half.shape == full.shape == (3, 128, 128)
        assert skipped(meta16) is None
        # the storage type is a parameter of the step: it shows in the lineage and as itself
        assert meta16.pop("lineage") != meta32.pop("lineage")
        assert (meta16.pop("storage"), meta32.pop("storage")) == ("float16", "float32")
        assert meta16 == meta32
        big = full > 1e-3
        assert big.mean() > 0.9
        rel = np.abs(half[big].astype(np.float32) - full[big]) / full[big]
        worst = max(worst, float(rel.max()))
        assert np.all(np.abs(half.astype(np.float32) - full) <= 1e-3 * np.maximum(full, 1e-3))
    assert worst <= 2.0**-11


def test_qc_failed_sites_get_placeholders(corrected_plate):
    _, table, _, out = corrected_plate
    failed = table[table["QC_Status"] != "pass"]
    assert len(failed)
    for storage, dtype in (("float16", np.float16), ("float32", np.float32),
                           ("reference", np.float32)):
        for well, site, reasons in zip(failed["Metadata_Well"], failed["Metadata_Site"],
                                       failed["QC_Reasons"]):
            stack, meta = read_stack(site_path(out[storage], well, site, ".tiff"))
            assert stack.shape == (3, 1, 1) and stack.dtype == dtype and not stack.any()
            assert skipped(meta) == f"QC fail: {reasons}"
            assert meta["image_sha256"] == table.set_index(["Metadata_Well", "Metadata_Site"]).loc[
                (well, site), "Metadata_Provenance_ImageSHA256"]


def test_correct_illumination_rejects_an_unknown_storage(corrected_plate, tmp_path):
    tmp = corrected_plate[0]
    with pytest.raises(ValueError, match="preprocess.storage"):
        correct_illumination(
            sites=["B02/1"], channels=list(CHANNELS.values()), plate="FF",
            flatfield=tmp / "flatfield.tiff", qc_table=tmp / "sites.parquet",
            params={"storage": "uint8"}, bit_depth=None, out_dir=tmp_path)


def test_default_params_equal_the_schema_defaults():
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]
    section = schema["illumination"]["properties"]
    assert {k: v["default"] for k, v in section.items()} == il.DEFAULT_PARAMS
    storage = schema["preprocess"]["properties"]["storage"]
    assert storage["default"] == "reference"
    assert set(storage["enum"]) == {"reference", "float16", "float32"}


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_transfluor_plate_flatfield(real_data):
    files = sorted((real_data / "transfluor-plate").glob("*.TIF"))
    assert len(files) == 72
    images = [tifffile.imread(f) for f in files]
    assert images[0].dtype == np.uint8
    flat = il.estimate_flatfield((im for im in images), params=P)
    raw_mean = np.mean([im.astype(np.float64) for im in images], axis=0)
    corrected = [correct_site(im[None], flat[None], dtype_max=255)[0] for im in images]
    before = corner_to_centre_ratio(raw_mean)
    after = corner_to_centre_ratio(np.mean(corrected, axis=0))
    # measured with the default ``background`` method: before 0.616, after 1.065 (median image:
    # 0.576 -> 0.987); with ``median``: after 1.052 (median image 0.975)
    assert before < 0.7
    assert after == pytest.approx(1.0, abs=0.1), (before, after)
    median_after = corner_to_centre_ratio(np.median(np.stack(corrected), axis=0))
    assert median_after == pytest.approx(1.0, abs=0.05)
