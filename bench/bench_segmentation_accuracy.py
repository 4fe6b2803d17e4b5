"""Accuracy of the classical segmentation against hand-annotated and CellProfiler masks.

Prints, for the default config and for the best documented settings:

* ``dsb2018``: AP@0.5 (TP / (TP + FP + FN), IoU 0.5) per image-size class (median true
  nucleus diameter) and pooled over the 53 real fluorescence images of
  ``../shared/data/dsb2018-nuclei`` (3,083 nuclei, 8.5-100 px);
* ``stardist``: AP@0.5 on ``stardist.data.test_image_nuclei_2d`` (if stardist is installed);
* ``synthetic``: AP@0.5 of nuclei and cells on clean sites of the synthetic example plate;
* ``examplehuman``: nucleus count and cell / cytoplasm areas against CellProfiler's
  ExampleHuman outputs (cells matched by their nucleus).

Images are read as the pipeline reads them: uint8 / 255, uint16 / 65535. Runs single-process.

    PLATEFLOW_REAL_DATA=../shared/data python bench/bench_segmentation_accuracy.py [--only dsb]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from plateflow.segmentation import DEFAULT_PARAMS, SiteImage, build_method
from plateflow.segmentation.metrics import pooled, score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.synthetic import make_example_plate

#: Settings documented in docs/segmentation.md, beside the defaults.
SETTINGS: dict[str, dict] = {
    "defaults": {},
}
#: ExampleHuman.cppipe's IdentifyPrimary/Secondary settings in our terms.
CELLPROFILER_EXAMPLEHUMAN: dict = {
    "threshold_method": "li", "nucleus_diameter": 12, "nucleus_diameter_min": 8,
    "nucleus_diameter_max": 80, "declump": "intensity", "exclude_border": True,
    "cells_threshold_method": "li", "cells_threshold_correction": 0.8,
    "cells_smoothing_sigma": 0.0, "propagation_lambda": 0.05,
}
#: Image-size classes of dsb2018 by median true nucleus diameter (px).
SIZE_CLASSES = ((0, 12, "< 12 px"), (12, 20, "12-20 px"), (20, 35, "20-35 px"),
                (35, 1000, ">= 35 px"))


def as_float(image: np.ndarray) -> np.ndarray:
    """uint8 / 255, uint16 / 65535, float as is (the pipeline's reading)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535
    return image.astype(np.float32)


def method(classical: dict | None = None, *, cells: str | None = None):
    params = copy.deepcopy(DEFAULT_PARAMS)
    params["classical"].update(classical or {})
    params["nuclei_channel"] = "DNA"
    params["cells_channel"] = cells
    m = build_method(params)
    m.load()
    return m


def median_diameter(mask: np.ndarray) -> float:
    areas = np.bincount(mask.ravel())[1:]
    areas = areas[areas > 0]
    return float(2 * np.sqrt(np.median(areas) / np.pi))


def dsb2018(root: Path, classical: dict | None = None) -> list[dict]:
    """One score row per dsb2018 image (with its median true diameter)."""
    m = method(classical)
    rows = []
    for path in sorted((root / "dsb2018-nuclei" / "images").glob("*.tif")):
        image = as_float(tifffile.imread(path))
        truth = tifffile.imread(root / "dsb2018-nuclei" / "masks" / path.name)
        seg = m.segment(SiteImage(image[None], ("DNA",)))
        row = score(truth, seg.nuclei)
        row.update(image=path.stem, diameter=median_diameter(truth),
                   estimate=seg.info.get("nucleus_diameter"), shape=image.shape)
        rows.append(row)
    return rows


def size_table(rows: list[dict]) -> list[tuple[str, int, int, dict]]:
    """(class, n images, n nuclei, pooled scores) per size class, then 'all'."""
    table = []
    for lo, hi, name in SIZE_CLASSES:
        sub = [r for r in rows if lo <= r["diameter"] < hi]
        if sub:
            table.append((name, len(sub), sum(r["N_True"] for r in sub), pooled(sub)))
    table.append(("all", len(rows), sum(r["N_True"] for r in rows), pooled(rows)))
    return table


def stardist_image(classical: dict | None = None) -> dict | None:
    try:
        from stardist.data import test_image_nuclei_2d
    except ImportError:
        return None
    image, truth = test_image_nuclei_2d(return_mask=True)
    seg = method(classical).segment(SiteImage(as_float(image)[None], ("DNA",)))
    row = score(truth, seg.nuclei)
    row["estimate"] = seg.info.get("nucleus_diameter")
    row["diameter"] = median_diameter(truth)
    return row


def synthetic_sites(folder: Path, n_sites: int = 6):
    """(image (2, Y, X) DNA + ER in [0, 1], nuclei truth, cells truth) of clean example sites,
    corrected as the pipeline would (offset removed, divided by the true flat-field)."""
    make_example_plate(folder, plate="ACC", size=512, sites_per_well=3)
    flat = tifffile.imread(folder / "flatfield.tif")
    out = []
    for well in ("B02", "B03", "B04", "B05"):
        for site in (1, 2, 3):
            if (well, site) in {("B02", 9)}:
                continue
            stem = f"ACC_{well}_s{site}"
            raw = [tifffile.imread(folder / "images" / f"{stem}_w{c}.tif") for c in (1, 2)]
            image = np.stack([(r.astype(np.float32) - 100) / 65535 / f
                              for r, f in zip(raw, flat[:2])])
            out.append((np.clip(image, 0, 1),
                        tifffile.imread(folder / "truth" / f"{stem}_nuclei.tif"),
                        tifffile.imread(folder / "truth" / f"{stem}_cells.tif")))
            if len(out) == n_sites:
                return out
    return out


def synthetic(sites, classical: dict | None = None) -> tuple[dict, dict]:
    m = method(classical, cells="ER")
    nuc, cell = [], []
    for image, t_nuc, t_cells in sites:
        seg = m.segment(SiteImage(image, ("DNA", "ER")))
        nuc.append(score(t_nuc, seg.nuclei))
        cell.append(score(t_cells, seg.cells))
    return pooled(nuc), pooled(cell)


def examplehuman(root: Path, classical: dict | None = None) -> dict:
    """Nucleus count and cell / cytoplasm areas against CellProfiler's ExampleHuman."""
    import pandas as pd

    folder = root / "examplehuman-cellprofiler"
    planes = [as_float(tifffile.imread(folder / f"AS_09125_050116030001_D03f00d{i}.tif"))
              for i in (0, 2)]
    seg = method(classical, cells="CellBody").segment(
        SiteImage(np.stack(planes), ("DNA", "CellBody")))
    return compare_examplehuman(seg, folder, pd)


def compare_examplehuman(seg, folder: Path, pd) -> dict:
    nuclei = pd.read_csv(folder / "Nuclei.csv")
    cells = pd.read_csv(folder / "Cells.csv").set_index("ObjectNumber")
    cyto = pd.read_csv(folder / "Cytoplasm.csv").set_index("Parent_Nuclei")
    n = seg.n_objects
    idx = np.arange(1, n + 1)
    from scipy import ndimage as ndi

    centres = np.array(ndi.center_of_mass(np.ones_like(seg.nuclei), seg.nuclei, idx))
    ours_cell = np.bincount(seg.cells.ravel(), minlength=n + 1)[1:]
    ours_cyto = np.bincount(seg.cytoplasm.ravel(), minlength=n + 1)[1:]
    pairs = []
    for _, row in nuclei.iterrows():
        d = np.hypot(centres[:, 0] - row["Location_Center_Y"],
                     centres[:, 1] - row["Location_Center_X"])
        j = int(np.argmin(d))
        if d[j] <= 5:
            k = int(row["ObjectNumber"])
            pairs.append((cells.loc[k, "AreaShape_Area"], ours_cell[j],
                          cyto.loc[k, "AreaShape_Area"], ours_cyto[j]))
    p = np.array(pairs, float)
    out = {"count": n, "cp_count": len(nuclei), "matched": len(p)}
    for name, a, b in (("cells", p[:, 0], p[:, 1]), ("cytoplasm", p[:, 2], p[:, 3])):
        out[f"{name}_r"] = float(np.corrcoef(a, b)[0, 1])
        out[f"{name}_median_rel_diff"] = float(np.median(np.abs(b - a) / a))
        out[f"{name}_median_ratio"] = float(np.median(b / a))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=["dsb", "stardist", "synthetic", "examplehuman"])
    ap.add_argument("--set", nargs="*", default=[], help="classical overrides key=value (YAML)")
    args = ap.parse_args(argv)
    import yaml

    override = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    settings = {"custom": override} if override else SETTINGS
    root = Path(os.environ.get("PLATEFLOW_REAL_DATA", "../shared/data"))
    for label, classical in settings.items():
        print(f"== {label}: {classical or 'default config'}")
        t0 = time.perf_counter()
        if "dsb" in args.only and (root / "dsb2018-nuclei").is_dir():
            rows = dsb2018(root, classical)
            print("dsb2018        images nuclei  AP@0.5  precision  recall")
            for name, n_img, n_nuc, s in size_table(rows):
                print(f"  {name:12s} {n_img:6d} {n_nuc:6d}  {s['AP_50']:.3f}   "
                      f"{s['Precision_50']:.3f}      {s['Recall_50']:.3f}")
            if os.environ.get("VERBOSE"):
                for r in sorted(rows, key=lambda r: r["diameter"]):
                    print(f"    {r['image'][:8]} d={r['diameter']:5.1f} "
                          f"est={r['estimate'] or 0:5.1f} AP={r['AP_50']:.2f} "
                          f"P={r['Precision_50']:.2f} R={r['Recall_50']:.2f} "
                          f"n={r['N_True']}/{r['N_Predicted']}")
        if "stardist" in args.only:
            row = stardist_image(classical)
            if row is not None:
                print(f"stardist image AP@0.5 {row['AP_50']:.3f} (precision "
                      f"{row['Precision_50']:.3f}, recall {row['Recall_50']:.3f}; diameter "
                      f"{row['diameter']:.1f}, estimated {row['estimate']})")
        if "synthetic" in args.only:
            with tempfile.TemporaryDirectory() as tmp:
                sites = synthetic_sites(Path(tmp))
            nuc, cell = synthetic(sites, classical)
            print(f"synthetic      nuclei AP@0.5 {nuc['AP_50']:.3f}, cells AP@0.5 "
                  f"{cell['AP_50']:.3f} ({len(sites)} sites)")
        if "examplehuman" in args.only and (root / "examplehuman-cellprofiler").is_dir():
            for name, extra in (("defaults", {}), ("CellProfiler's settings",
                                                   CELLPROFILER_EXAMPLEHUMAN)):
                r = examplehuman(root, {**classical, **extra})
                print(f"examplehuman ({name}): {r['count']} nuclei vs {r['cp_count']} "
                      f"({100 * (r['count'] / r['cp_count'] - 1):+.1f} %), {r['matched']} "
                      f"matched; cells r={r['cells_r']:.3f} median |rel diff| "
                      f"{100 * r['cells_median_rel_diff']:.1f} % (ratio "
                      f"{r['cells_median_ratio']:.2f}); cytoplasm r={r['cytoplasm_r']:.3f} "
                      f"median |rel diff| {100 * r['cytoplasm_median_rel_diff']:.1f} % (ratio "
                      f"{r['cytoplasm_median_ratio']:.2f})")
        print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
