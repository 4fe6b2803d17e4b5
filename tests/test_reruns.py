"""Reruns that are right in one invocation, and mistakes that fail at load.

The property: for every top-level config section, change one value of a finished run and run
Snakemake once. The results must equal (data columns, pixels, CSV text) those of a clean run
made from scratch with the new config, and a dry run right after must find nothing to do.
Plus: cosmetic config edits rerun nothing, a replaced raw image reruns its own batch only, and
config mistakes that discovery can see fail at load, naming the key and what is allowed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.synthetic import make_example_plate

from plateflow.core.imageio import read_stack
from plateflow.core.provenance import VOLATILE_COLUMNS, read_table

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[1]
WELLS = ("B02", "B03", "B04", "B06")  # 2 negative controls, positive control, B06 s2 out of focus
SITES = ("1", "2")


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--workflow-profile", str(REPO / "profiles/default"),
               "--cores", "2", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake failed ({done.returncode}):\n{done.stderr[-6000:]}")
    return done


def nothing_to_do(workdir: Path) -> bool:
    done = snakemake(workdir, "-n")
    return "Nothing to be done" in done.stdout + done.stderr


def read_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config" / "config.yaml").read_text())


def write_config(workdir: Path, config: dict, *, sort_keys: bool = False) -> None:
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=sort_keys))


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    make_example_plate(out, plate="EXAMPLE1", seed=1, size=256, sites_per_well=3)
    return out


def make_workdir(root: Path, generated: Path) -> Path:
    plate_dir = root / "plates" / "EXAMPLE1"
    plate_dir.mkdir(parents=True)
    for well in WELLS:
        for site in SITES:
            for channel in (1, 2, 3):
                name = f"EXAMPLE1_{well}_s{site}_w{channel}.tif"
                shutil.copy2(generated / "images" / name, plate_dir / name)
    platemap = pd.read_csv(generated / "platemap.csv")
    platemap[platemap["well"].isin(WELLS)].to_csv(root / "plates" / "map.csv", index=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["plates"] = {"EXAMPLE1": {"folder": "plates/EXAMPLE1", "naming": "metaxpress",
                                     "platemap": "plates/map.csv"}}
    config["batching"] = {"wells_per_job": 2}
    (root / "config").mkdir()
    write_config(root, config)
    return root


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, generated) -> Path:
    work = make_workdir(tmp_path_factory.mktemp("base"), generated)
    snakemake(work)
    return work


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, copy_function=shutil.copy2, symlinks=True)
    return target


def snapshot(workdir: Path) -> dict[str, object]:
    """Every result file's content, without values that change from run to run by design."""
    out: dict[str, object] = {}
    for path in sorted((workdir / "results").rglob("*")):
        if not path.is_file() or path.name == ".snakemake_timestamp":
            continue
        key = str(path.relative_to(workdir))
        if path.suffix == ".parquet":
            table = read_table(path)
            out[key] = table.drop(columns=[c for c in VOLATILE_COLUMNS if c in table])
        elif path.suffix == ".tiff":
            out[key] = read_stack(path)
        elif path.suffix == ".html":
            out[key] = "html"  # holds a time stamp; its content is tested elsewhere
        else:
            out[key] = path.read_text()
    return out


def assert_same_results(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want), set(got) ^ set(want)
    for key, value in want.items():
        other = got[key]
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(other, value, obj=key)
        elif isinstance(value, tuple):
            assert np.array_equal(other[0], value[0]), key
            assert other[1] == value[1], key
        else:
            assert other == value, key


def assert_corrected_with_current_flatfield(workdir: Path) -> None:
    """Every corrected image names the flat-field that is on disk now."""
    fields = list((workdir / "results" / "illumination" / "EXAMPLE1").rglob("flatfield.tiff"))
    assert len(fields) == 1, fields
    sha = hashlib.sha256(fields[0].read_bytes()).hexdigest()
    checked = 0
    for path in (workdir / "results" / "preprocessed").rglob("*.tiff"):
        meta = read_stack(path)[1]
        if not meta.get("skipped"):
            assert meta["flatfield_sha256"] == sha, path
            checked += 1
    assert checked > 0


#: One change per top-level config section (the plate and channel map included).
CHANGES = {
    "plates": lambda c: c["plates"]["EXAMPLE1"].update(bit_depth=15),
    "channels": lambda c: c.update(channels={1: "DNA", 2: "ER", 3: "MITO"}),
    "qc": lambda c: c["qc"].update(min_focus_score=4.0),
    "qc_plate": lambda c: c.setdefault("qc_plate", {}).update(min_sites=2, max_robust_z=3.0),
    "illumination": lambda c: c["illumination"].update(method="median"),
    "preprocess": lambda c: c["preprocess"].update(storage="float32"),
    "segmentation": lambda c: c["segmentation"].setdefault("classical", {}).update(
        smoothing_sigma=1.5),
    "segmentation_qc": lambda c: c.setdefault("segmentation_qc", {}).update(
        min_count_ratio=0.9, max_robust_z=2.0),
    "batching": lambda c: c["batching"].update(wells_per_job=1),
    "model_cache": lambda c: c.update(model_cache="resources/other_models"),
    "features": lambda c: c["features"].update(Location={"enabled": False}),
    "aggregate": lambda c: c["aggregate"].update(operation="mean"),
    "normalize": lambda c: c["normalize"].update(method="standardize"),
}


