"""Tests for segmentation validation: the ground-truth table checked at load
(plateflow.sheets.validation), the accuracy table of rule validate_segmentation
(plateflow.segmentation.validation) and its part of the QC report (plateflow.report.validation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from plateflow.core.contract import write_placeholder
from plateflow.core.imageio import write_stack
from plateflow.core.provenance import PROVENANCE_COLUMNS, read_file_metadata, read_table
from plateflow.report.validation import accuracy_html, pooled_accuracy
from plateflow.segmentation.base import cytoplasm_from
from plateflow.segmentation.validation import score_site, validate_segmentation
from plateflow.sheets.discovery import Experiment, PlateSheet, Site
from plateflow.sheets.errors import DiscoveryError
from plateflow.sheets.validation import read_experiment_ground_truth, read_ground_truth

SHAPE = (60, 60)


def _squares(boxes) -> np.ndarray:
    labels = np.zeros(SHAPE, np.int32)
    for i, (y, x, size) in enumerate(boxes, start=1):
        labels[y:y + size, x:x + size] = i
    return labels


TRUTH = _squares([(2, 2, 8), (20, 20, 10), (40, 5, 9), (5, 40, 7)])
TRUTH_CELLS = np.where(TRUTH > 0, TRUTH, 0)
TRUTH_CELLS[0:14, 0:14] = np.where(TRUTH[0:14, 0:14] > 0, TRUTH[0:14, 0:14], 1)


def _write_labels(path, nuclei, cells=None, *, well="B02", site="1", reason=None):
    meta = {"plate": "P1", "well": well, "site": site, "channels": ["DNA"],
            "image_sha256": f"{int(site):064x}", "lineage": {"segment": "abc"}}
    if reason is not None:
        write_placeholder(path, pages=3, dtype=np.int32, reason=reason,
                          metadata={**meta, "segmentation": {"method": None, "model": None,
                                                             "weights_sha256": None}})
        return
    cells = nuclei if cells is None else cells
    stack = np.stack([nuclei, cells, cytoplasm_from(cells, nuclei)]).astype(np.int32)
    write_stack(path, stack, metadata={
        **meta, "compartments": ["Nuclei", "Cells", "Cytoplasm"],
        "segmentation": {"method": "classical", "model": None, "weights_sha256": None,
                         "info": {"n_nuclei": int(nuclei.max())}}})


def _write_mask(path, labels):
    tifffile.imwrite(path, labels.astype(np.uint16))
    return str(path)


# ------------------------------------------------------------------------------- scoring --


def test_perfect_labels_score_one():
    figures = score_site({"Nuclei": TRUTH, "Cells": TRUTH_CELLS},
                         {"Nuclei": TRUTH, "Cells": TRUTH_CELLS})
    for compartment in ("Nuclei", "Cells"):
        f = figures[compartment]
        assert f["AP_50"] == f["AP_50_95"] == f["Dice"] == 1.0
        assert (f["TP_50"], f["FP_50"], f["FN_50"]) == (4, 0, 0)


def test_a_missing_and_an_extra_object_count_exactly():
    predicted = TRUTH.copy()
    predicted[predicted == 3] = 0  # a missed nucleus
    predicted[50:56, 50:56] = 3  # an object that is not there
    f = score_site({"Nuclei": predicted}, {"Nuclei": TRUTH})["Nuclei"]
    assert (f["TP_50"], f["FP_50"], f["FN_50"]) == (3, 1, 1)
    assert f["AP_50"] == pytest.approx(3 / 5)
    assert f["Precision_50"] == f["Recall_50"] == pytest.approx(3 / 4)
    assert (f["N_True"], f["N_Predicted"]) == (4, 4)


def test_labels_of_another_size_are_an_error():
    with pytest.raises(ValueError, match="60x60 px but the site's labels are 30x30"):
        score_site({"Nuclei": TRUTH[:30, :30]}, {"Nuclei": TRUTH})


@pytest.fixture
def plate_files(tmp_path):
    """Label stacks of three sites (perfect, one object missed, stopped by QC) and masks."""
    seg = tmp_path / "seg"
    seg.mkdir()
    missed = TRUTH.copy()
    missed[missed == 4] = 0
    _write_labels(seg / "s1.tiff", TRUTH, TRUTH_CELLS, site="1")
    _write_labels(seg / "s2.tiff", missed, site="2")
    _write_labels(seg / "s3.tiff", None, site="3", reason="QC fail: out of focus")
    nuclei = _write_mask(tmp_path / "n.tif", TRUTH)
    cells = _write_mask(tmp_path / "c.tif", TRUTH_CELLS)
    return [
        {"well": "B02", "site": "1", "labels": str(seg / "s1.tiff"), "nuclei": nuclei,
         "cells": cells},
        {"well": "B02", "site": "2", "labels": str(seg / "s2.tiff"), "nuclei": nuclei,
         "cells": None},
        {"well": "B02", "site": "3", "labels": str(seg / "s3.tiff"), "nuclei": nuclei,
         "cells": cells},
    ]


def test_accuracy_table_per_site_and_compartment(plate_files, tmp_path):
    output = tmp_path / "validation" / "segmentation_accuracy.parquet"
    validate_segmentation(plate="P1", sites=plate_files, params={"sites": plate_files},
                          output=output)
    table = read_table(output)
    keys = list(zip(table["Metadata_Site"], table["Metadata_Compartment"]))
    assert keys == [("1", "Nuclei"), ("1", "Cells"), ("2", "Nuclei"), ("3", "Nuclei"),
                    ("3", "Cells")]
    rows = table.set_index(["Metadata_Site", "Metadata_Compartment"])
    assert rows.loc[("1", "Nuclei"), "AP_50"] == 1.0 and rows.loc[("1", "Cells"), "Dice"] == 1.0
    s2 = rows.loc[("2", "Nuclei")]
    assert (s2["TP_50"], s2["FP_50"], s2["FN_50"]) == (3, 0, 1)
    assert s2["AP_50"] == pytest.approx(0.75) and s2["Recall_50"] == pytest.approx(0.75)
    # the site the QC gate stopped is listed, not scored
    s3 = rows.loc[("3", "Nuclei")]
    assert not s3["Metadata_Segmented"] and s3["Metadata_NotSegmentedReason"] == (
        "QC fail: out of focus")
    assert np.isnan(s3["AP_50"]) and pd.isna(s3["TP_50"]) and s3["N_True"] == 4
    assert rows["Metadata_Segmented"].tolist() == [True, True, True, False, False]
    assert not [c for c in PROVENANCE_COLUMNS if c not in table.columns]
    assert table["Metadata_Provenance_ImageSHA256"].str.fullmatch("[0-9a-f]{64}").all()
    assert set(table["Metadata_Provenance_Step"]) == {"validate_segmentation"}
    assert set(table["Metadata_Provenance_SegmentationMethod"]) == {"classical"}
    assert table["Metadata_GroundTruthSHA256"].str.fullmatch("[0-9a-f]{64}").all()
    meta = read_file_metadata(output)
    assert meta["step"] == "validate_segmentation" and meta["lineage"]["segment"] == "abc"


def test_an_unreadable_mask_names_the_site_and_file(plate_files, tmp_path):
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 not a tiff")
    sites = [{**plate_files[1], "nuclei": str(broken)}]
    with pytest.raises(ValueError, match=r"plate P1, well B02, site 2: cannot read the nuclei "
                                         r"mask '.*broken.tif'"):
        validate_segmentation(plate="P1", sites=sites, params={}, output=tmp_path / "x.parquet")


# ------------------------------------------------------------------------------- report --


def test_report_part_shows_pooled_and_per_site_figures(plate_files, tmp_path):
    output = tmp_path / "acc.parquet"
    validate_segmentation(plate="P1", sites=plate_files, params={}, output=output)
    table = read_table(output)
    pooled = pooled_accuracy(table).set_index("Compartment")
    # nuclei pooled over the two segmented sites: TP 4 + 3, FN 0 + 1
    assert pooled.loc["Nuclei", "AP_50"] == pytest.approx(7 / 8)
    assert pooled.loc["Nuclei", "Recall_50"] == pytest.approx(7 / 8)
    assert (pooled.loc["Nuclei", "Sites"], pooled.loc["Nuclei", "NotSegmented"]) == (2, 1)
    html = accuracy_html(table)
    assert "Segmentation accuracy" in html and "0.875" in html
    assert "not segmented: QC fail: out of focus" in html
    assert "1 of them not segmented" in html
    assert "could not be read" in accuracy_html(None, error=OSError("gone"))


# ------------------------------------------------------------------------ load-time checks --


@pytest.fixture
def experiment() -> Experiment:
    sites = [Site("P1", well, site, {"DNA": f"{well}_{site}.tif"})
             for well in ("B02", "B03") for site in ("1", "2")]
    sheet = PlateSheet("P1", ["DNA"], sites, pd.DataFrame({"Metadata_Well": ["B02", "B03"]}))
    return Experiment({"P1": sheet}, ["DNA"])


def _table(folder, text):
    (folder / "truth").mkdir(exist_ok=True)
    for name in ("a_nuclei.tif", "a_cells.tif"):
        (folder / "truth" / name).write_bytes(b"mask")
    (folder / "gt.csv").write_text(text)
    return "gt.csv"


def test_ground_truth_table_is_read_with_paths_from_its_folder(tmp_path, experiment):
    path = _table(tmp_path, "plate,well,site,nuclei,cells\n"
                            "P1,b2,01,truth/a_nuclei.tif,truth/a_cells.tif\n"
                            "P1,B03,2,truth/a_nuclei.tif,\n")
    table = read_ground_truth(path, experiment.plates["P1"], base_dir=tmp_path)
    assert table.to_dict("records") == [
        {"plate": "P1", "well": "B02", "site": "1", "nuclei": "truth/a_nuclei.tif",
         "cells": "truth/a_cells.tif"},
        {"plate": "P1", "well": "B03", "site": "2", "nuclei": "truth/a_nuclei.tif",
         "cells": None},
    ]
    config = {"plates": {"P1": {"ground_truth": path}, "P2": {"ground_truth": None}}}
    assert list(read_experiment_ground_truth(config, experiment, base_dir=tmp_path)) == ["P1"]


@pytest.mark.parametrize("text, message", [
    ("well,site\nB02,1\n", "lacks column(s) nuclei"),
    ("well,site,nuclei\n", "has no rows"),
    ("well,site,nuclei\nB02,7,truth/a_nuclei.tif\n",
     "plate P1, well B02, site 7 (row 2): no such site was imaged (well B02 has sites 1, 2)"),
    ("well,site,nuclei\nB09,1,truth/a_nuclei.tif\n", "well B09 has no images"),
    ("plate,well,site,nuclei\nP2,B02,1,truth/a_nuclei.tif\n", "plate 'P2' is not this table's"),
    ("well,site,nuclei\nB02,1,truth/missing.tif\n",
     "plate P1, well B02, site 1: the nuclei mask 'truth/missing.tif' does not exist"),
    ("well,site,nuclei,cells\nB02,1,truth/a_nuclei.tif,truth/nope.tif\n",
     "the cells mask 'truth/nope.tif' does not exist"),
    ("well,site,nuclei\nB02,1,\n", "no nuclei mask is named"),
    ("well,site,nuclei\nB02,1,truth/a_nuclei.tif\nB02,01,truth/a_nuclei.tif\n",
     "listed twice (rows 2 and 3)"),
])
def test_ground_truth_mistakes_fail_at_load(tmp_path, experiment, text, message):
    path = _table(tmp_path, text)
    config = {"plates": {"P1": {"ground_truth": path}}}
    with pytest.raises(DiscoveryError, match="plates.P1.ground_truth") as err:
        read_experiment_ground_truth(config, experiment, base_dir=tmp_path)
    assert message in str(err.value)


def test_missing_ground_truth_table_of_an_example_plate_says_how_to_regenerate(tmp_path,
                                                                              experiment):
    with pytest.raises(DiscoveryError, match="'gone.csv' does not exist") as err:
        read_ground_truth("gone.csv", experiment.plates["P1"], base_dir=tmp_path, example=True)
    assert "remove its folder" in str(err.value)
