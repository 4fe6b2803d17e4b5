"""Full Snakemake runs on real plates of ../shared/data (skipped without PLATEFLOW_REAL_DATA).

- transfluor-plate: 72 real Cellomics-named images (24 wells x 3 fields, one GFP channel, 8-bit,
  strong vignetting);
- a JUMP Cell Painting field: Opera Phenix naming, 3 channels, 16-bit, 1080x1080.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from plateflow.core.contract import well_batch
from plateflow.core.correction import read_preprocessed
from plateflow.core.imageio import read_stack
from plateflow.core.provenance import PROVENANCE_COLUMNS, read_table
from plateflow.core.stats import corner_to_centre_ratio

pytestmark = [pytest.mark.workflow, pytest.mark.realdata]

REPO = Path(__file__).resolve().parents[1]


def run_workflow(work: Path, config: dict) -> None:
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    base.update(config)
    base["batching"] = {"wells_per_job": 6}
    (work / "config").mkdir(parents=True, exist_ok=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(work), "--workflow-profile", str(REPO / "profiles" / "default"),
               "--cores", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stderr[-6000:]


def test_transfluor_plate_end_to_end(real_data, tmp_path):
    wells = [f"O{c:02d}" for c in range(1, 25)]
    roles = ["negative_control" if c <= 4 else "positive_control" if c >= 21 else "treatment"
             for c in range(1, 25)]
    pd.DataFrame({"well": wells, "role": roles}).to_csv(tmp_path / "platemap.csv", index=False)
    run_workflow(tmp_path, {
        "plates": {"AS_09047": {"folder": str(real_data / "transfluor-plate"),
                                "naming": "cellomics", "platemap": "platemap.csv"}},
        "channels": {2: "GFP"},
        "segmentation": {"method": "classical", "nuclei_channel": "GFP", "cells_channel": None},
    })
    results = tmp_path / "results"
    qc = read_table(results / "qc" / "AS_09047" / "sites.parquet")
    assert len(qc) == 72
    assert (qc["QC_Status"] == "pass").sum() >= 70
    plate = read_table(results / "plates" / "AS_09047" / "profiles_normalized.parquet")
    assert sorted(plate["Metadata_Well"]) == wells
    assert (plate["Metadata_Object_Count"] > 0).all()
    assert set(PROVENANCE_COLUMNS) <= set(plate.columns)
    assert "Cells_Intensity_MeanIntensity_GFP" in plate.columns
    # Segmentation QC judges every site against QC's foreground object count: a collapse (well
    # O02's saturated blob once left 1-3 objects where QC counts 39-75) is flagged, listed for
    # re-acquisition and shown in the report.
    seg_qc = read_table(results / "segmentation" / "AS_09047" / "sites.parquet")
    assert len(seg_qc) == 72 and set(seg_qc["SegQC_Status"]) <= {"pass", "flagged",
                                                                  "not segmented"}
    segmented = seg_qc[seg_qc["SegQC_Status"] != "not segmented"]
    collapsed = segmented[segmented["SegQC_CountRatio"] < 0.25]
    assert (collapsed["SegQC_Status"] == "flagged").all()
    o02 = segmented[segmented["Metadata_Well"] == "O02"]
    assert ((o02["SegQC_NucleiCount"] > 0.25 * o02["SegQC_QCObjectCount"])
            | (o02["SegQC_Status"] == "flagged")).all()
    # most of the plate is segmented sanely: nuclei about QC's count, cells around them
    assert (segmented["SegQC_Status"] == "pass").mean() > 0.85
    assert segmented["SegQC_MatchRate"].median() > 0.9
    reacquire = pd.read_csv(results / "segmentation" / "AS_09047" / "reacquire.csv",
                            dtype={"site": str})
    flagged = segmented[segmented["SegQC_Status"] == "flagged"]
    assert set(zip(reacquire["well"], reacquire["site"])) == set(
        zip(flagged["Metadata_Well"], flagged["Metadata_Site"]))
    report = (results / "qc" / "report.html").read_text()
    assert "Segmentation QC" in report
    assert all(f'data-well="{w}" data-site="{s}"' in report
               for w, s in zip(flagged["Metadata_Well"], flagged["Metadata_Site"]))
    # The flat-field takes the vignetting out: corner/centre of the plate's mean image.
    preprocessed = results / "preprocessed" / "AS_09047"
    corrected_mean = sum(
        read_preprocessed(preprocessed / well_batch(w, 6) / w / f"s{s}.tiff")[0][0]
        for w in wells for s in "012") / 72
    assert abs(corner_to_centre_ratio(corrected_mean) - 1.0) < 0.10
    [flatfield] = (results / "illumination" / "AS_09047").glob("*/flatfield.tiff")
    field, meta = read_stack(flatfield)
    assert meta["channels"] == ["GFP"] and corner_to_centre_ratio(field[0]) < 0.8


def test_jump_cell_painting_field_end_to_end(real_data, tmp_path):
    pd.DataFrame({"well": ["A01"], "role": ["negcon"]}).to_csv(tmp_path / "platemap.csv",
                                                              index=False)
    run_workflow(tmp_path, {
        "plates": {"BR00117006": {
            "folder": str(real_data / "cellpainting-fields" / "jump-BR00117006" / "orig"),
            "naming": "operetta", "platemap": "platemap.csv"}},
        "channels": {2: "AGP", 3: "RNA", 5: "DNA"},
        "segmentation": {"method": "classical", "nuclei_channel": "DNA", "cells_channel": "RNA"},
    })
    results = tmp_path / "results"
    qc = read_table(results / "qc" / "BR00117006" / "sites.parquet")
    assert qc["QC_Status"].tolist() == ["pass"]
    cells = read_table(results / "features" / "BR00117006" / "A01-A06" / "A01" / "s1.parquet")
    assert 50 <= len(cells) <= 1000
    assert (cells["Cells_AreaShape_Area"] >= cells["Nuclei_AreaShape_Area"]).all()
    for channel in ("AGP", "RNA", "DNA"):
        values = cells[f"Cells_Intensity_MeanIntensity_{channel}"]
        assert values.between(0, 1).all() and values.std() > 0
    experiment = read_table(results / "experiment" / "profiles.parquet")
    assert experiment["Metadata_Object_Count"].tolist() == [len(cells)]
    assert experiment["Metadata_Provenance_ImageSHA256"].str.len().eq(64).all()
