"""Core-seconds of per-site QC (plateflow.qc.site.measure_site) for a 2160x2160, 5-channel site.

The site is the synthetic generator's nuclei/cell texture tiled to 2160 px (dense content,
the slow case for the focus map). Prints the best of three runs of CPU time (user+system).

    python bench/bench_qc.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from plateflow import qc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.synthetic import make_example_plate


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        make_example_plate(Path(tmp), plate="QC", size=1080, sites_per_well=3)
        planes = [tifffile.imread(Path(tmp) / "images" / f"QC_B02_s1_w{c}.tif") for c in (1, 2, 3)]
    planes += [np.roll(planes[1], 11, axis=0), np.roll(planes[2], 17, axis=1)]
    site = np.stack([np.tile(p, (2, 2)) for p in planes])
    channels = ["DNA", "ER", "RNA", "AGP", "Mito"]
    runs = []
    for _ in range(3):
        start = time.process_time()
        metrics = qc.measure_site(site, channels, dtype_max=65535, params=qc.DEFAULT_PARAMS)
        runs.append(time.process_time() - start)
    print(f"site {site.shape} {site.dtype}: {len(metrics)} metrics; measure_site "
          f"{min(runs):.2f} core-seconds (best of 3; runs {', '.join(f'{r:.2f}' for r in runs)})")


if __name__ == "__main__":
    main()
