"""Snakemake end to end on a small synthetic plate, and what reruns when something changes.

One plate is generated once per module (5 wells x 3 sites of the example plate, with three of the
planted defects); the tests run in order on the same working directory, as a lab would: a first
run, a second run with nothing changed, a segmentation parameter changed, one site added, one
plate added. What reran is read from the output files' modification times.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers.synthetic import make_example_plate

from plateflow.core.contract import well_batch
from plateflow.core.imageio import read_stack
from plateflow.core.provenance import PROVENANCE_COLUMNS, read_file_metadata, read_table

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[1]
WELLS = ("B02", "B03", "B04", "B06", "B09")  # 2 negative, positive, out-of-focus s2, corrupt s2
SITES = ("1", "2", "3")
WELLS_PER_JOB = 2  # batches B01-B02 (B02), B03-B04 (B03, B04), B05-B06 (B06), B09-B10 (B09)


def site_file(work: Path, stage: str, well: str, site: str, suffix: str) -> Path:
    """Where a per-site output lives: inside its batch's folder."""
    return (work / "results" / stage / "EXAMPLE1" / well_batch(well, WELLS_PER_JOB) / well /
            f"s{site}{suffix}")


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--workflow-profile", str(REPO / "profiles" / "default"),
        "--cores", "2", *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise AssertionError(f"snakemake failed ({done.returncode}):\n{done.stderr[-6000:]}")
    return done


def _copy_site(source: Path, target: Path, plate_from: str, plate_to: str, well: str, site: str):
    for channel in (1, 2, 3):
        name = f"{plate_from}_{well}_s{site}_w{channel}.tif"
        shutil.copy2(source / name, target / name.replace(plate_from, plate_to, 1))


def _write_platemap(source: Path, target: Path, wells):
    platemap = pd.read_csv(source)
    platemap[platemap["well"].isin(wells)].to_csv(target, index=False)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """The full synthetic plate with 4 sites per well, from which the test plates are cut."""
    out = tmp_path_factory.mktemp("generated")
    make_example_plate(out, plate="EXAMPLE1", seed=0, size=512, sites_per_well=4)
    return out


#: Sites with hand-labelled masks: three clean ones, and one that QC stops (out of focus).
TRUTH_SITES = (("B02", "1"), ("B04", "2"), ("B06", "2"), ("B09", "1"))


def _write_ground_truth(generated: Path, work: Path) -> str:
    """The generator's truth masks of TRUTH_SITES and their table; returns the table's path."""
    (work / "truth" / "masks").mkdir(parents=True)
    lines = ["plate,well,site,nuclei,cells"]
    for well, site in TRUTH_SITES:
        names = [f"EXAMPLE1_{well}_s{site}_{kind}.tif" for kind in ("nuclei", "cells")]
        for name in names:
            shutil.copy2(generated / "truth" / name, work / "truth" / "masks" / name)
        lines.append(f"EXAMPLE1,{well},{site},masks/{names[0]},masks/{names[1]}")
    (work / "truth" / "EXAMPLE1.csv").write_text("\n".join(lines) + "\n")
    return "truth/EXAMPLE1.csv"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, generated) -> Path:
    work = tmp_path_factory.mktemp("work")
    plate_dir = work / "plates" / "EXAMPLE1"
    plate_dir.mkdir(parents=True)
    for well in WELLS:
        for site in SITES:
            _copy_site(generated / "images", plate_dir, "EXAMPLE1", "EXAMPLE1", well, site)
    _write_platemap(generated / "platemap.csv", work / "plates" / "EXAMPLE1.csv", WELLS)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["plates"] = {
        "EXAMPLE1": {"folder": "plates/EXAMPLE1", "naming": "metaxpress",
                     "platemap": "plates/EXAMPLE1.csv"},
    }
    config["plates"]["EXAMPLE1"]["ground_truth"] = _write_ground_truth(generated, work)
    config["batching"] = {"wells_per_job": WELLS_PER_JOB}
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return work


