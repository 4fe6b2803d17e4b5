"""QC of the whole synthetic example plate: every planted defect is flagged with the right
reason, and no clean site is flagged (absolute and plate-relative checks together)."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers.synthetic import make_example_plate

from plateflow import qc
from plateflow.qc import plate as qc_plate
from plateflow.qc.run import collect_plate_qc, measure_qc
from plateflow.sheets.discovery import discover_plate

EXPECTED = {  # defect -> (status, a word of the reason)
    "out_of_focus": ("fail", "out of focus"),
    "saturated": ("fail", "saturated"),
    "blank": ("fail", "no cells"),
    "corrupt": ("unreadable", "cannot read image"),
}


@pytest.fixture(scope="module")
def plate_qc(tmp_path_factory):
    root = tmp_path_factory.mktemp("example")
    make_example_plate(root, plate="EXAMPLE1", seed=0, size=512)
    sheet = discover_plate("EXAMPLE1", {"folder": "images", "naming": "metaxpress",
                                        "platemap": "platemap.csv"},
                           channel_map={1: "DNA", 2: "ER", 3: "Mito"}, base_dir=root)
    tables = []
    for batch, sites in sheet.batches(6).items():  # as the workflow runs it: 6 wells a job
        nested = {}
        for site in sites:
            nested.setdefault(site.well, {})[site.site] = site.files
        path = root / "qc" / f"{batch}.parquet"
        measure_qc(sites=nested, channels=sheet.channels, plate="EXAMPLE1",
                   params=qc.DEFAULT_PARAMS, bit_depth=None, output=path)
        tables.append(path)
    table = collect_plate_qc(qc_tables=tables, plate="EXAMPLE1", channels=sheet.channels,
                             params=qc_plate.DEFAULT_PARAMS, out_sites=root / "sites.parquet",
                             out_reacquire=root / "reacquire.csv")
    truth = pd.read_csv(root / "truth.csv")
    truth["site"] = truth["site"].astype(str)
    merged = table.merge(truth, left_on=["Metadata_Well", "Metadata_Site"],
                         right_on=["well", "site"])
    return merged, pd.read_csv(root / "reacquire.csv")


def test_every_planted_defect_is_flagged_with_the_right_reason(plate_qc):
    table, reacquire = plate_qc
    defects = table[table["defect"] != "none"]
    assert len(defects) == 4
    for row in defects.itertuples():
        status, word = EXPECTED[row.defect]
        assert row.QC_Status == status, (row.well, row.site, row.QC_Reasons)
        assert word in row.QC_Reasons, (row.defect, row.QC_Reasons)
        listed = reacquire[(reacquire["well"] == row.well) & (reacquire["site"] == int(row.site))]
        assert listed["reason"].str.contains(word).any(), listed["reason"].tolist()


def test_no_clean_site_is_flagged(plate_qc):
    table, reacquire = plate_qc
    clean = table[table["defect"] == "none"]
    assert len(clean) == 20
    assert (clean["QC_Status"] == "pass").all(), clean.loc[clean["QC_Status"] != "pass",
                                                           ["well", "site", "QC_Reasons"]]
    assert len(reacquire.groupby(["well", "site"])) == 4
