"""Our features against CellProfiler 4.0.6's own tables for ExampleHuman: the parity tables.

Two segmentations of the same site, every family measured on DNA and PH3:

* ``identical``: CellProfiler's settings (its own final nucleus threshold); objects whose
  centre and area equal a CellProfiler object's have (almost surely) the same mask, so every
  difference left is in the measurement;
* ``defaults``: our default settings; nuclei are paired with CellProfiler's by centre (mutual
  nearest, < 5 px), cells and cytoplasm through their nucleus (``Parent_Nuclei``).

For each compartment and each feature both tables have: the pairs, Pearson r, median and
maximum relative difference ``|a - b| / max(|a|, |b|)``. Markdown on stdout. CellProfiler
4.0.6's Orientation (radians) is converted to degrees first (:func:`from_cellprofiler_406`).

    PLATEFLOW_REAL_DATA=../shared/data python bench/parity_examplehuman.py [--summary]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from plateflow.features.parity import (
    from_cellprofiler_406,
    identical_masks,
    match_objects,
    parity_table,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import examplehuman


def default_pairs(ours: pd.DataFrame, tables: dict[str, pd.DataFrame], compartment: str):
    """Nuclei by centre; cells and cytoplasm through the nucleus they belong to."""
    nuclei = tables["Nuclei"]
    mine, theirs = match_objects(
        ours[["Nuclei_AreaShape_Center_X", "Nuclei_AreaShape_Center_Y"]].to_numpy()
        if "Nuclei_AreaShape_Center_X" in ours else
        ours[["Nuclei_Location_Center_X", "Nuclei_Location_Center_Y"]].to_numpy(),
        nuclei[["Location_Center_X", "Location_Center_Y"]].to_numpy(), max_distance=5.0)
    if compartment == "Nuclei":
        return mine, theirs
    parent = tables[compartment]["Parent_Nuclei"].to_numpy()
    row_of = {int(k): i for i, k in enumerate(parent)}
    numbers = nuclei["ObjectNumber"].to_numpy()[theirs]
    keep = np.array([int(k) in row_of for k in numbers], bool)
    return mine[keep], np.array([row_of[int(k)] for k in numbers[keep]], np.int64)


def tables_for(root: Path, mode: str) -> dict[str, tuple[int, pd.DataFrame]]:
    """Compartment -> (pairs, parity table) for one mode."""
    ours, tables, _ = examplehuman.measure(root, cellprofiler_way=mode == "identical")
    tables = {c: from_cellprofiler_406(t) for c, t in tables.items()}
    out = {}
    for compartment in examplehuman.COMPARTMENTS:
        if mode == "identical":
            pairs = identical_masks(ours, tables[compartment], compartment)
        else:
            pairs = default_pairs(ours, tables, compartment)
        out[compartment] = (len(pairs[0]),
                            parity_table(ours, tables[compartment], compartment, pairs))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", action="store_true", help="only the per-family summary")
    args = parser.parse_args(argv)
    root = Path(os.environ.get("PLATEFLOW_REAL_DATA", "../shared/data"))
    for mode in ("identical", "defaults"):
        for compartment, (n, table) in tables_for(root, mode).items():
            good = (table["pearson_r"].fillna(1.0) >= 0.99) & (table["median_rel_diff"] <= 0.01)
            print(f"\n### {compartment}, {mode} ({n} pairs): {int(good.sum())} of {len(table)} "
                  "features with r >= 0.99 and median relative difference <= 1 %\n")
            family = table["feature"].str.split("_").str[0]
            summary = table.assign(family=family, good=good).groupby("family").agg(
                features=("feature", "size"), meeting=("good", "sum"),
                min_r=("pearson_r", "min"), worst_median=("median_rel_diff", "max"))
            summary = summary.astype({"features": int, "meeting": int})
            print(summary.to_markdown(floatfmt=("", "", "", ".4f", ".4f")))
            if not args.summary:
                print()
                print(table.to_markdown(index=False, floatfmt=("", "", ".4g", ".4g", ".4g", "")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
