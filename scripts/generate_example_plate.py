"""Snakemake entry script of checkpoint generate_example_plate: the synthetic example plate.

The generator lives with the test helpers (tests/helpers/synthetic.py), not in the package. It
writes ground-truth masks for every site (truth/); this script also writes ground_truth.csv,
the table that ``plates.<plate>.ground_truth`` names, listing a few of them: the first clean
site of each well and the corrupt site (which the QC gate stops, so the accuracy table lists it
as not segmented).
"""

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "tests"))  # noqa: F821

from helpers.synthetic import make_example_plate

from plateflow.core.logs import logged_step


def write_ground_truth_table(folder: Path, plate: str) -> Path:
    """ground_truth.csv: plate, well, site and mask paths (relative to ``folder``) of a few
    sites, chosen from the generator's truth.csv."""
    with open(folder / "truth.csv", newline="", encoding="utf-8") as handle:
        sites = list(csv.DictReader(handle))
    chosen, wells = [], set()
    for row in sites:
        if row["defect"] == "none" and row["well"] not in wells:
            wells.add(row["well"])
            chosen.append(row)
        elif row["defect"] == "corrupt":
            chosen.append(row)
    path = folder / "ground_truth.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["plate", "well", "site", "nuclei", "cells"])
        for row in chosen:
            stem = f"truth/{plate}_{row['well']}_s{row['site']}"
            writer.writerow([plate, row["well"], row["site"], f"{stem}_nuclei.tif",
                             f"{stem}_cells.tif"])
    return path


with logged_step(snakemake.log[0], "generate_example_plate"):  # noqa: F821
    out = Path(snakemake.output.platemap).parent  # noqa: F821
    make_example_plate(
        out,
        plate=snakemake.wildcards.plate,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
    )
    write_ground_truth_table(out, snakemake.wildcards.plate)  # noqa: F821
