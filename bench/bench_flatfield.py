"""Flat-field accuracy and speed per method (plateflow.illumination.estimate_flatfield).

Generates the synthetic example plate (known vignetting in ``flatfield.tif``), estimates the
flat-field of each channel from its clean sites (planted defects left out) with every method,
and prints the correlation with the true vignetting, the flat-field's corner/centre ratio next
to the truth's (the estimate includes the camera offset, so it is shallower) and the wall
seconds of the estimate (images already in memory; best of three runs). If
PLATEFLOW_REAL_DATA is set, it also prints the corner/centre ratio of the mean image of the
real transfluor plate (72 sites, strong vignetting) before and after correction. If ``basicpy``
can be imported, BaSiC (flat-field only, and with its dark-field) is measured the same way.

    python bench/bench_flatfield.py [--size 256] [--sites-per-well 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from plateflow import illumination as il
from plateflow.core.stats import corner_to_centre_ratio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.synthetic import CHANNELS, make_example_plate


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _estimators() -> dict:
    """name -> function(list of (Y, X) images) -> (flat-field, dark level or None)."""
    out = {
        method: (
            lambda images, m=method: (
                il.estimate_flatfield(images, params={**il.DEFAULT_PARAMS, "method": m}),
                None,
            )
        )
        for method in il.METHODS
    }
    # the default method with the synthetic camera's black level (100 ADU) removed
    out["background+offset100"] = lambda images: (
        il.estimate_flatfield(images, params={**il.DEFAULT_PARAMS, "camera_offset": 100.0}),
        100.0,
    )
    try:
        from basicpy import BaSiC
    except ImportError:
        return out

    def basic(images, dark):
        model = BaSiC(get_darkfield=dark, device="cpu")
        model.fit(np.stack(images))
        return model.flatfield.astype(np.float32), model.darkfield if dark else None

    out["basicpy"] = lambda images: basic(images, False)
    out["basicpy+dark"] = lambda images: basic(images, True)
    return out


def _timed(fn, images, repeats: int = 3):
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(images)
        runs.append(time.perf_counter() - start)
    return result, min(runs)


def synthetic(size: int, sites_per_well: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_example_plate(tmp, plate="FF", size=size, sites_per_well=sites_per_well, seed=seed)
        with open(tmp / "truth.csv", newline="") as handle:
            clean = [
                (r["well"], r["site"]) for r in csv.DictReader(handle) if r["defect"] == "none"
            ]
        truth = tifffile.imread(tmp / "flatfield.tif")
        channels = {
            code: [tifffile.imread(tmp / "images" / f"FF_{w}_s{s}_{code}.tif") for w, s in clean]
            for code in CHANNELS
        }
    print(
        f"synthetic plate: {len(clean)} clean sites of {size}x{size} px, seed {seed}; "
        f"correlation with the true vignetting, flat-field corner/centre (truth), seconds"
    )
    print(f"{'method':22s}" + "".join(f"{name:>30s}" for name in CHANNELS.values()))
    for name, fn in _estimators().items():
        cells = []
        for c, code in enumerate(CHANNELS):
            (flat, _), seconds = _timed(fn, channels[code], repeats=1 if "basic" in name else 3)
            cells.append(
                f"{_corr(flat, truth[c]):.3f}  {corner_to_centre_ratio(flat):.2f} "
                f"({corner_to_centre_ratio(truth[c]):.2f})  {seconds:6.2f}s"
            )
        print(f"{name:22s}" + "".join(f"{cell:>30s}" for cell in cells))


def transfluor(folder: Path) -> None:
    images = [tifffile.imread(f) for f in sorted(folder.glob("*.TIF"))]
    raw = corner_to_centre_ratio(np.mean([im.astype(np.float64) for im in images], axis=0))
    print(
        f"\ntransfluor plate: {len(images)} sites of {images[0].shape[1]}x{images[0].shape[0]} "
        f"px; corner/centre of the plate's mean image, raw {raw:.3f}"
    )
    for name, fn in _estimators().items():
        if "offset" in name:  # the synthetic camera's black level; this 8-bit plate has none
            continue
        (flat, dark), seconds = _timed(fn, images, repeats=1 if "basic" in name else 3)
        stack = np.stack(images).astype(np.float32)
        if dark is not None:
            stack -= dark
        mean = (stack / flat).mean(axis=0)
        print(f"{name:22s} corrected {corner_to_centre_ratio(mean):.3f}  ({seconds:.2f}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--sites-per-well", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    synthetic(args.size, args.sites_per_well, args.seed)
    data = os.environ.get("PLATEFLOW_REAL_DATA")
    if data and (Path(data) / "transfluor-plate").is_dir():
        transfluor(Path(data) / "transfluor-plate")


if __name__ == "__main__":
    main()
