import numpy as np
import pandas as pd
import pytest

from plateflow.aggregate import MAD_SCALE, aggregate_well, feature_columns_of, normalize_plate


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
