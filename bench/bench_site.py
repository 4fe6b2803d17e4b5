"""Core-seconds of each per-site step for one 1080x1080, 5-channel site.

Runs the same stage functions the Snakemake rules call (each stage's ``run.py``), on a crowded
synthetic site (``bench_features.crowded_site``: about 1,000 cells, 5 channels), and on the real
5-channel Cell Painting field of ../shared/data when PLATEFLOW_REAL_DATA is set. Prints CPU time
(user + system, all threads: core-seconds) and wall time per step, plus the fixed cost of
starting a Python process that imports the package (paid once per Snakemake job).

    python bench/bench_site.py
"""

from __future__ import annotations

import os

# One BLAS thread, as in a 1-thread job (idle OpenBLAS workers spin, and process time counts it).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from plateflow.features.run import extract_features
from plateflow.illumination.run import correct_illumination, estimate_plate_illumination
from plateflow.qc.run import collect_plate_qc, measure_qc
from plateflow.segmentation.run import segment

CHANNELS = ["DNA", "ER", "RNA", "AGP", "Mito"]
QC = {"min_focus_score": 2.3}


def _timed(label, fn, rows):
    cpu0, wall0 = time.process_time(), time.perf_counter()
    fn()
    rows.append((label, time.process_time() - cpu0, time.perf_counter() - wall0))


def _defaults():
    import yaml
    from snakemake.utils import validate

    repo = Path(__file__).resolve().parents[1]
    config = {"plates": {"X": {"folder": ".", "naming": "metaxpress", "platemap": "x.csv"}}}
    validate(config, str(repo / "workflow" / "schemas" / "config.schema.yaml"))
    return yaml.safe_load(yaml.safe_dump(config))


def synthetic_site(folder: Path) -> dict[str, str]:
    """A crowded 1080x1080 5-channel site (about 1,000 cells, bench_features's renderer) as
    16-bit TIFFs, one per channel."""
    from bench_features import crowded_site

    image, _ = crowded_site(1080)
    files = {}
    for name, plane in zip(CHANNELS, image):
        files[name] = str(folder / f"site_{name}.tif")
        tifffile.imwrite(files[name], np.round(plane * 60000 + 500).astype(np.uint16))
    return files


def real_site(root: Path) -> dict[str, str] | None:
    orig = root / "cellpainting-fields" / "pediatric-BR00143976" / "orig"
    if not orig.is_dir():
        return None
    # Phenix channels 1..5 of this field (6 is bright-field); named as Cell Painting channels.
    mapping = {"DNA": 5, "ER": 4, "RNA": 3, "AGP": 2, "Mito": 1}
    return {name: str(orig / f"r03c03f03p01-ch{ch}sk1fk1fl1.tiff") for name, ch in mapping.items()}


def bench(files: dict[str, str], work: Path, config: dict, title: str) -> None:
    rows: list[tuple[str, float, float]] = []
    sites = {"B02": {"1": files}}  # a batch of one site: the step functions the rules call
    site_ids = ["B02/1"]
    qc_path, gate = work / "qc.parquet", work
    _timed("measure_qc", lambda: measure_qc(
        sites=sites, channels=CHANNELS, plate="P", params={**config["qc"], **QC},
        bit_depth=None, output=qc_path), rows)
    collect_plate_qc(qc_tables=[qc_path], plate="P", channels=CHANNELS,
                     params=config["qc_plate"], out_sites=gate / "sites.parquet",
                     out_reacquire=gate / "re.csv")
    _timed("estimate_illumination (1 site)", lambda: estimate_plate_illumination(
        channels=CHANNELS, plate="P", qc_sites_table=gate / "sites.parquet",
        params=config["illumination"], out_image=work / "ff.tiff",
        out_table=work / "ff.parquet"), rows)
    _timed("correct_illumination", lambda: correct_illumination(
        sites=site_ids, channels=CHANNELS, plate="P", flatfield=work / "ff.tiff",
        qc_table=qc_path, params=config["preprocess"], bit_depth=None, out_dir=work / "pre"),
        rows)
    seg = {**config["segmentation"], "cells_channel": "AGP"}
    _timed("segment", lambda: segment(
        sites=site_ids, preprocessed_dir=work / "pre", params=seg, out_dir=work / "labels"), rows)
    cells = {}
    _timed("extract_features", lambda: cells.setdefault("n", extract_features(
        sites=site_ids, preprocessed_dir=work / "pre", labels_dir=work / "labels", params=config["features"],
        out_dir=work / "features")), rows)
    print(f"\n{title}: {cells['n']} cells")
    print(f"{'step':34s} {'core-s':>8s} {'wall-s':>8s}")
    for label, cpu, wall in rows:
        print(f"{label:34s} {cpu:8.2f} {wall:8.2f}")
    print(f"{'total per-site (excl. illumination)':34s} "
          f"{sum(r[1] for r in rows if 'estimate' not in r[0]):8.2f}")


def main() -> None:
    config = _defaults()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import plateflow.segmentation.run"], check=True)
    print(f"python start + import plateflow.segmentation.run: {time.perf_counter() - start:.2f} s wall "
          "(paid by every Snakemake job)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "syn").mkdir()
        bench(synthetic_site(tmp / "syn"), tmp / "syn", config,
              "synthetic 1080x1080, 5 channels")
        real = os.environ.get("PLATEFLOW_REAL_DATA")
        files = real_site(Path(real)) if real else None
        if files:
            (tmp / "real").mkdir()
            bench(files, tmp / "real", config, "real Cell Painting field BR00143976, 5 channels")
        else:
            print("\n(set PLATEFLOW_REAL_DATA to also time the real Cell Painting field)")


if __name__ == "__main__":
    main()
