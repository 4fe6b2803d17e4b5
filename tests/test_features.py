"""Tests for plateflow.features (per-object shape, location and intensity features)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from plateflow.core.contract import SITE_KEYS, new_site_path, write_placeholder
from plateflow.core.imageio import write_stack
from plateflow.core.provenance import read_file_metadata, read_table
from plateflow.features import (
    COMPARTMENTS,
    DEFAULT_PARAMS,
    FAMILIES,
    feature_columns,
    measure_objects,
    registry,
)
from plateflow.features.intensity import INTENSITY_FEATURES
from plateflow.features.registry import enabled_families
from plateflow.features.run import extract_features
from plateflow.features.shape import SHAPE_FEATURES

CHANNELS = ["DNA", "Mito"]
#: The families the hand-checked tests below look at.
BASIC = ("AreaShape", "Location", "Intensity")
REPO = Path(__file__).resolve().parents[1]


def _seg(nuclei, cells=None):
    nuclei = np.asarray(nuclei, np.int32)
    cells = nuclei.copy() if cells is None else np.asarray(cells, np.int32)
    return SimpleNamespace(nuclei=nuclei, cells=cells, cytoplasm=np.where(nuclei > 0, 0, cells))


def _disk(shape, center, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


@pytest.fixture(scope="module")
def scene():
    """Nucleus 1: 10x20 rectangle (rows 10..19, cols 10..29) inside cell 1 (14x28 rectangle);
    nucleus 2: disk r=8 at (60, 60) inside cell 2: disk r=15. DNA constant 0.5 in nuclei and
    0.1 elsewhere; Mito a ramp."""
    shape = (90, 90)
    nuclei = np.zeros(shape, np.int32)
    cells = np.zeros(shape, np.int32)
    cells[8:22, 6:34] = 1
    nuclei[10:20, 10:30] = 1
    cells[_disk(shape, (60, 60), 15)] = 2
    nuclei[_disk(shape, (60, 60), 8)] = 2
    dna = np.where(nuclei > 0, 0.5, 0.1).astype(np.float32)
    mito = np.tile(np.linspace(0, 1, shape[1], dtype=np.float32), (shape[0], 1))
    image = np.stack([dna, mito])
    return image, _seg(nuclei, cells)


def test_columns_and_dtypes(scene):
    image, seg = scene
    df = measure_objects(image, CHANNELS, seg)
    columns = feature_columns(CHANNELS)
    assert list(df.columns) == columns
    assert len(columns) == len(set(columns))
    # every family is on by default; AreaShape, Location (Center_X/Y/Z, then
    # CenterMassIntensity_X/Y/Z and MaxIntensity_X/Y/Z per channel) and Intensity first
    basic = feature_columns(CHANNELS, params={n: {"enabled": n in BASIC} for n in FAMILIES})
    assert len(basic) == 1 + 3 * (len(SHAPE_FEATURES) + 3 + 6 * 2 + len(INTENSITY_FEATURES) * 2)
    per_compartment = sum(len(f.columns(CHANNELS, section)) for f, section in
                          enabled_families(None))
    assert len(columns) == 1 + 3 * per_compartment
    assert {c.split("_")[1] for c in columns[1:]} == set(FAMILIES)
    for name in (
        "ObjectNumber",
        "Nuclei_AreaShape_Area",
        "Nuclei_Location_Center_X",
        "Cytoplasm_Location_Center_Y",
        "Cells_Intensity_MeanIntensity_DNA",
        "Cytoplasm_Intensity_MADIntensity_Mito",
        "Cells_AreaShape_FormFactor",
    ):
        assert name in columns
    assert columns[0] == "ObjectNumber"
    assert df["ObjectNumber"].dtype == np.int64
    assert all(df[c].dtype == np.float64 for c in columns[1:])
    assert df["ObjectNumber"].tolist() == [1, 2]
    # compartment blocks in order
    firsts = [columns.index(f"{c}_AreaShape_Area") for c in COMPARTMENTS]
    assert firsts == sorted(firsts)


def test_rectangle_shape(scene):
    image, seg = scene
    row = measure_objects(image, CHANNELS, seg).iloc[0]
    assert row["Nuclei_AreaShape_Area"] == 200
    assert row["Nuclei_AreaShape_BoundingBoxArea"] == 200
    assert row["Nuclei_AreaShape_Extent"] == 1.0
    assert row["Nuclei_AreaShape_Solidity"] == pytest.approx(1.0)
    assert row["Nuclei_AreaShape_EulerNumber"] == 1
    assert row["Nuclei_Location_Center_X"] == pytest.approx(19.5)
    assert row["Nuclei_Location_Center_Y"] == pytest.approx(14.5)
    # second moments of a w x h rectangle: major = sqrt(12 * var) * ... = w*sqrt(4/3*(1-1/w^2))
    assert row["Nuclei_AreaShape_MajorAxisLength"] == pytest.approx(
        4 * np.sqrt((20**2 - 1) / 12), rel=1e-6
    )
    assert row["Nuclei_AreaShape_MinorAxisLength"] == pytest.approx(
        4 * np.sqrt((10**2 - 1) / 12), rel=1e-6
    )
    # long axis along X (columns): +-90 degrees from the row axis
    assert abs(row["Nuclei_AreaShape_Orientation"]) == pytest.approx(90)
    assert row["Nuclei_AreaShape_EquivalentDiameter"] == pytest.approx(np.sqrt(4 * 200 / np.pi))
    ff = 4 * np.pi * 200 / row["Nuclei_AreaShape_Perimeter"] ** 2
    assert row["Nuclei_AreaShape_FormFactor"] == pytest.approx(ff)
    assert row["Nuclei_AreaShape_Compactness"] == pytest.approx(1 / ff)
    # the cytoplasm is a rectangular ring: one hole -> Euler number 0
    assert row["Cytoplasm_AreaShape_Area"] == 14 * 28 - 200
    assert row["Cytoplasm_AreaShape_EulerNumber"] == 0


def test_vertical_object_orientation_is_zero():
    labels = np.zeros((40, 40), np.int32)
    labels[5:35, 15:22] = 1
    df = measure_objects(np.zeros((2, 40, 40), np.float32), CHANNELS, _seg(labels))
    assert df["Nuclei_AreaShape_Orientation"].iloc[0] == pytest.approx(0)
    labels = np.zeros((40, 40), np.int32)
    idx = np.arange(5, 35)
    for d in range(-2, 3):  # a thick diagonal line running down-right
        labels[idx, np.clip(idx + d, 0, 39)] = 1
    df = measure_objects(np.zeros((2, 40, 40), np.float32), CHANNELS, _seg(labels))
    assert abs(df["Nuclei_AreaShape_Orientation"].iloc[0]) == pytest.approx(45, abs=1)


def test_disk_area_and_roundness(scene):
    image, seg = scene
    row = measure_objects(image, CHANNELS, seg).iloc[1]
    disk_area = _disk((90, 90), (60, 60), 8).sum()
    assert row["Nuclei_AreaShape_Area"] == disk_area
    assert row["Nuclei_AreaShape_Area"] == pytest.approx(np.pi * 64, rel=0.05)
    assert row["Nuclei_AreaShape_Eccentricity"] < 0.1
    assert 0.9 < row["Nuclei_AreaShape_FormFactor"] < 1.15
    assert row["Nuclei_Location_Center_X"] == pytest.approx(60)
    assert row["Nuclei_Location_Center_Y"] == pytest.approx(60)
    assert row["Cells_AreaShape_Area"] == _disk((90, 90), (60, 60), 15).sum()


def test_constant_intensity_object(scene):
    image, seg = scene
    df = measure_objects(image, CHANNELS, seg)
    for feature in (
        "MeanIntensity",
        "MinIntensity",
        "MaxIntensity",
        "MedianIntensity",
        "LowerQuartileIntensity",
        "UpperQuartileIntensity",
    ):
        assert np.allclose(df[f"Nuclei_Intensity_{feature}_DNA"], 0.5)
        assert np.allclose(df[f"Cytoplasm_Intensity_{feature}_DNA"], 0.1)
    assert np.allclose(df["Nuclei_Intensity_StdIntensity_DNA"], 0, atol=1e-12)
    assert np.allclose(df["Nuclei_Intensity_MADIntensity_DNA"], 0, atol=1e-12)
    for comp in COMPARTMENTS:
        for ch in CHANNELS:
            integrated = df[f"{comp}_Intensity_IntegratedIntensity_{ch}"]
            mean_x_area = df[f"{comp}_Intensity_MeanIntensity_{ch}"] * df[f"{comp}_AreaShape_Area"]
            assert np.allclose(integrated, mean_x_area, rtol=1e-9)
    # cell = nucleus + cytoplasm
    cell_sum = df["Cells_Intensity_IntegratedIntensity_Mito"]
    parts = df["Nuclei_Intensity_IntegratedIntensity_Mito"]
    parts = parts + df["Cytoplasm_Intensity_IntegratedIntensity_Mito"]
    assert np.allclose(cell_sum, parts)


def test_cellprofiler_quantile_rule_small_object():
    labels = np.zeros((3, 3), np.int32)
    labels[0, :2] = 1
    labels[1, :2] = 1  # four pixels
    plane = np.zeros((3, 3), np.float32)
    plane[0, :2] = [0.4, 0.1]
    plane[1, :2] = [0.3, 0.2]
    df = measure_objects(np.stack([plane, plane]), CHANNELS, _seg(labels))
    row = df.iloc[0]
    # sorted 0.1 0.2 0.3 0.4; CellProfiler positions n*q: 1 -> 0.2, 2 -> 0.3, 3 -> 0.4 (last)
    assert row["Nuclei_Intensity_LowerQuartileIntensity_DNA"] == pytest.approx(0.2)
    assert row["Nuclei_Intensity_MedianIntensity_DNA"] == pytest.approx(0.3)
    assert row["Nuclei_Intensity_UpperQuartileIntensity_DNA"] == pytest.approx(0.4)
    # |x - 0.3| sorted 0 0.1 0.1 0.2 -> position 2 -> 0.1
    assert row["Nuclei_Intensity_MADIntensity_DNA"] == pytest.approx(0.1)
    assert row["Nuclei_Intensity_StdIntensity_DNA"] == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4]))


def _cp_quantile_reference(values, q):
    v = np.sort(values)
    pos = len(v) * q
    i = int(np.floor(pos))
    if i < len(v) - 1:
        return v[i] * (1 - (pos - i)) + v[i + 1] * (pos - i)
    return v[i]


def test_intensity_statistics_match_per_object_reference():
    rng = np.random.default_rng(7)
    shape = (60, 60)
    labels = rng.integers(0, 40, shape).astype(np.int32)  # 39 scattered objects, many pixels
    labels[labels > 0] += 3  # non-consecutive numbers 4..42
    image = rng.random((2, *shape)).astype(np.float32)
    image[1] = np.round(image[1] * 4) / 4  # many ties
    df = measure_objects(image, CHANNELS, _seg(labels)).set_index("ObjectNumber")
    assert df.index.tolist() == sorted(set(np.unique(labels)) - {0})
    for obj in (4, 17, 42):
        for c, ch in enumerate(CHANNELS):
            v = image[c][labels == obj].astype(np.float64)
            med = _cp_quantile_reference(v, 0.5)
            expected = {
                "IntegratedIntensity": v.sum(),
                "MeanIntensity": v.mean(),
                "StdIntensity": v.std(),
                "MinIntensity": v.min(),
                "MaxIntensity": v.max(),
                "MedianIntensity": med,
                "LowerQuartileIntensity": _cp_quantile_reference(v, 0.25),
                "UpperQuartileIntensity": _cp_quantile_reference(v, 0.75),
                "MADIntensity": _cp_quantile_reference(np.abs(v - med), 0.5),
            }
            for feature, value in expected.items():
                got = df.loc[obj, f"Nuclei_Intensity_{feature}_{ch}"]
                assert got == pytest.approx(value, rel=1e-9, abs=1e-12), (obj, ch, feature)


def test_empty_cytoplasm_gives_nan_and_keeps_row(scene):
    image, seg = scene
    seg = _seg(seg.nuclei)  # cells == nuclei -> no cytoplasm at all
    # (the other families' undefined values, e.g. a second-closest neighbour of 2 objects,
    # are their own tests' business)
    df = measure_objects(image, CHANNELS, seg,
                         params={n: {"enabled": n in BASIC} for n in FAMILIES})
    assert len(df) == 2
    cyto = [c for c in df.columns if c.startswith("Cytoplasm_")]
    assert df[cyto].isna().all().all()
    # NormalizedMoment_p_q with p + q < 2 is NaN for every object (scikit-image, CellProfiler)
    always_nan = {f"Nuclei_AreaShape_NormalizedMoment_{pq}" for pq in ("0_0", "0_1", "1_0")}
    nuclei = [c for c in df.columns if c.startswith("Nuclei_") and c not in always_nan]
    assert df[nuclei].notna().all().all()
    assert df[sorted(always_nan)].isna().all().all()


def test_partly_missing_compartment():
    nuclei = np.zeros((30, 30), np.int32)
    nuclei[2:8, 2:8] = 1
    nuclei[15:25, 15:25] = 2
    cells = nuclei.copy()
    cells[12:28, 12:28] = 2
    cells[15:25, 15:25] = 2
    cells[2:8, 2:8] = 1  # cell 1 == nucleus 1 -> no cytoplasm for object 1
    df = measure_objects(np.ones((2, 30, 30), np.float32), CHANNELS, _seg(nuclei, cells))
    assert df["ObjectNumber"].tolist() == [1, 2]
    assert np.isnan(df["Cytoplasm_AreaShape_Area"].iloc[0])
    assert np.isnan(df["Cytoplasm_Intensity_MeanIntensity_DNA"].iloc[0])
    assert df["Cytoplasm_AreaShape_Area"].iloc[1] == 16 * 16 - 100


def test_no_objects_gives_empty_frame_with_columns(scene):
    image, _ = scene
    empty = np.zeros(image.shape[1:], np.int32)
    df = measure_objects(image, CHANNELS, _seg(empty))
    assert len(df) == 0
    assert list(df.columns) == feature_columns(CHANNELS)
    full = measure_objects(*scene[:1], CHANNELS, scene[1])
    assert (df.dtypes == full.dtypes).all()
    both = pd.concat([df, full], ignore_index=True)
    assert (both.dtypes == full.dtypes).all() and len(both) == 2


def test_single_pixel_object_has_nan_form_factor():
    labels = np.zeros((10, 10), np.int32)
    labels[5, 5] = 1
    df = measure_objects(np.ones((2, 10, 10), np.float32), CHANNELS, _seg(labels))
    assert df["Nuclei_AreaShape_Area"].iloc[0] == 1
    assert np.isnan(df["Nuclei_AreaShape_FormFactor"].iloc[0])
    assert df["Nuclei_Intensity_MedianIntensity_DNA"].iloc[0] == 1


def test_bad_inputs_are_explained(scene):
    image, seg = scene
    with pytest.raises(ValueError, match="channels"):
        measure_objects(image, ["DNA"], seg)
    with pytest.raises(ValueError, match="unique"):
        measure_objects(image, ["DNA", "DNA"], seg)
    with pytest.raises(ValueError, match="shape"):
        measure_objects(image[:, :50], CHANNELS, seg)


# --------------------------------------------------------------------------------------------
# families: registry and config
# --------------------------------------------------------------------------------------------


def test_default_params_equal_the_schema_defaults():
    yaml = pytest.importorskip("yaml")
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    section = schema["properties"]["features"]
    defaults = {name: {k: v["default"] for k, v in spec["properties"].items()}
                for name, spec in section["properties"].items()}
    assert defaults == DEFAULT_PARAMS
    # the defaults compute every family (issue 10)
    assert all(d["enabled"] for d in DEFAULT_PARAMS.values())
    assert set(DEFAULT_PARAMS) == {"AreaShape", "Location", "Intensity", "Texture", "Granularity",
                                   "RadialDistribution", "Correlation", "Neighbors"}
    for spec in section["properties"].values():
        assert spec["additionalProperties"] is False


def test_disabled_families_give_no_columns(scene):
    image, seg = scene
    full = measure_objects(image, CHANNELS, seg)
    params = {"Intensity": {"enabled": False}, "Location": {"enabled": True}}
    columns = feature_columns(CHANNELS, params=params)
    df = measure_objects(image, CHANNELS, seg, params=params)
    assert list(df.columns) == columns == [c for c in full.columns if "_Intensity_" not in c]
    pd.testing.assert_frame_equal(df, full[columns])
    only_ids = {name: {"enabled": False} for name in FAMILIES}
    assert list(measure_objects(image, CHANNELS, seg, params=only_ids).columns) == [
        "ObjectNumber"]


def test_unknown_family_or_option_is_named(scene):
    image, seg = scene
    with pytest.raises(ValueError, match="AreaShape"):
        feature_columns(CHANNELS, params={"Zernike": {"enabled": True}})
    with pytest.raises(ValueError, match="enabled"):
        measure_objects(image, CHANNELS, seg, params={"Location": {"scale": 3}})


def test_a_registered_family_adds_its_columns(scene, monkeypatch):
    """A new family is one registered function: its columns follow the others, per compartment."""
    image, seg = scene
    monkeypatch.setattr(registry, "FAMILIES", dict(registry.FAMILIES))  # unregistered afterwards

    def columns(channels, params):
        return [f"Max_{ch}" for ch in channels] if params["per_channel"] else ["Pixels"]

    @registry.register_family("Toy", columns=columns, order=99, defaults={"per_channel": True})
    def toy(objects, images, params):
        rows = objects.rows(objects.labels[objects.labels > 0])
        counts = np.bincount(rows, minlength=objects.n).astype(np.float64)
        if not params["per_channel"]:
            return {"Pixels": counts}
        return {f"Max_{ch}": np.where(counts > 0, images.pixels[c].max(), np.nan)
                for c, ch in enumerate(images.channels)}

    df = measure_objects(image, CHANNELS, seg, params={"Toy": {"per_channel": False}})
    assert list(df.columns) == feature_columns(CHANNELS, params={"Toy": {"per_channel": False}})
    assert list(df.columns).index("Nuclei_Toy_Pixels") == list(df.columns).index(
        "Cells_AreaShape_Area") - 1
    assert df["Nuclei_Toy_Pixels"].tolist() == df["Nuclei_AreaShape_Area"].tolist()
    assert "Cytoplasm_Toy_Max_Mito" in measure_objects(image, CHANNELS, seg).columns


# --------------------------------------------------------------------------------------------
# the batch job: run.extract_features
# --------------------------------------------------------------------------------------------


def test_batch_job_writes_one_table_per_site(scene, tmp_path):
    image, seg = scene
    meta = {"plate": "P", "channels": CHANNELS, "lineage": {"segment": "abc"}}
    labels = np.stack([seg.nuclei, seg.cells, seg.cytoplasm]).astype(np.int32)
    segmentation = {"method": "classical", "model": None, "weights_sha256": None}
    for site, sha in (("1", "a" * 64), ("2", "b" * 64)):
        site_meta = {**meta, "well": "B02", "site": site, "image_sha256": sha}
        # the corrected image as float16 on disk: measured as float32
        write_stack(new_site_path(tmp_path / "pre", "B02", site, ".tiff"),
                    image.astype(np.float16), metadata=site_meta)
        path = new_site_path(tmp_path / "seg", "B02", site, ".tiff")
        if site == "1":
            write_stack(path, labels, metadata={**site_meta, "segmentation": segmentation,
                                                "compartments": list(COMPARTMENTS)})
        else:
            write_placeholder(path, pages=3, dtype=np.int32, reason="QC fail: blur",
                              metadata={**site_meta, "segmentation": segmentation})
    params = {"Location": {"enabled": False}}
    n = extract_features(sites=["B02/1", "B02/2"], preprocessed_dir=tmp_path / "pre",
                         labels_dir=tmp_path / "seg", params=params, out_dir=tmp_path / "feat")
    assert n == 2
    table = read_table(tmp_path / "feat" / "B02" / "s1.parquet")
    columns = feature_columns(CHANNELS, params=params)
    assert list(table.columns[:3]) == SITE_KEYS
    assert list(table.columns[3 : 3 + len(columns)]) == columns
    expected = measure_objects(image.astype(np.float16).astype(np.float32), CHANNELS, seg,
                               params=params)
    # stored as float32 (the families compute in float64)
    assert (table[columns[1:]].dtypes == np.float32).all()
    pd.testing.assert_frame_equal(table[columns], expected.astype(
        {c: np.float32 for c in columns[1:]}))
    assert set(table["Metadata_Provenance_SegmentationMethod"]) == {"classical"}
    empty = read_table(tmp_path / "feat" / "B02" / "s2.parquet")
    assert len(empty) == 0 and list(empty.columns) == list(table.columns)
    assert (empty[columns[1:]].dtypes == np.float32).all()
    assert read_file_metadata(tmp_path / "feat" / "B02" / "s2.parquet")["skipped"] == (
        "QC fail: blur")


def test_batch_job_joins_the_segmentation_columns_by_object_number(scene, tmp_path):
    image, seg = scene
    meta = {"plate": "P", "well": "B02", "site": "1", "channels": CHANNELS,
            "lineage": {"segment": "abc"}, "image_sha256": "a" * 64}
    write_stack(new_site_path(tmp_path / "pre", "B02", "1", ".tiff"), image, metadata=meta)
    labels = np.stack([seg.nuclei, seg.cells, seg.cytoplasm]).astype(np.int32)
    write_stack(new_site_path(tmp_path / "seg", "B02", "1", ".tiff"), labels, metadata={
        **meta, "compartments": list(COMPARTMENTS),
        "segmentation": {"method": "cellpose", "model": "m", "weights_sha256": "f" * 64},
        # index i is label i + 1; Cells' list is one short: object 2 gets NaN
        "objects": {"Nuclei_Segmentation_Contrast": [7.5, 2.25],
                    "Cells_Segmentation_Probability": [0.875]}})
    extract_features(sites=["B02/1"], preprocessed_dir=tmp_path / "pre",
                     labels_dir=tmp_path / "seg", params={}, out_dir=tmp_path / "feat")
    table = read_table(tmp_path / "feat" / "B02" / "s1.parquet")
    assert table["ObjectNumber"].tolist() == [1, 2]
    assert table["Nuclei_Segmentation_Contrast"].tolist() == [7.5, 2.25]
    assert table["Nuclei_Segmentation_Contrast"].dtype == np.float32
    probability = table["Cells_Segmentation_Probability"]
    assert probability.iloc[0] == 0.875 and np.isnan(probability.iloc[1])
    columns = list(table.columns)
    assert columns.index("Cells_Segmentation_Probability") > columns.index(
        feature_columns(CHANNELS)[-1])
    with pytest.raises(ValueError, match="Segmentation_<Name>"):
        from plateflow.features.run import join_object_columns

        join_object_columns(table, {"Contrast": [1.0, 2.0]})


# --------------------------------------------------------------------------------------------
# real data: same masks as CellProfiler -> same numbers
# --------------------------------------------------------------------------------------------


# Parity with CellProfiler's own tables (ExampleHuman): tests/test_parity.py


def test_every_family_enabled_runs_on_a_site(scene):
    """All registered families together, through the site step: the columns they declare, in
    order, float64 (the table writer stores float32), one row per object, and each new family's columns present."""
    image, seg = scene
    params = {name: {"enabled": True} for name in FAMILIES}
    df = measure_objects(image, CHANNELS, seg, params=params)
    assert list(df.columns) == feature_columns(CHANNELS, params=params)
    assert len(df) == int(seg.nuclei.max())
    for family in ("Texture", "Granularity", "RadialDistribution", "Correlation", "Neighbors"):
        columns = [c for c in df.columns if c.startswith(f"Cells_{family}_")]
        assert columns, family
        assert all(df[c].dtype == np.float64 for c in columns)
        assert df[columns].notna().any().any(), family
