"""Wall time of `snakemake --cores 2` on the example plate, and where the time goes.

Generates the example plate into a fresh folder, runs the workflow as the README says, and sums
the Snakemake benchmark files per rule (wall seconds and CPU seconds of each job, which include
starting Python and importing the package). The gap between the sum of job CPU time / cores
and the wall time is Snakemake's own orchestration.

    python bench/bench_example.py [--cores 2]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "config").mkdir()
        shutil.copy(REPO / "config" / "config.yaml", work / "config" / "config.yaml")
        base = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                "--directory", str(work), "--workflow-profile", str(REPO / "profiles/default")]
        start = time.perf_counter()
        subprocess.run(base + ["--cores", str(args.cores), "--quiet"], check=True,
                       capture_output=True)
        wall = time.perf_counter() - start
        rows = []
        for tsv in (work / "benchmarks").rglob("*.tsv"):
            table = pd.read_csv(tsv, sep="\t")
            rows.append({"rule": tsv.relative_to(work / "benchmarks").parts[0],
                         "wall_s": float(table["s"].iloc[0]),
                         "cpu_s": float(table["cpu_time"].iloc[0])})
        jobs = pd.DataFrame(rows)
        step_work: dict[str, float] = {}
        for log in (work / "logs").rglob("*.log"):
            match = re.search(r"done: work ([0-9.]+) s wall", log.read_text())
            if match:
                rule = log.relative_to(work / "logs").parts[0]
                step_work[rule] = step_work.get(rule, 0.0) + float(match.group(1))
        summary = jobs.groupby("rule").agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"),
                                           cpu_s=("cpu_s", "sum"),
                                           cpu_per_job=("cpu_s", "mean"))
        summary["work_s"] = [step_work.get(rule, float("nan")) for rule in summary.index]
        generate = step_work.pop("generate_example_plate", float("nan"))
        print(f"snakemake --cores {args.cores}: {wall:.1f} s wall, of which generating the "
              f"example plate (checkpoint generate_example_plate) {generate:.1f} s\n")
        print(summary.round(2).to_string())
        n_jobs = sum(1 for log in (work / "logs").rglob("*.log"))
        all_work = sum(step_work.values())
        job_seconds = jobs["wall_s"].sum()
        print(f"\njobs: {n_jobs} ({len(jobs)} benchmarked); "
              f"work inside the step functions: {all_work:.1f} s; "
              f"benchmarked job time: {job_seconds:.1f} s")
        print(f"orchestration per job (job time - work, benchmarked jobs): "
              f"{(job_seconds - sum(step_work.get(r, 0) for r in summary.index)) / len(jobs):.2f} s")
        print(f"of {wall:.1f} s x {args.cores} cores = {wall * args.cores:.0f} core-seconds, "
              f"work is {all_work / (wall * args.cores):.0%}; the rest is Python start-up "
              "and imports per job, Snakemake's scheduling and its bookkeeping.")


if __name__ == "__main__":
    main()
