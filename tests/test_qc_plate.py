import numpy as np
import pandas as pd

from plateflow.qc.plate import DEFAULT_PARAMS, plate_relative_flags


def _plate(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "Metadata_Well": [f"B{i:02d}" for i in range(n)],
        "QC_Status": ["pass"] * n,
        "QC_FocusScore_DNA": rng.normal(6.0, 0.3, n),
        "QC_ForegroundFraction_DNA": rng.normal(0.2, 0.01, n),
        "QC_Intensity_P50_DNA": rng.normal(500, 10, n),
    })


def test_clean_plate_has_no_outliers():
    z, failures = plate_relative_flags(_plate(), ["DNA"], params=DEFAULT_PARAMS)
    assert failures == []
    assert set(z.columns) == {"QC_PlateZ_FocusScore_DNA", "QC_PlateZ_ForegroundFraction_DNA"}
    assert z.abs().max().max() < DEFAULT_PARAMS["max_robust_z"]


def test_a_site_much_blurrier_than_its_plate_is_flagged_in_the_bad_direction_only():
    table = _plate()
    table.loc[3, "QC_FocusScore_DNA"] = 2.0        # a third of its neighbours' sharpness
    table.loc[5, "QC_FocusScore_DNA"] = 12.0       # sharper than the rest: fine
    z, failures = plate_relative_flags(table, ["DNA"], params=DEFAULT_PARAMS)
    assert [(f["row"], f["metric"]) for f in failures] == [(3, "PlateZ_FocusScore")]
    assert failures[0]["value"] < -DEFAULT_PARAMS["max_robust_z"]
    assert "below the plate median" in failures[0]["reason"]
    assert z.loc[5, "QC_PlateZ_FocusScore_DNA"] > 6


def test_failed_sites_do_not_set_the_reference_and_small_plates_are_not_judged():
    table = _plate()
    table.loc[:14, "QC_Status"] = "fail"           # only 5 passing sites left
    table.loc[:14, "QC_FocusScore_DNA"] = 1.0
    z, failures = plate_relative_flags(table, ["DNA"], params=DEFAULT_PARAMS)
    assert failures == [] and z.isna().all().all()
