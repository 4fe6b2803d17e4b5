"""Core-seconds of the classical segmentation (nuclei + cells) of one crowded 1080x1080 site.

The site comes from the synthetic example's image model (tests/helpers/synthetic.py) with
about 1,000 cells in the field (small nuclei, densely packed), DNA + ER channels, corrected as
the pipeline would (camera offset removed, divided by the true flat-field, scaled to [0, 1]).
Prints the best of 5 runs of CPU time (user + system, all threads: core-seconds) for nuclei +
cells (``Classical.segment``), and its parts.

    python bench/bench_segmentation.py
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np

from plateflow.segmentation import DEFAULT_PARAMS, SiteImage, build_method

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.synthetic import DEFAULT_PARAMS as MODEL
from helpers.synthetic import _render_site

SIZE = 1080
#: Image-model constants for a crowded site: nuclei of 8-11 px radius at 1080 px (3.8-5.2 at
#: the model's 512 px scale), about 1,000 of them in the field.
CROWDED = {"nuclei_per_site": [950, 1050], "nucleus_radius": [4.5, 0.4, 3.8, 5.2],
           "cell_radius_factor": [1.6, 2.0], "nucleus_gap": 1.05}


def crowded_site(seed: int = 0) -> tuple[np.ndarray, int]:
    """(2, SIZE, SIZE) float32 DNA + ER site in [0, 1] and its true number of nuclei."""
    p = {**MODEL, **CROWDED}
    flat = np.ones((3, SIZE, SIZE))
    res = _render_site(np.random.default_rng(seed), SIZE, 0.0, "none", flat, p)
    image = (res["image"][:2].astype(np.float32) - p["camera_offset"]) / 65535
    return np.clip(image, 0, 1), int(res["nuclei"].max())


def main() -> int:
    image, n_true = crowded_site()
    params = copy.deepcopy(DEFAULT_PARAMS)
    params["cells_channel"] = "ER"
    method = build_method(params)
    method.load()
    site = SiteImage(image, ("DNA", "ER"))
    runs = []
    for _ in range(5):
        t0 = time.process_time()
        seg = method.segment(site)
        runs.append(time.process_time() - t0)
    print(f"classical nuclei + cells, {SIZE}x{SIZE} site, {n_true} true nuclei, "
          f"{seg.n_objects} found: {min(runs):.2f} core-seconds (best of 5; runs "
          f"{', '.join(f'{r:.2f}' for r in runs)}); target <= 1.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