def outputs(work: Path) -> dict[str, float]:
    """Modification time of every file under results/ (not Snakemake's own folder markers)."""
    return {str(p.relative_to(work)): p.stat().st_mtime_ns
            for p in (work / "results").rglob("*")
            if p.is_file() and p.name != ".snakemake_timestamp"}


def changed(before: dict, after: dict) -> set[str]:
    return {path for path, mtime in after.items() if before.get(path) != mtime}


@pytest.fixture(scope="module")
def first_run(workdir) -> dict[str, float]:
    snakemake(workdir)
    return outputs(workdir)


def test_first_run_writes_every_table_with_provenance(workdir, first_run):
    results = workdir / "results"
    experiment = read_table(results / "experiment" / "profiles_normalized.parquet")
    assert sorted(experiment["Metadata_Well"]) == sorted(WELLS)
    parquet_files = sorted(results.rglob("*.parquet"))
    steps = set()
    for path in parquet_files:
        table = read_table(path)
        missing = [c for c in PROVENANCE_COLUMNS if c not in table.columns]
        assert not missing, f"{path} lacks {missing}"
        if len(table):
            assert table["Metadata_Provenance_ImageSHA256"].str.fullmatch("[0-9a-f]{64}").all()
        meta = read_file_metadata(path)
        assert isinstance(meta["params"], dict)
        steps.add(meta["step"])
    assert steps == {"measure_qc", "collect_plate_qc", "estimate_illumination",
                     "extract_features", "aggregate_wells", "normalize_plate", "merge_experiment",
                     "collect_segmentation_qc", "validate_segmentation"}
    # One job per batch of neighbouring wells, one output per site inside the batch's folder.
    assert sorted(p.name for p in (results / "features" / "EXAMPLE1").iterdir()) == [
        "B01-B02", "B03-B04", "B05-B06", "B09-B10"]
    assert sorted(p.name for p in (results / "qc" / "EXAMPLE1" / "batches").iterdir()) == [
        "B01-B02.parquet", "B03-B04.parquet", "B05-B06.parquet", "B09-B10.parquet"]
    cells = read_table(site_file(workdir, "features", "B02", "1", ".parquet"))
    assert {"Nuclei_AreaShape_Area", "Cells_Intensity_MeanIntensity_DNA",
            "Cytoplasm_Intensity_MeanIntensity_Mito"} <= set(cells.columns)
    assert set(cells["Metadata_Provenance_SegmentationMethod"]) == {"classical"}
    assert (results / "sheets" / "EXAMPLE1.csv").read_text().count("\n") == 1 + len(WELLS) * 3


