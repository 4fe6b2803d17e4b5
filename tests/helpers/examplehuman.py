"""CellProfiler's ExampleHuman (../shared/data/examplehuman-cellprofiler): our features beside
CellProfiler 4.0.6's, for the parity test and bench/parity_examplehuman.py.

ExampleHuman is one 512x512 8-bit site of HT29 cells: ``d0`` DNA, ``d1`` PH3, ``d2`` the cell
body stain. Its pipeline (``ExampleHuman.cppipe``) segments nuclei on DNA, cells on the cell
body, and measures AreaShape (Zernike on, advanced moments off) and Intensity on DNA and PH3.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from plateflow.features import FAMILIES, measure_objects
from plateflow.segmentation import DEFAULT_PARAMS, SiteImage, build_method

FOLDER = "examplehuman-cellprofiler"
#: The channels CellProfiler measured, in our image order (the cell body stain is only segmented).
CHANNELS = ("DNA", "PH3")
COMPARTMENTS = ("Nuclei", "Cells", "Cytoplasm")
ALL_FAMILIES = {name: {"enabled": True} for name in FAMILIES}


def cellprofiler_settings(folder: Path) -> dict:
    """Our classical settings that reproduce ExampleHuman.cppipe's objects: its
    IdentifyPrimaryObjects with CellProfiler's own final threshold (from Image.csv), and its
    IdentifySecondaryObjects (propagation, Li threshold x 0.8)."""
    threshold = float(pd.read_csv(folder / "Image.csv")["Threshold_FinalThreshold_Nuclei"][0])
    return {
        "threshold_correction": 0.0,  # threshold = max(0, min_threshold) = CellProfiler's
        "min_threshold": threshold,
        "declump": "intensity",
        "exclude_border": True,
        "subtract_background": False,
        "nucleus_diameter_min": 8,
        "nucleus_diameter_max": 80,
        "declump_min_distance": 8 / 1.5,
        "cells_threshold_method": "li",
        "cells_threshold_correction": 0.8,
        "cells_smoothing_sigma": 0.0,
        "propagation_lambda": 0.05,
    }


def load(root: Path) -> tuple[np.ndarray, dict[str, pd.DataFrame]]:
    """The (3, 512, 512) float32 site (DNA, PH3, cell body; /255) and CellProfiler's tables."""
    folder = Path(root) / FOLDER
    image = np.stack([tifffile.imread(folder / f"AS_09125_050116030001_D03f00d{i}.tif") / 255.0
                      for i in (0, 1, 2)]).astype(np.float32)
    tables = {c: pd.read_csv(folder / f"{c}.csv") for c in COMPARTMENTS}
    return image, tables


def measure(root: Path, *, cellprofiler_way: bool):
    """Segment ExampleHuman (CellProfiler's settings, or our defaults) and measure every family
    on DNA and PH3.

    Returns
    -------
    ours : DataFrame
        Our per-object table.
    tables : dict of str to DataFrame
        CellProfiler's tables, by compartment.
    image : (2, Y, X) float32 ndarray
        DNA and PH3 as measured.
    """
    image, tables = load(root)
    params = copy.deepcopy(DEFAULT_PARAMS)
    params["nuclei_channel"] = "DNA"
    params["cells_channel"] = "CellBody"
    if cellprofiler_way:
        params["classical"].update(cellprofiler_settings(Path(root) / FOLDER))
    method = build_method(params)
    method.load()
    seg = method.segment(SiteImage(image, (*CHANNELS, "CellBody")))
    ours = measure_objects(image[:2], CHANNELS, seg, params=ALL_FAMILIES)
    return ours, tables, image[:2]
