"""Parity with CellProfiler: the comparison itself, and ExampleHuman against CellProfiler 4.0.6."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plateflow.features.parity import (
    common_features,
    from_cellprofiler_406,
    identical_masks,
    match_objects,
    parity_table,
)

#: Features whose difference from CellProfiler 4.0.6 is a documented convention
#: (docs/features.md, "Parity with CellProfiler"); each is checked on its own below.
DOCUMENTED = {"AreaShape_Solidity"} | {f"Location_MaxIntensity_{axis}_{ch}" for axis in "XY"
                                      for ch in ("DNA", "PH3")}


def test_match_objects_pairs_mutual_nearest_within_the_distance():
    ours = np.array([[0.0, 0.0], [10.0, 0.0], [50.0, 50.0], [np.nan, np.nan]])
    theirs = np.array([[10.5, 0.0], [0.2, 0.1], [10.9, 0.0], [80.0, 80.0]])
    mine, ref = match_objects(ours, theirs, max_distance=1.0)
    # (1 -> 0) is mutual; theirs 2 is nearer to ours 1 than nothing else but not mutual
    assert sorted(zip(mine.tolist(), ref.tolist())) == [(0, 1), (1, 0)]
    assert match_objects(ours[:0], theirs, max_distance=1.0)[0].size == 0


def test_parity_table_measures_agreement_per_feature():
    rng = np.random.default_rng(0)
    area = rng.uniform(50, 500, 40)
    ours = pd.DataFrame({"Nuclei_AreaShape_Area": area,
                         "Nuclei_Intensity_MeanIntensity_DNA": area * 1.1,
                         "Nuclei_AreaShape_EulerNumber": np.ones(40)})
    reference = pd.DataFrame({"ObjectNumber": np.arange(1, 41), "AreaShape_Area": area,
                              "Intensity_MeanIntensity_DNA": area,
                              "AreaShape_EulerNumber": np.ones(40), "AreaShape_Other": area})
    assert common_features(ours, reference, "Nuclei") == [
        "AreaShape_Area", "Intensity_MeanIntensity_DNA", "AreaShape_EulerNumber"]
    pairs = (np.arange(40), np.arange(40))
    table = parity_table(ours, reference, "Nuclei", pairs).set_index("feature")
    assert table.loc["AreaShape_Area", "identical"]
    assert table.loc["AreaShape_Area", "pearson_r"] == pytest.approx(1.0)
    mean = table.loc["Intensity_MeanIntensity_DNA"]
    assert not mean["identical"] and mean["pearson_r"] == pytest.approx(1.0)
    assert mean["median_rel_diff"] == pytest.approx(0.1 / 1.1)
    euler = table.loc["AreaShape_EulerNumber"]  # constant: no r, but identical
    assert np.isnan(euler["pearson_r"]) and euler["identical"] and euler["n"] == 40


def test_cellprofiler_406_orientation_becomes_degrees():
    table = pd.DataFrame({"AreaShape_Orientation": [np.pi / 4, -np.pi / 2]})
    assert from_cellprofiler_406(table)["AreaShape_Orientation"].tolist() == pytest.approx(
        [45.0, -90.0])


@pytest.fixture(scope="module")
def examplehuman():
    real = os.environ.get("PLATEFLOW_REAL_DATA")
    if not real:
        pytest.skip("PLATEFLOW_REAL_DATA is not set: real-data tests need ../shared/data")
    from helpers import examplehuman

    ours, tables, image = examplehuman.measure(Path(real), cellprofiler_way=True)
    return ours, {c: from_cellprofiler_406(t) for c, t in tables.items()}, image


@pytest.mark.realdata
@pytest.mark.parametrize(("compartment", "at_least"), [("Nuclei", 150), ("Cells", 10),
                                                        ("Cytoplasm", 10)])
def test_identical_masks_give_cellprofilers_numbers(examplehuman, compartment, at_least):
    """On objects whose masks equal CellProfiler's, every feature both compute has r >= 0.99
    and a median relative difference <= 1 % (the issue's parity target), except the documented
    conventions, each checked against its own explanation."""
    ours, tables, image = examplehuman
    reference = tables[compartment]
    pairs = identical_masks(ours, reference, compartment)
    assert len(pairs[0]) >= at_least  # measured: 179 nuclei, 13 cells, 12 cytoplasms
    table = parity_table(ours, reference, compartment, pairs).set_index("feature")
    assert len(table) >= 57  # AreaShape (incl. Zernike), Intensity, Location, DNA and PH3
    checked = table.drop(index=[f for f in DOCUMENTED if f in table.index])
    r_ok = checked["pearson_r"].fillna(1.0) >= 0.99  # NaN: constant on both sides
    close = checked["median_rel_diff"] <= 0.01
    assert (r_ok & close).all(), checked[~(r_ok & close)]
    constant = checked[checked["pearson_r"].isna()]
    assert constant["identical"].all(), constant
    # stronger than the target: everything else is CellProfiler's number to 1e-9, except
    # Orientation at the exact +-45 degree tie, whose sign CellProfiler 4.0.6 chose otherwise
    assert set(checked.index[~checked["identical"]]) <= {"AreaShape_Orientation"}
    orientation = table.loc["AreaShape_Orientation"]
    assert orientation["median_rel_diff"] < 1e-9 and orientation["pearson_r"] > 0.99
    # Solidity: newer scikit-image rasterises the convex hull from pixel corners, so the
    # convex area is larger and Solidity a little lower than CellProfiler 4.0.6's.
    mine, theirs = pairs
    ratio = (ours[f"{compartment}_AreaShape_Solidity"].to_numpy()[mine]
             / reference["AreaShape_Solidity"].to_numpy()[theirs])
    assert 0.9 <= ratio.min() and ratio.max() <= 1.0 + 1e-9 and 0.95 < np.median(ratio)
    # MaxIntensity_X/Y: where several pixels share the maximum (8-bit images: often), we take
    # the first in raster order (cp_measure) and CellProfiler scipy's maximum_position; both
    # are a brightest pixel of the object, and the positions agree where the maximum is unique.
    for c, ch in enumerate(("DNA", "PH3")):
        position = {}
        for name, table, rows in (("ours", ours, mine), ("cp", reference, theirs)):
            prefix = f"{compartment}_" if name == "ours" else ""
            x = table[f"{prefix}Location_MaxIntensity_X_{ch}"].to_numpy()[rows].astype(int)
            y = table[f"{prefix}Location_MaxIntensity_Y_{ch}"].to_numpy()[rows].astype(int)
            position[name] = (y, x)
        np.testing.assert_array_equal(image[c][position["ours"]], image[c][position["cp"]])
        maxima = ours[f"{compartment}_Intensity_MaxIntensity_{ch}"].to_numpy()[mine]
        np.testing.assert_allclose(image[c][position["ours"]], maxima, rtol=1e-6)
