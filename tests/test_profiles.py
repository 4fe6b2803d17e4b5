"""Tests of the profiles stage: cells to wells, wells to plates, plates to experiment."""

import numpy as np
import pandas as pd
import pytest

from plateflow.core.contract import site_frame, site_path
from plateflow.core.provenance import add_provenance, read_file_metadata, read_table, write_table
from plateflow.core.stats import MAD_SCALE
from plateflow.profiles import aggregate_well, feature_columns_of, normalize_plate
from plateflow.profiles.run import (
    aggregate_wells,
    merge_experiment,
    normalize_plate_profiles,
    well_profile,
)


def test_aggregate_well_median_and_count():
    cells = pd.DataFrame({"Metadata_Site": ["1", "1", "2"], "F": [1.0, 2.0, 10.0],
                          "G": [np.nan, 4.0, 6.0]})
    out = aggregate_well(cells, features=["F", "G", "H"])
    assert out["Metadata_Object_Count"] == 3
    assert out["F"] == 2.0
    assert out["G"] == 5.0
    assert np.isnan(out["H"])
    assert aggregate_well(cells, features=["F"], operation="mean")["F"] == pytest.approx(13 / 3)


def test_aggregate_empty_well_gives_nan_features():
    out = aggregate_well(pd.DataFrame(columns=["F"]), features=["F"])
    assert out["Metadata_Object_Count"] == 0 and np.isnan(out["F"])
    with pytest.raises(ValueError, match="median"):
        aggregate_well(pd.DataFrame(), features=[], operation="max")


def test_well_reports_the_low_confidence_fraction_not_a_confidence_median():
    cells = pd.DataFrame({
        "Nuclei_AreaShape_Area": [10.0, 20.0, 30.0, 40.0],
        "Nuclei_Segmentation_Contrast": [1.0, 5.0, 8.0, np.nan],
        "Cells_Segmentation_Probability": [0.9, 0.3, 0.9, 0.8],
        "Cells_Segmentation_FlowError": [0.1, 0.1, 0.1, 0.1],  # no threshold: not a confidence
    })
    out = aggregate_well(cells, features=list(cells.columns))
    # object 1: contrast 1 < 3; object 2: probability 0.3 < 0.5; object 4 judged on probability
    assert out["Metadata_Segmentation_LowConfidenceFraction"] == 0.5
    assert out["Nuclei_AreaShape_Area"] == 25.0
    assert not [c for c in out if "_Segmentation_" in c and not c.startswith("Metadata_")]
    strict = aggregate_well(cells, features=["Nuclei_AreaShape_Area"],
                            low_confidence={"Nuclei_Segmentation_Contrast": 6.0})
    assert strict["Metadata_Segmentation_LowConfidenceFraction"] == pytest.approx(2 / 3)
    no_column = aggregate_well(cells[["Nuclei_AreaShape_Area"]], features=["Nuclei_AreaShape_Area"])
    assert np.isnan(no_column["Metadata_Segmentation_LowConfidenceFraction"])


def _plate():
    return pd.DataFrame({
        "Metadata_Well": ["A01", "A02", "A03", "B01", "B02"],
        "Metadata_Role": ["negative_control"] * 3 + ["treatment", "positive_control"],
        "Metadata_Object_Count": [10, 12, 11, 9, 8],
        "F": [1.0, 2.0, 4.0, 10.0, 2.0],
        "Flat": [3.0, 3.0, 3.0, 5.0, 3.0],
    })


def test_robust_z_against_negative_controls():
    wells = _plate()
    out = normalize_plate(wells, plate="P1")
    # controls F = 1, 2, 4: median 2, MAD median(|-1|, 0, 2) = 1
    assert out["F"].tolist() == pytest.approx([(v - 2.0) / MAD_SCALE for v in wells["F"]])
    assert out["Flat"].isna().all()
    assert feature_columns_of(out) == ["F", "Flat"]
    assert out["Metadata_Object_Count"].tolist() == wells["Metadata_Object_Count"].tolist()


def test_normalize_needs_controls():
    wells = _plate()
    wells["Metadata_Role"] = "treatment"
    with pytest.raises(ValueError, match="plate P9: no 'negative_control' well"):
        normalize_plate(wells, plate="P9")


# ------------------------------------------------------------------------------ the stage's I/O
FEATURES = ["Nuclei_AreaShape_Area", "Cells_Intensity_MeanIntensity_DNA"]
SEG = {"method": "classical", "model": None, "weights_sha256": None}


