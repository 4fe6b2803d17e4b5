"""Planning a whole screen: wall time and peak memory of `snakemake -n`, up to 100 plates.

Each plate is 384 wells x 9 sites x 5 channels (17,280 files, MetaXpress names), written as
empty files: a dry run only lists, parses and stats them. Also prints the number of SLURM
submissions that profiles/slurm's grouping yields for the same plates (from the DAG's job
counts and the profile's group sizes; tests/test_slurm.py checks the grouping against a real
controller on a small plate).

    python bench/bench_scale.py [--plates 1 10 100] [--wells-per-job 12]

Target (issue 8): 100 plates (345,600 sites, 1.7 M files) plan in <= 120 s and <= 4 GB.
"""

from __future__ import annotations

import argparse
import math
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ROWS = "ABCDEFGHIJKLMNOP"
WELLS = [f"{r}{c:02d}" for r in ROWS for c in range(1, 25)]
SITES = range(1, 10)
CHANNELS = {1: "DNA", 2: "ER", 3: "RNA", 4: "AGP", 5: "Mito"}


def make_plate(root: Path, name: str) -> dict:
    folder = root / name
    folder.mkdir(parents=True)
    for well in WELLS:
        for site in SITES:
            for channel in CHANNELS:
                (folder / f"{name}_{well}_s{site}_w{channel}.tif").touch()
    roles = ["negative_control" if w.endswith(("01", "24")) else "treatment" for w in WELLS]
    platemap = root / f"{name}.csv"
    platemap.write_text("well,role\n" + "".join(f"{w},{r}\n" for w, r in zip(WELLS, roles)))
    return {"folder": str(folder), "naming": "metaxpress", "platemap": str(platemap)}


def dry_run(work: Path) -> tuple[float, float, dict[str, int]]:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(work), "--workflow-profile", str(REPO / "profiles/default"),
               "-n", "--quiet", "rules"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    peak_mb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    counts = {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.MULTILINE)}
    return wall, peak_mb, counts


def slurm_submissions(counts: dict[str, int], plates: int) -> int:
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    groups, sizes = profile["groups"], profile["group-components"]
    total = 0
    grouped_rules = set(groups)
    for group, size in sizes.items():
        members = [r for r, g in groups.items() if g == group]
        # one connected component per batch (qc, prep, the segment+features chain, wells)
        components = counts.get(members[0], 0)
        total += plates * math.ceil(components / plates / size)
    local = {"all", "write_image_sheet"}
    total += sum(n for rule, n in counts.items()
                 if rule not in grouped_rules and rule not in local and rule != "total")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plates", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--wells-per-job", type=int, nargs="+", default=[12],
                        help="config batching.wells_per_job values to compare")
    args = parser.parse_args()
    print(f"{'plates':>6} {'sites':>7} {'wells/job':>9} {'jobs':>7} {'dry-run s':>10} "
          f"{'peak MB':>8} {'sbatch (grouped)':>17} {'sbatch (ungrouped)':>19}")
    for n in args.plates:
        for wells_per_job in args.wells_per_job:
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                config = yaml.safe_load((REPO / "config/config.yaml").read_text())
                config["channels"] = CHANNELS
                config["batching"] = {"wells_per_job": wells_per_job}
                config["plates"] = {f"P{i:02d}": make_plate(work / "plates", f"P{i:02d}")
                                    for i in range(1, n + 1)}
                (work / "config").mkdir()
                (work / "config/config.yaml").write_text(yaml.safe_dump(config))
                wall, peak, counts = dry_run(work)
                jobs = counts.get("total", sum(counts.values()))
                ungrouped = jobs - counts.get("all", 0) - counts.get("write_image_sheet", 0)
                print(f"{n:6d} {n * len(WELLS) * len(SITES):7d} {wells_per_job:9d} {jobs:7d} "
                      f"{wall:10.1f} {peak:8.0f} {slurm_submissions(counts, n):17d} "
                      f"{ungrouped:19d}", flush=True)


if __name__ == "__main__":
    main()