def test_planted_defects_are_flagged_and_clean_sites_pass(workdir, first_run):
    qc = read_table(workdir / "results" / "qc" / "EXAMPLE1" / "sites.parquet")
    status = {(r.Metadata_Well, r.Metadata_Site): r.QC_Status for r in qc.itertuples()}
    assert status.pop(("B06", "2")) == "fail"
    assert status.pop(("B09", "2")) == "unreadable"
    assert set(status.values()) == {"pass"}
    reacquire = pd.read_csv(workdir / "results" / "qc" / "EXAMPLE1" / "reacquire.csv")
    assert set(zip(reacquire["well"], reacquire["site"].astype(str))) == {("B06", "2"), ("B09", "2")}
    assert reacquire.loc[reacquire["well"] == "B09", "reason"].str.contains("_w2.tif").all()
    # Failed sites never reach segmentation, and the well tables say what was left out.
    labels, meta = read_stack(site_file(workdir, "segmentation", "B09", "2", ".tiff"))
    assert labels.shape == (3, 1, 1) and "QC unreadable" in meta["skipped"]
    assert meta["segmentation"]["method"] is None
    assert len(read_table(site_file(workdir, "features", "B09", "2", ".parquet"))) == 0
    wells = read_table(workdir / "results" / "plates" / "EXAMPLE1" / "profiles.parquet")
    b09 = wells.set_index("Metadata_Well").loc["B09"]
    assert (b09["Metadata_Sites_Used"], b09["Metadata_Sites_Excluded"]) == (2, 1)
    assert "unreadable" in b09["Metadata_QC_Exclusions"]
    # The re-acquisition list names channel, metric, value and threshold of each failed check.
    b06 = reacquire[reacquire["well"] == "B06"]
    assert set(b06["metric"]) == {"FocusScore"} and (b06["value"] < b06["threshold"]).all()
    assert reacquire.loc[reacquire["well"] == "B09", "channel"].tolist() == ["ER"]
    # The QC report shows the verdict and every flagged site with its reason.
    report = (workdir / "results" / "qc" / "report.html").read_text()
    assert "EXAMPLE1" in report and "out of focus" in report and "_w2.tif" in report
    # Segmentation QC: the stopped sites are listed as not segmented, no clean site is flagged.
    seg_qc = read_table(workdir / "results" / "segmentation" / "EXAMPLE1" / "sites.parquet")
    seg_status = {(r.Metadata_Well, r.Metadata_Site): r.SegQC_Status for r in seg_qc.itertuples()}
    assert seg_status.pop(("B06", "2")) == seg_status.pop(("B09", "2")) == "not segmented"
    assert set(seg_status.values()) == {"pass"}, seg_qc[["Metadata_Well", "Metadata_Site",
                                                         "SegQC_Reasons"]]
    assert seg_qc["SegQC_CountRatio"].dropna().between(0.5, 3).all()
    assert (seg_qc["SegQC_MatchRate"].dropna() > 0.9).all()
    assert len(pd.read_csv(workdir / "results" / "segmentation" / "EXAMPLE1" / "reacquire.csv")) == 0
    assert "Segmentation QC" in report and "<b>13</b> sites segmented" in report
    assert "Metadata_Segmentation_LowConfidenceFraction" in wells.columns


def test_nuclei_counts_within_ten_percent_of_truth(workdir, generated, first_run):
    truth = pd.read_csv(generated / "truth.csv")
    truth["site"] = truth["site"].astype(str)
    checked = 0
    for row in truth[truth["well"].isin(WELLS) & truth["site"].isin(SITES)].itertuples():
        if row.defect != "none":
            continue
        table = read_table(site_file(workdir, "features", row.well, row.site, ".parquet"))
        assert abs(len(table) - row.n_nuclei) <= 0.10 * row.n_nuclei, (row.well, row.site)
        checked += 1
    assert checked == 13


def test_segmentation_accuracy_against_ground_truth(workdir, first_run):
    table = read_table(workdir / "results" / "validation" / "EXAMPLE1" /
                       "segmentation_accuracy.parquet")
    keys = set(zip(table["Metadata_Well"], table["Metadata_Site"], table["Metadata_Compartment"]))
    assert keys == {(w, s, c) for w, s in TRUTH_SITES for c in ("Nuclei", "Cells")}
    rows = table.set_index(["Metadata_Well", "Metadata_Site", "Metadata_Compartment"])
    # the out-of-focus site is stopped by QC: listed, not scored
    stopped = rows.loc[("B06", "2", "Nuclei")]
    assert not stopped["Metadata_Segmented"] and "QC fail" in stopped["Metadata_NotSegmentedReason"]
    assert pd.isna(stopped["AP_50"]) and stopped["N_True"] > 30
    scored = table[table["Metadata_Segmented"]]
    assert len(scored) == 6 and scored["AP_50"].between(0, 1).all()
    nuclei = scored[scored["Metadata_Compartment"] == "Nuclei"]
    assert (nuclei["AP_50"] >= 0.85).all() and (nuclei["Dice"] >= 0.85).all()
    tp, fp, fn = (int(nuclei[c].sum()) for c in ("TP_50", "FP_50", "FN_50"))
    assert tp / (tp + fp + fn) >= 0.90  # the target on the synthetic plate
    assert (nuclei["N_True"] == nuclei["TP_50"] + nuclei["FN_50"]).all()
    report = (workdir / "results" / "qc" / "report.html").read_text()
    assert "Segmentation accuracy" in report and "not segmented: QC fail" in report