def _site_table(folder, well, site, values=None, *, skipped=None):
    """A feature table as the features stage writes it: keys, features, provenance, notes.

    ``values`` is one list per cell; a skipped site has no cells (but every column).
    """
    values = [] if values is None else values
    cells = pd.DataFrame(values, columns=FEATURES, dtype="float64")
    cells.insert(0, "ObjectNumber", np.arange(1, len(cells) + 1, dtype="int64"))
    table = pd.concat([site_frame("P1", well, site, len(cells)), cells], axis=1)
    sha = f"sha-{well}-{site}"
    lineage = {"segment": "s" * 16}
    table = add_provenance(table, step="extract_features", params={}, image_sha256=sha,
                           lineage=lineage, segmentation=None if skipped else SEG)
    notes = {"site": site, "image_sha256": sha, **({"skipped": skipped} if skipped else {})}
    path = site_path(folder, well, site, ".parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(table, path, step="extract_features", params={}, lineage=lineage, notes=notes)
    return path


@pytest.fixture
def batch(tmp_path):
    """A batch of three wells: A01 all measured, A02 one site stopped, A03 every site stopped."""
    folder = tmp_path / "features"
    _site_table(folder, "A01", "1", [[10.0, 0.1], [20.0, 0.3]])
    _site_table(folder, "A01", "2", [[30.0, 0.5]])
    _site_table(folder, "A02", "1", [[5.0, 0.2], [7.0, 0.4]])
    _site_table(folder, "A02", "2", skipped="QC fail: blurry")
    _site_table(folder, "A03", "1", skipped="QC fail: empty")
    _site_table(folder, "A03", "2", skipped="QC unreadable: truncated")
    platemap = {w: {"Metadata_Well": w, "Metadata_Role": r, "Metadata_Compound": c}
                for w, r, c in (("A01", "negative_control", "DMSO"),
                                ("A02", "negative_control", "DMSO"), ("A03", "treatment", "X"))}
    sites = [f"{w}/{s}" for w in ("A01", "A02", "A03") for s in ("1", "2")]
    return folder, sites, platemap


def test_well_profile_counts_and_summarises_its_measured_sites(batch):
    folder, _, platemap = batch
    row = well_profile(
        feature_tables=[site_path(folder, "A02", s, ".parquet") for s in ("1", "2")],
        platemap_row=platemap["A02"], plate="P1", well="A02", params={"operation": "median"})
    assert len(row) == 1
    r = row.iloc[0]
    assert (r["Metadata_Plate"], r["Metadata_Well"], r["Metadata_Compound"]) == ("P1", "A02",
                                                                                  "DMSO")
    assert r["Metadata_Object_Count"] == 2
    assert (r["Metadata_Sites_Used"], r["Metadata_Sites_Excluded"]) == (1, 1)
    assert r["Metadata_QC_Exclusions"] == "site 2: QC fail: blurry"
    assert r["Nuclei_AreaShape_Area"] == 6.0
    assert r["Cells_Intensity_MeanIntensity_DNA"] == pytest.approx(0.3)
    # the features are the site tables' own (no per-cell Metadata_ column is summarised)
    assert feature_columns_of(row) == FEATURES
    assert "ObjectNumber" not in row.columns
    assert r["Metadata_Provenance_SegmentationMethod"] == "classical"
    assert r["Metadata_Provenance_Step"] == "aggregate_wells"


def test_a_well_with_every_site_stopped_keeps_every_feature_column(batch):
    folder, _, platemap = batch
    row = well_profile(
        feature_tables=[site_path(folder, "A03", s, ".parquet") for s in ("1", "2")],
        platemap_row=platemap["A03"], plate="P1", well="A03", params={"operation": "mean"})
    r = row.iloc[0]
    assert feature_columns_of(row) == FEATURES
    assert row[FEATURES].isna().all(axis=None)
    assert (r["Metadata_Object_Count"], r["Metadata_Sites_Used"],
            r["Metadata_Sites_Excluded"]) == (0, 0, 2)
    assert r["Metadata_QC_Exclusions"] == "site 1: QC fail: empty | site 2: QC unreadable: truncated"
    # the row still names the images it is about
    assert r["Metadata_Provenance_ImageSHA256"]


def test_aggregate_normalize_and_merge(batch, tmp_path):
    folder, sites, platemap = batch
    wells = aggregate_wells(sites=sites, features_dir=folder, channels=["DNA"],
                            platemap=platemap, plate="P1", params={"operation": "median"},
                            output=tmp_path / "wells" / "A01-A03.parquet")
    assert wells["Metadata_Well"].tolist() == ["A01", "A02", "A03"]
    assert wells["Metadata_Object_Count"].tolist() == [3, 2, 0]
    assert wells["Nuclei_AreaShape_Area"].tolist()[:2] == [20.0, 6.0]
    on_disk = read_table(tmp_path / "wells" / "A01-A03.parquet")
    assert on_disk.columns.tolist() == wells.columns.tolist()
    data = [c for c in wells.columns if not c.startswith("Metadata_Provenance_")]
    pd.testing.assert_frame_equal(on_disk[data], wells[data], check_dtype=False)
    assert read_file_metadata(tmp_path / "wells" / "A01-A03.parquet")["lineage"]["segment"] == (
        "s" * 16)

    params = {"method": "robust_z", "control_role": "negative_control"}
    normalized = normalize_plate_profiles(
        well_tables=[tmp_path / "wells" / "A01-A03.parquet"], plate="P1", params=params,
        out_profiles=tmp_path / "profiles.parquet",
        out_normalized=tmp_path / "profiles_normalized.parquet")
    raw = read_table(tmp_path / "profiles.parquet")
    assert raw["Nuclei_AreaShape_Area"].tolist()[:2] == [20.0, 6.0]
    # controls A01 (20) and A02 (6): median 13, MAD 7
    assert normalized["Nuclei_AreaShape_Area"].tolist()[:2] == pytest.approx(
        [7 / (7 * MAD_SCALE), -7 / (7 * MAD_SCALE)])
    assert (normalized["Metadata_Provenance_Step"] == "normalize_plate").all()
    assert normalized["Metadata_Provenance_SegmentationMethod"].iloc[0] == "classical"

    merged = merge_experiment(plate_tables=[tmp_path / "profiles_normalized.parquet"],
                              output=tmp_path / "experiment.parquet")
    assert len(merged) == 3
    assert (merged["Metadata_Provenance_Step"] == "merge_experiment").all()
    assert read_file_metadata(tmp_path / "experiment.parquet")["params"] == {"plates": ["P1"]}