def test_every_config_section_is_covered():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert set(CHANGES) == set(schema["properties"])


@pytest.mark.parametrize("section", sorted(CHANGES))
def test_one_change_and_one_run_equal_a_clean_run(section, base_run, generated, tmp_path):
    incremental = copy_run(base_run, tmp_path / "incremental")
    config = read_config(incremental)
    CHANGES[section](config)
    write_config(incremental, config)
    snakemake(incremental)
    assert nothing_to_do(incremental), f"after changing {section}, a second run has work left"

    clean = make_workdir(tmp_path / "clean", generated)
    write_config(clean, config)
    snakemake(clean)
    assert_same_results(snapshot(incremental), snapshot(clean))
    assert_corrected_with_current_flatfield(incremental)


def test_cosmetic_config_edits_rerun_nothing(base_run, tmp_path):
    work = copy_run(base_run, tmp_path / "cosmetic")
    config = read_config(work)
    # every key reordered, and defaults written out explicitly (1 for 1.0, too)
    config["qc"].update(focus_sigma_fine=2, max_saturated_fraction=0.01)
    config["illumination"] = {"method": "background", "floor": 0.05, "max_sites": 200}
    config["segmentation"]["classical"] = {"smoothing_sigma": 1, "declump": "blob"}
    config["batching"] = {"wells_per_job": 2}
    config = {key: config[key] for key in sorted(config, reverse=True)}
    write_config(work, config, sort_keys=False)
    assert nothing_to_do(work)


def test_a_replaced_raw_image_reruns_only_its_batch(base_run, tmp_path):
    work = copy_run(base_run, tmp_path / "replaced")
    before = {p: p.stat().st_mtime_ns for p in (work / "results").rglob("*") if p.is_file()}
    image = work / "plates" / "EXAMPLE1" / "EXAMPLE1_B03_s1_w3.tif"
    image.write_bytes((work / "plates" / "EXAMPLE1" / "EXAMPLE1_B04_s2_w3.tif").read_bytes())
    snakemake(work)
    redone = {str(p.relative_to(work)) for p, t in before.items() if p.stat().st_mtime_ns != t}
    per_batch = {p for p in redone if "/B0" in p}
    assert "results/qc/EXAMPLE1/batches/B03-B04.parquet" in per_batch
    assert "results/features/EXAMPLE1/B03-B04/B03/s1.parquet" in per_batch
    assert not [p for p in per_batch if "B01-B02" in p or "B05-B06" in p]
    # the flat-field is frozen: a new image is corrected with it, nothing else is redone
    assert not [p for p in redone if p.startswith("results/illumination/")]
    qc = read_table(work / "results/qc/EXAMPLE1/sites.parquet").set_index(
        ["Metadata_Well", "Metadata_Site"])
    assert qc.loc[("B03", "1"), "Metadata_Provenance_ImageSHA256"] != read_table(
        base_run / "results/qc/EXAMPLE1/sites.parquet").set_index(
        ["Metadata_Well", "Metadata_Site"]).loc[("B03", "1"), "Metadata_Provenance_ImageSHA256"]
    assert nothing_to_do(work)


def _load_error(work: Path) -> str:
    done = snakemake(work, "-n", check=False)
    assert done.returncode != 0
    return done.stdout + done.stderr


def test_an_unknown_channel_fails_at_load_naming_key_and_allowed_values(generated, tmp_path):
    work = make_workdir(tmp_path / "w", generated)
    config = read_config(work)
    config["segmentation"]["nuclei_channel"] = "dna"
    write_config(work, config)
    message = _load_error(work)
    assert "segmentation.nuclei_channel" in message and "'dna'" in message
    assert "allowed: DNA, ER, Mito" in message


def test_a_platemap_without_negative_controls_fails_at_load(generated, tmp_path):
    work = make_workdir(tmp_path / "w", generated)
    platemap = pd.read_csv(work / "plates" / "map.csv")
    platemap["role"] = platemap["role"].replace({"negative_control": "treatment"})
    platemap.to_csv(work / "plates" / "map.csv", index=False)
    message = _load_error(work)
    assert "plate EXAMPLE1: no imaged well has role 'negative_control'" in message
    assert "normalize.control_role" in message


def test_a_schema_error_names_the_key_and_its_allowed_values(generated, tmp_path):
    work = make_workdir(tmp_path / "w", generated)
    config = read_config(work)
    config["illumination"]["method"] = "gaussian"
    config["qc"]["min_focus"] = 3
    write_config(work, config)
    message = _load_error(work)
    assert "config 'illumination.method': 'gaussian' is not allowed; it must be one of " \
           "'background', 'median', 'mean', 'trimmed_mean'" in message
    assert "config 'qc': unknown key(s) 'min_focus'; allowed:" in message
    assert "$schema" not in message and "additionalProperties" not in message


def test_a_gpu_for_a_method_without_one_is_a_warning(generated, tmp_path):
    work = make_workdir(tmp_path / "w", generated)
    config = read_config(work)
    config["segmentation"]["gpu"] = True
    write_config(work, config)
    done = snakemake(work, "-n")
    assert "'segmentation.gpu': true asks every segmentation job for a GPU, but method " \
           "'classical' does not use one" in done.stdout + done.stderr