def test_dose_phenotype_is_measured(workdir, first_run):
    wells = read_table(workdir / "results" / "plates" / "EXAMPLE1" / "profiles_normalized.parquet")
    wells = wells.set_index("Metadata_Well")
    # The positive control has less Mito per cell and bigger nuclei than the negative control.
    assert wells.loc["B04", "Cells_Intensity_MeanIntensity_Mito"] < -3
    assert wells.loc["B04", "Nuclei_AreaShape_Area"] > 3


def test_second_run_does_nothing(workdir, first_run):
    done = snakemake(workdir)
    assert "Nothing to be done" in done.stdout + done.stderr
    assert changed(first_run, outputs(workdir)) == set()


def _set_config(work: Path, edit) -> None:
    path = work / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def test_segmentation_change_reruns_only_downstream(workdir, first_run):
    before = outputs(workdir)
    _set_config(workdir, lambda c: c["segmentation"].setdefault("classical", {}).update(smoothing_sigma=1.5))
    snakemake(workdir)
    after = outputs(workdir)
    redone = changed(before, after)
    stages = {path.split("/")[1] for path in redone}
    assert stages == {"segmentation", "features", "wells", "plates", "experiment", "qc",
                      "validation"}
    # the report draws the segmentation QC; nothing else of QC reruns
    assert {p for p in redone if p.startswith("results/qc/")} == {"results/qc/report.html"}
    assert len([p for p in redone if p.startswith("results/segmentation/")]) == len(WELLS) * 3 + 2


def test_adding_one_site_runs_only_its_batch_and_gathers(workdir, generated):
    before = outputs(workdir)
    _copy_site(generated / "images", workdir / "plates" / "EXAMPLE1", "EXAMPLE1", "EXAMPLE1",
               "B02", "4")
    snakemake(workdir)
    after = outputs(workdir)
    redone = changed(before, after)
    per_image = {p for p in redone if p.split("/")[1] in
                 ("qc", "preprocessed", "segmentation", "features") and "/B" in p}
    # Only batch B01-B02 (well B02: its 3 old sites and the new one) is redone.
    assert per_image == {
        "results/qc/EXAMPLE1/batches/B01-B02.parquet",
        *(f"results/{stage}/EXAMPLE1/B01-B02/B02/s{site}{suffix}"
          for stage, suffix in (("preprocessed", ".tiff"), ("segmentation", ".tiff"),
                                ("features", ".parquet"))
          for site in ("1", "2", "3", "4")),
    }
    assert {p for p in redone if p.startswith("results/wells/")} == {
        "results/wells/EXAMPLE1/B01-B02.parquet"}
    assert "results/experiment/profiles_normalized.parquet" in redone
    # The other batches' per-image outputs are untouched (B03 and B04 share a batch).
    assert any("/B03-B04/B03/" in p for p in after)
    assert not [p for p in redone if "/B03-B04" in p or "/B05-B06" in p or "/B09-B10" in p]
    wells = read_table(workdir / "results" / "plates" / "EXAMPLE1" / "profiles.parquet")
    assert wells.set_index("Metadata_Well").loc["B02", "Metadata_Sites_Used"] == 4


