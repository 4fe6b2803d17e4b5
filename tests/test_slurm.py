"""The example plate through profiles/slurm against a real SLURM scheduler on localhost.

Needs root and Debian's slurm-wlm (.ci/run installs it and sets PLATEFLOW_SLURM=1, which turns
"cannot start SLURM" from a skip into a failure). The daemons are started by
tests/slurm/start.sh and stopped again at the end of the module.

The localhost cluster has no accounting, so the runs add the CI override the README describes:
`--slurm-status-command squeue --slurm-no-account`, and the partitions of this cluster
(`debug`, `debug-gpu`) replace the profile's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers.synthetic import make_example_plate

from plateflow.core.provenance import VOLATILE_COLUMNS, read_table

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[1]
SLURM_DIR = REPO / "tests" / "slurm"
CTLD_LOG = Path("/var/log/slurm/slurmctld.log")
WELLS = ("B02", "B03", "B04", "B06")
SITES = ("1", "2", "3")
CI_OVERRIDE = [
    "--cores", "2",  # the most CPUs one grouped SLURM job may ask for: this node has 2
    "--slurm-status-command", "squeue", "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks", "2",
    "--seconds-between-status-checks", "2",
    "--slurm-keep-successful-logs",
    "--default-resources", "slurm_partition=debug", "mem_mb=1000", "disk_mb=1000", "runtime=30",
    "gpu=0",
    "--set-resources", "segment:slurm_partition=debug-gpu",
]


def _unavailable(reason: str):
    if os.environ.get("PLATEFLOW_SLURM") == "1":
        pytest.fail(f"PLATEFLOW_SLURM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm():
    """Start the localhost SLURM for this module; stop it afterwards."""
    if os.geteuid() != 0:
        _unavailable("the localhost SLURM needs root")
    if shutil.which("slurmctld") is None:
        _unavailable("slurm-wlm is not installed (bash tests/slurm/start.sh --install)")
    started = subprocess.run(["bash", str(SLURM_DIR / "start.sh")], capture_output=True,
                             text=True, timeout=300, check=False)
    if started.returncode != 0:
        _unavailable(f"tests/slurm/start.sh failed: {started.stderr[-2000:]}")
    yield
    subprocess.run(["bash", str(SLURM_DIR / "stop.sh")], timeout=60, check=False)


def _make_workdir(root: Path, generated: Path, name: str, *, gpu: bool) -> Path:
    work = root / name
    plate_dir = work / "plates" / "EXAMPLE1"
    plate_dir.mkdir(parents=True)
    for well in WELLS:
        for site in SITES:
            for channel in (1, 2, 3):
                file = f"EXAMPLE1_{well}_s{site}_w{channel}.tif"
                shutil.copy2(generated / "images" / file, plate_dir / file)
    platemap = pd.read_csv(generated / "platemap.csv")
    platemap[platemap["well"].isin(WELLS)].to_csv(work / "plates" / "map.csv", index=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["plates"] = {"EXAMPLE1": {"folder": "plates/EXAMPLE1", "naming": "metaxpress",
                                     "platemap": "plates/map.csv"}}
    config["segmentation"]["gpu"] = gpu
    config["batching"] = {"wells_per_job": 1}  # 4 per-image batches, so the grouping shows
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return work


def _command(work: Path, profile: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(work), "--workflow-profile", str(REPO / "profiles" / profile),
            *extra]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    make_example_plate(out, plate="EXAMPLE1", seed=0, size=512, sites_per_well=3)
    return out


def _submitted_job_ids() -> list[int]:
    if not CTLD_LOG.exists():
        return []
    return [int(m) for m in re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)",
                                       CTLD_LOG.read_text(errors="replace"))]


def _tables(work: Path) -> dict[str, pd.DataFrame]:
    return {str(p.relative_to(work)): read_table(p)
            for p in sorted((work / "results").rglob("*.parquet"))}


def test_example_plate_on_slurm_matches_the_local_run(slurm, generated, tmp_path):
    local = _make_workdir(tmp_path, generated, "local", gpu=True)
    done = subprocess.run(_command(local, "default", "--cores", "2"), capture_output=True,
                          text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-4000:]

    cluster = _make_workdir(tmp_path, generated, "cluster", gpu=True)
    before = set(_submitted_job_ids())
    done = subprocess.run(_command(cluster, "slurm", *CI_OVERRIDE, "--verbose"),
                          capture_output=True, text=True, timeout=1500, check=False)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]

    # The jobs really went through sbatch: the controller logged each submission, and the
    # plugin kept one SLURM log per submitted job.
    submitted = sorted(set(_submitted_job_ids()) - before)
    sbatch_calls = re.findall(r"sbatch call: (.+)", log)
    assert len(submitted) == len(sbatch_calls) >= 6
    assert len(list((cluster / ".snakemake" / "slurm_logs").rglob("*.log"))) >= len(submitted)
    # Batch jobs are grouped: 4 batches x 4 per-image rules + 4 well jobs would be 20
    # submissions alone; grouped, all 9 rules take 11 (segment: 2 GPU jobs; features: 1 CPU
    # job).
    assert len(submitted) <= 12
    # The segmentation jobs asked for a GPU, on the GPU partition; nothing else did.
    gpu_calls = [c for c in sbatch_calls if "--gpus=1" in c]
    assert gpu_calls, sbatch_calls
    for call in gpu_calls:
        assert "-p debug-gpu" in call and "segment" in call, call
    segment_calls = [c for c in sbatch_calls if "'segment:" in c]
    assert segment_calls, sbatch_calls
    assert set(segment_calls) <= set(gpu_calls)
    assert len(gpu_calls) < len(sbatch_calls)
    # Feature extraction is CPU work: its own jobs, on the CPU partition, no GPU.
    feature_calls = [c for c in sbatch_calls if "'extract_features:" in c]
    assert feature_calls, sbatch_calls
    for call in feature_calls:
        assert "--gpus" not in call and "-p debug-gpu" not in call and "-p debug" in call, call

    # The data columns of every output table are identical to the local run.
    local_tables, cluster_tables = _tables(local), _tables(cluster)
    assert local_tables.keys() == cluster_tables.keys()
    for name, table in local_tables.items():
        pd.testing.assert_frame_equal(table.drop(columns=VOLATILE_COLUMNS),
                                      cluster_tables[name].drop(columns=VOLATILE_COLUMNS),
                                      obj=name)


def _running_job(name_part: str, timeout: float = 300) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i %j %k"],
                                 capture_output=True, text=True, check=False).stdout
        for line in listing.splitlines():
            if name_part in line:
                return line.split()[0]
        time.sleep(0.5)
    return None


def test_a_cancelled_job_is_retried_and_the_run_completes(slurm, generated, tmp_path):
    work = _make_workdir(tmp_path, generated, "cancel", gpu=False)
    process = subprocess.Popen(_command(work, "slurm", *CI_OVERRIDE), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        job = _running_job("rule_segment")
        assert job is not None, "no segmentation group job was seen running"
        subprocess.run(["scancel", job], check=True)
        output, _ = process.communicate(timeout=1500)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output[-6000:]
    assert re.search(r"[Tt]rying to restart|attempt 2|Retrying", output), output[-4000:]
    wells = read_table(work / "results" / "plates" / "EXAMPLE1" / "profiles.parquet")
    assert sorted(wells["Metadata_Well"]) == list(WELLS)
    assert (wells["Metadata_Object_Count"] > 0).all()
