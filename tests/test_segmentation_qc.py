"""Segmentation QC: per-site statistics, plate flags, the plate step's files, the report part."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from plateflow.core.confidence import DEFAULT_LOW_CONFIDENCE, threshold_for
from plateflow.core.contract import new_site_path, write_placeholder
from plateflow.core.imageio import read_stack_metadata, write_stack
from plateflow.core.provenance import add_provenance, read_file_metadata, read_table, write_table
from plateflow.segmentation import Segmentation, cytoplasm_from
from plateflow.segmentation.qc import DEFAULT_PARAMS, collect_segmentation_qc, plate_flags
from plateflow.segmentation.statistics import site_statistics

REPO = Path(__file__).resolve().parents[1]


def _segmentation(objects=None) -> Segmentation:
    """Three objects on 64 x 64: a nucleus with its cell, a cell that is only its nucleus, and
    an object touching the top border."""
    nuclei = np.zeros((64, 64), np.int32)
    cells = np.zeros((64, 64), np.int32)
    cells[8:18, 8:18] = 1
    nuclei[10:14, 10:14] = 1
    nuclei[30:34, 30:34] = 2
    cells[30:34, 30:34] = 2
    cells[0:8, 38:48] = 3
    nuclei[0:4, 40:44] = 3
    return Segmentation(nuclei, cells, cytoplasm_from(cells, nuclei), method="classical",
                        objects=objects or {})


def test_site_statistics():
    stats = site_statistics(_segmentation())
    assert stats["n_nuclei"] == 3 and stats["n_cells"] == 3
    assert stats["median_nucleus_area"] == 16.0
    # nucleus 2's cell is only the nucleus: 2 of 3 nuclei have a cell around them
    assert stats["match_rate"] == pytest.approx(2 / 3)
    # cell areas 100, 16, 80; cell 3 touches the border
    assert stats["border_area_fraction"] == pytest.approx(80 / 196)
    assert stats["low_confidence_fraction"] is None


def test_site_statistics_low_confidence_fraction():
    contrast = {"Nuclei_Segmentation_Contrast": [5.0, 2.0, 10.0]}
    assert site_statistics(_segmentation(contrast))["low_confidence_fraction"] == pytest.approx(
        1 / 3)
    both = {**contrast, "Cells_Segmentation_Probability": [0.9, 0.9, 0.4]}
    assert site_statistics(_segmentation(both))["low_confidence_fraction"] == pytest.approx(2 / 3)
    # a column without a threshold is no confidence; configured thresholds replace the defaults
    assert site_statistics(_segmentation({"Nuclei_Segmentation_Other": [0.0] * 3}))[
        "low_confidence_fraction"] is None
    assert site_statistics(_segmentation(contrast), thresholds={
        "Nuclei_Segmentation_Contrast": 6.0})["low_confidence_fraction"] == pytest.approx(2 / 3)
    assert threshold_for("Cytoplasm_Segmentation_Agreement", DEFAULT_LOW_CONFIDENCE) == 0.5


def test_site_statistics_of_an_empty_site():
    empty = np.zeros((32, 32), np.int32)
    stats = site_statistics(Segmentation(empty, empty, empty, method="classical"))
    assert stats == {"n_nuclei": 0, "n_cells": 0, "median_nucleus_area": None,
                     "match_rate": None, "border_area_fraction": None,
                     "low_confidence_fraction": None}


def test_schema_defaults_equal_the_module_defaults():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    section = schema["properties"]["segmentation_qc"]["properties"]
    assert {k: v["default"] for k, v in section.items()} == DEFAULT_PARAMS
    assert DEFAULT_PARAMS["low_confidence"] == DEFAULT_LOW_CONFIDENCE


# ----------------------------------------------------------------------------- plate flags --
def _plate_table(n=24, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    qc = rng.integers(40, 80, n).astype(float)
    return pd.DataFrame({
        "SegQC_Status": ["pass"] * n,
        "SegQC_QCObjectCount": qc,
        "SegQC_NucleiCount": np.round(qc * rng.uniform(0.9, 1.8, n)),
        "SegQC_MedianNucleusArea": rng.normal(300, 30, n),
    })


def test_a_normal_plate_has_no_flags():
    table = _plate_table()
    assert plate_flags(table, params=DEFAULT_PARAMS, channel="DNA") == []
    assert table["SegQC_CountRatio"].between(0.9, 1.8).all()
    assert table["SegQC_PlateZ_NucleiCount"].abs().max() < 6


def test_a_collapsed_site_is_flagged():
    table = _plate_table()
    table.loc[5, ["SegQC_NucleiCount", "SegQC_QCObjectCount", "SegQC_MedianNucleusArea"]] = (
        2, 60, 4000)
    flags = plate_flags(table, params=DEFAULT_PARAMS, channel="GFP")
    assert {f["row"] for f in flags} == {5}
    assert {f["metric"] for f in flags} == {"SegQC_CountRatio", "PlateZ_MedianNucleusArea"}
    ratio = next(f for f in flags if f["metric"] == "SegQC_CountRatio")
    assert ratio["value"] == pytest.approx(2 / 60) and ratio["threshold"] == 0.25
    assert "2 nuclei segmented where QC counts 60" in ratio["reason"]


def test_ratio_needs_enough_qc_objects_and_stopped_sites_set_no_reference():
    table = _plate_table()
    table.loc[3, ["SegQC_NucleiCount", "SegQC_QCObjectCount"]] = (0, 5)  # nearly empty field
    table.loc[4, "SegQC_Status"] = "not segmented"
    table.loc[4, "SegQC_NucleiCount"] = np.nan
    assert plate_flags(table, params=DEFAULT_PARAMS, channel="DNA") == []
    assert np.isnan(table.loc[3, "SegQC_CountRatio"]) and np.isnan(table.loc[4, "SegQC_CountRatio"])
    small = _plate_table(n=6)
    small.loc[0, "SegQC_MedianNucleusArea"] = 5000
    assert plate_flags(small, params=DEFAULT_PARAMS, channel="DNA") == []  # too few to judge


# ------------------------------------------------------------------------ the plate's step --
def _write_site(folder: Path, well: str, site: str, result: Segmentation | None, *,
                reason: str | None = None) -> None:
    """A label stack as the segmentation batch job writes it."""
    meta = {"plate": "P1", "well": well, "site": site, "channels": ["DNA"],
            "image_sha256": "a" * 64, "lineage": {"segment": "s" * 16}}
    path = new_site_path(folder, well, site, ".tiff")
    if result is None:
        write_placeholder(path, pages=3, dtype=np.int32, reason=reason, metadata={
            **meta, "segmentation": {"method": None, "model": None, "weights_sha256": None}})
        return
    labels = np.stack([result.nuclei, result.cells, result.cytoplasm])
    write_stack(path, labels, metadata={
        **meta, "compartments": ["Nuclei", "Cells", "Cytoplasm"],
        "segmentation": {"method": "classical", "model": None, "weights_sha256": None,
                         "info": {**site_statistics(result), "nuclei_threshold": 0.1}},
        "objects": {k: list(map(float, v)) for k, v in result.objects.items()}})


def _grid(n: int) -> Segmentation:
    """``n`` separate 5x5 nuclei, each in a 9x9 cell, on 128 x 128."""
    nuclei = np.zeros((128, 128), np.int32)
    cells = np.zeros((128, 128), np.int32)
    for i in range(n):
        y, x = 12 * (i // 9) + 8, 12 * (i % 9) + 8
        cells[y - 4:y + 5, x - 4:x + 5] = i + 1
        nuclei[y - 2:y + 3, x - 2:x + 3] = i + 1
    contrast = np.full(n, 10.0)
    contrast[: n // 5] = 1.0  # a fifth of low contrast
    return Segmentation(nuclei, cells, cytoplasm_from(cells, nuclei), method="classical",
                        objects={"Nuclei_Segmentation_Contrast": contrast})


@pytest.fixture
def plate(tmp_path):
    """A plate of 12 wells x 2 sites in two batches: B05/1 collapsed (1 object where QC sees
    50), B07/2 stopped by QC, B08/1 with a corrupt label stack."""
    rows = []
    rng = np.random.default_rng(1)
    for w in range(1, 13):
        well = f"B{w:02d}"
        batch = tmp_path / "seg" / ("B01-B06" if w <= 6 else "B07-B12")
        for site in ("1", "2"):
            n = int(rng.integers(45, 60))
            status = "pass"
            if (well, site) == ("B05", "1"):
                _write_site(batch, well, site, _grid(1))
            elif (well, site) == ("B07", "2"):
                status = "fail"
                _write_site(batch, well, site, None, reason="QC fail: out of focus")
            else:
                _write_site(batch, well, site, _grid(n))
            if (well, site) == ("B08", "1"):
                new_site_path(batch, well, site, ".tiff").write_bytes(b"not a tiff")
            rows.append({"Metadata_Plate": "P1", "Metadata_Well": well, "Metadata_Site": site,
                         "QC_Status": status, "QC_ObjectCount_DNA": 50.0})
    qc = add_provenance(pd.DataFrame(rows), step="collect_plate_qc", params={},
                        image_sha256=pd.Series([f"{i:064x}" for i in range(len(rows))]),
                        lineage={"measure_qc": "q" * 16})
    write_table(qc, tmp_path / "qc.parquet", step="collect_plate_qc", params={},
                lineage={"measure_qc": "q" * 16})
    return tmp_path


def test_plate_step_flags_the_collapse_and_lists_stopped_and_broken_sites(plate):
    out = collect_segmentation_qc(
        label_dirs=[plate / "seg" / "B01-B06", plate / "seg" / "B07-B12"],
        qc_table=plate / "qc.parquet", plate="P1", nuclei_channel="DNA",
        params=DEFAULT_PARAMS, out_sites=plate / "sites.parquet",
        out_reacquire=plate / "reacquire.csv")
    table = read_table(plate / "sites.parquet")
    assert len(table) == len(out) == 24
    status = {(r.Metadata_Well, r.Metadata_Site): r.SegQC_Status for r in table.itertuples()}
    assert status.pop(("B05", "1")) == "flagged"
    assert status.pop(("B07", "2")) == "not segmented"
    assert status.pop(("B08", "1")) == "error"
    assert set(status.values()) == {"pass"}
    row = table.set_index(["Metadata_Well", "Metadata_Site"]).loc[("B05", "1")]
    assert row["SegQC_NucleiCount"] == 1 and row["SegQC_CountRatio"] == pytest.approx(1 / 50)
    assert "segmentation collapse" in row["SegQC_Reasons"]
    assert json.loads(row["SegQC_Flags"])[0]["metric"] == "SegQC_CountRatio"
    normal = table[table["SegQC_Status"] == "pass"]
    assert normal["SegQC_MatchRate"].eq(1.0).all()
    assert normal["SegQC_LowConfidenceFraction"].between(0.15, 0.25).all()
    assert (normal["SegQC_Info_nuclei_threshold"] == 0.1).all()
    assert table.set_index("Metadata_Well").loc["B07", "SegQC_Reasons"].str.contains(
        "QC fail: out of focus").any()
    assert table["Metadata_Provenance_ImageSHA256"].str.len().eq(64).all()
    assert set(normal["Metadata_Provenance_SegmentationMethod"]) == {"classical"}
    meta = read_file_metadata(plate / "sites.parquet")
    assert meta["step"] == "collect_segmentation_qc"
    assert meta["lineage"]["segment"] == "s" * 16
    reacquire = pd.read_csv(plate / "reacquire.csv", dtype={"site": str})
    assert set(zip(reacquire["well"], reacquire["site"])) == {("B05", "1"), ("B08", "1")}
    assert set(reacquire["status"]) == {"segmentation flag", "segmentation error"}
    # configured thresholds: low confidence below 0.5 -> no object is low
    params = copy.deepcopy(DEFAULT_PARAMS)
    params["low_confidence"] = {"Nuclei_Segmentation_Contrast": 0.5}
    again = collect_segmentation_qc(
        label_dirs=[plate / "seg" / "B01-B06", plate / "seg" / "B07-B12"],
        qc_table=plate / "qc.parquet", plate="P1", nuclei_channel="DNA", params=params,
        out_sites=plate / "sites2.parquet", out_reacquire=plate / "reacquire2.csv")
    assert again.loc[again["SegQC_Status"] == "pass", "SegQC_LowConfidenceFraction"].eq(0).all()


def test_read_stack_metadata_reads_no_pixels(tmp_path):
    write_stack(tmp_path / "s.tiff", np.zeros((3, 8, 8), np.int32), metadata={"a": 1})
    assert read_stack_metadata(tmp_path / "s.tiff") == {"a": 1}


def test_report_part_lists_the_flagged_sites(plate):
    from plateflow.report.run import write_qc_report

    collect_segmentation_qc(
        label_dirs=[plate / "seg" / "B01-B06", plate / "seg" / "B07-B12"],
        qc_table=plate / "qc.parquet", plate="P1", nuclei_channel="DNA",
        params=DEFAULT_PARAMS, out_sites=plate / "sites.parquet",
        out_reacquire=plate / "reacquire.csv")
    qc = read_table(plate / "qc.parquet")
    qc["QC_Reasons"] = ""
    qc.to_parquet(plate / "qc_report.parquet")
    page = write_qc_report(plates=[
        {"name": "P1", "qc_table": plate / "qc_report.parquet", "flatfield": None,
         "site_files": {}, "wells": [], "segmentation_qc": plate / "sites.parquet"}],
        output=plate / "report.html", thumbnails_max=0).read_text()
    assert "Segmentation QC" in page
    part = page[page.index('id="segmentation-qc"'):]
    assert 'data-well="B05" data-site="1"' in part and "segmentation collapse" in part
    assert 'data-well="B08" data-site="1"' in part
    assert "<b>22</b> sites segmented" in part and "<b>1</b> not segmented" in part


# ------------------------------------------------------------------------------- real data --
@pytest.mark.realdata
def test_transfluor_collapse_in_well_o02_is_flagged(real_data, tmp_path):
    """The transfluor plate segmented by a naive global Otsu, the failure the issue describes:
    one saturated blob in well O02 pulls the threshold above the cells, leaving 1 object where
    QC's foreground count sees 64-75. The plate step must flag it; normal sites stay clean."""
    from scipy import ndimage as ndi
    from skimage import filters, measure, segmentation

    from plateflow.core.imageio import read_image
    from plateflow.qc import DEFAULT_PARAMS as QC_PARAMS
    from plateflow.qc import measure_site

    wells = ["O01", "O02", "O03", "O04", "O05", "O06", "O17"]
    rows = []
    for well in wells:
        for site in "012":
            raw = read_image(real_data / "transfluor-plate" /
                             f"AS_09047_050428030001_{well}f0{site}d2.TIF")
            qc = measure_site(raw[None], ["GFP"], dtype_max=255, params=QC_PARAMS)
            smoothed = ndi.gaussian_filter(raw.astype(np.float32) / 255, 1.0)
            labels = measure.label(smoothed > filters.threshold_otsu(smoothed, nbins=1024))
            areas = np.bincount(labels.ravel())
            labels[areas[labels] < 30] = 0
            nuclei = segmentation.relabel_sequential(labels)[0].astype(np.int32)
            cells = segmentation.expand_labels(nuclei, 3)
            _write_site(tmp_path / "seg" / "O01-O24", well, site, Segmentation(
                nuclei, cells, cytoplasm_from(cells, nuclei), method="classical"))
            rows.append({"Metadata_Plate": "AS_09047", "Metadata_Well": well,
                         "Metadata_Site": site, "QC_Status": "pass",
                         "QC_ObjectCount_GFP": qc["QC_ObjectCount_GFP"]})
    qc_table = add_provenance(pd.DataFrame(rows), step="collect_plate_qc", params={},
                              image_sha256="a" * 64)
    write_table(qc_table, tmp_path / "qc.parquet", step="collect_plate_qc", params={})
    table = collect_segmentation_qc(
        label_dirs=[tmp_path / "seg" / "O01-O24"], qc_table=tmp_path / "qc.parquet",
        plate="AS_09047", nuclei_channel="GFP", params=DEFAULT_PARAMS,
        out_sites=tmp_path / "sites.parquet", out_reacquire=tmp_path / "reacquire.csv")
    table = table.set_index(["Metadata_Well", "Metadata_Site"])
    for site in ("0", "1"):  # 1 object against QC's 64 and 75
        row = table.loc[("O02", site)]
        assert row["SegQC_NucleiCount"] <= 3 and row["SegQC_QCObjectCount"] >= 39
        assert row["SegQC_Status"] == "flagged" and "collapse" in row["SegQC_Reasons"]
    # every collapsed site is flagged; every site with a sane ratio and no outlier is not
    ratio = table["SegQC_CountRatio"]
    assert (table.loc[ratio < 0.25, "SegQC_Status"] == "flagged").all()
    clean = (ratio >= 0.3) & (table.filter(like="SegQC_PlateZ_").abs().max(axis=1) < 6)
    assert clean.sum() >= 15 and (table.loc[clean, "SegQC_Status"] == "pass").all()
    reacquire = pd.read_csv(tmp_path / "reacquire.csv", dtype={"site": str})
    assert {("O02", "0"), ("O02", "1")} <= set(zip(reacquire["well"], reacquire["site"]))