def test_adding_one_plate_runs_only_its_jobs_and_the_experiment(workdir, generated):
    before = outputs(workdir)
    plate_dir = workdir / "plates" / "EXAMPLE2"
    plate_dir.mkdir()
    for well in ("B02", "B03", "B04"):
        for site in SITES:
            _copy_site(generated / "images", plate_dir, "EXAMPLE1", "EXAMPLE2", well, site)
    _write_platemap(generated / "platemap.csv", workdir / "plates" / "EXAMPLE2.csv",
                    ("B02", "B03", "B04"))
    _set_config(workdir, lambda c: c["plates"].update(EXAMPLE2={
        "folder": "plates/EXAMPLE2", "naming": "metaxpress", "platemap": "plates/EXAMPLE2.csv"}))
    snakemake(workdir)
    redone = changed(before, outputs(workdir))
    assert not [p for p in redone if "EXAMPLE1" in p]
    assert {p for p in redone if "EXAMPLE2" not in p} == {
        "results/experiment/profiles.parquet", "results/experiment/profiles_normalized.parquet",
        "results/qc/report.html"}
    experiment = read_table(workdir / "results" / "experiment" / "profiles_normalized.parquet")
    assert experiment.groupby("Metadata_Plate").size().to_dict() == {"EXAMPLE1": 5, "EXAMPLE2": 3}


def test_a_broken_plate_fails_at_load_naming_plate_well_site_and_file(tmp_path, generated):
    plate_dir = tmp_path / "plates" / "EXAMPLE1"
    plate_dir.mkdir(parents=True)
    for site in SITES:
        _copy_site(generated / "images", plate_dir, "EXAMPLE1", "EXAMPLE1", "B02", site)
    (plate_dir / "EXAMPLE1_B02_s2_w3.tif").unlink()
    _write_platemap(generated / "platemap.csv", tmp_path / "map.csv", ("B02", "B03"))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["plates"] = {"EXAMPLE1": {"folder": "plates/EXAMPLE1", "naming": "metaxpress",
                                     "platemap": "map.csv"}}
    message = _dry_run_fails(tmp_path, config)
    assert "plate EXAMPLE1" in message
    assert "well B02, site 2: missing channel(s) Mito" in message
    assert "EXAMPLE1_B02_s2_w1.tif" in message
    assert "platemap well(s) have no images" in message and "B03" in message


def _dry_run_fails(workdir: Path, config: dict) -> str:
    """Write the config into ``workdir``, dry-run there; the run must fail: its output."""
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "-n"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    return done.stdout + done.stderr


def test_a_wrong_ground_truth_table_fails_at_load(tmp_path, generated):
    plate_dir = tmp_path / "plates" / "EXAMPLE1"
    plate_dir.mkdir(parents=True)
    _copy_site(generated / "images", plate_dir, "EXAMPLE1", "EXAMPLE1", "B02", "1")
    _write_platemap(generated / "platemap.csv", tmp_path / "map.csv", ("B02",))
    table = _write_ground_truth(generated, tmp_path)  # names sites that were not imaged
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["plates"] = {"EXAMPLE1": {"folder": "plates/EXAMPLE1", "naming": "metaxpress",
                                     "platemap": "map.csv", "ground_truth": table}}
    message = _dry_run_fails(tmp_path, config)
    assert "plates.EXAMPLE1.ground_truth" in message
    assert "plate EXAMPLE1, well B04, site 2 (row 3): no such site was imaged" in message


def test_stage_model_is_a_local_rule_that_verifies_the_weights(tmp_path, generated):
    import hashlib

    plate_dir = tmp_path / "plates" / "EXAMPLE1"
    plate_dir.mkdir(parents=True)
    _copy_site(generated / "images", plate_dir, "EXAMPLE1", "EXAMPLE1", "B02", "1")
    _write_platemap(generated / "platemap.csv", tmp_path / "map.csv", ("B02",))
    weights = tmp_path / "downloaded.pt"
    weights.write_bytes(b"weights a lab copied onto the submit host")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["plates"] = {"EXAMPLE1": {"folder": "plates/EXAMPLE1", "naming": "metaxpress",
                                     "platemap": "map.csv"}}
    config["segmentation"]["model"] = {"name": "nuclei.pt", "source": str(weights),
                                       "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "resources/models/nuclei.pt")
    assert (tmp_path / "resources" / "models" / "nuclei.pt").read_bytes() == weights.read_bytes()

    config["segmentation"]["model"].update(name="offline.pt", source="http://127.0.0.1:9/w.pt")
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(AssertionError, match="looks offline"):
        snakemake(tmp_path, "resources/models/offline.pt")
