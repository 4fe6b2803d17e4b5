"""Core-seconds of every feature family, ours against cp_measure, on one crowded site, in one run.

Builds a 1080x1080, 5-channel site with about 1,000 cells with plateflow's synthetic renderer
(DNA, ER and Mito rendered; RNA and AGP derived from them), segments it with the default
classical method (Nuclei, Cells, Cytoplasm), then times each family over the three
compartments, first ours (the registered family, as the features step calls it), then
cp_measure 0.3.0 computing the same measurements with the same settings (its functions per
compartment, per channel or channel pair). Process time (user + system over all threads) =
core-seconds. Then the whole step: :func:`measure_objects` with every family, and writing the
float32 Parquet table.

    python bench/bench_features.py                   # all families, ours and cp_measure
    python bench/bench_features.py --ours-only
    python bench/bench_features.py --memory --size 2160   # peak memory of the features step

``--memory`` renders and segments a site of ``--size`` pixels (cells scaled with the area),
saves it, and runs the features step alone on it (every family, float32 table written) in a
fresh child process, as a features job would; it prints that process's peak resident memory
(``VmHWM``), against the 2 GB target for a 2160x2160 site.
"""

from __future__ import annotations

import os

# One BLAS thread, as in a 1-thread job: idle OpenBLAS workers spin, and process time would
# count their spinning (a small matrix product then costs ~0.2 core-s more).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse
import copy
import itertools
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import plateflow.features  # noqa: F401  (registers the families)
from plateflow.core.provenance import write_table
from plateflow.features import FAMILIES, measure_objects
from plateflow.features.registry import Images, Objects, enabled_families
from plateflow.segmentation import DEFAULT_PARAMS, SiteImage, build_method

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.synthetic import DEFAULT_PARAMS as MODEL
from helpers.synthetic import _render_site

CHANNELS = ("DNA", "ER", "RNA", "AGP", "Mito")
COMPARTMENTS = ("Nuclei", "Cells", "Cytoplasm")
#: A crowded site: about 1,000 nuclei of 8-11 px radius in a 1080x1080 field.
CROWDED = {"nuclei_per_site": [950, 1050], "nucleus_radius": [4.5, 0.4, 3.8, 5.2],
           "cell_radius_factor": [1.6, 2.0], "nucleus_gap": 1.05}
ALL_ON = {name: {"enabled": True} for name in FAMILIES}


def crowded_site(size: int = 1080, seed: int = 0):
    """(5, size, size) float32 image in [0, 1] and its default segmentation."""
    scale = (size / 1080) ** 2
    model = {**MODEL, **CROWDED,
             "nuclei_per_site": [int(n * scale) for n in CROWDED["nuclei_per_site"]]}
    if size != 1080:  # the renderer's radii are in units of a 512 px field: keep them in px
        model["nucleus_radius"] = [v * 1080 / size for v in CROWDED["nucleus_radius"]]
    res = _render_site(np.random.default_rng(seed), size, 0.0, "none",
                       np.ones((3, size, size)), model)
    raw = np.clip((res["image"].astype(np.float32) - model["camera_offset"]) / 65535, 0, 1)
    dna, er, mito = raw
    image = np.stack([dna, er, 0.6 * er + 0.4 * dna, np.roll(er, 7, axis=1), mito])
    image = (image / image.max(axis=(1, 2), keepdims=True)).astype(np.float32)
    params = copy.deepcopy(DEFAULT_PARAMS)
    params["cells_channel"] = "ER"
    method = build_method(params)
    method.load()
    return image, method.segment(SiteImage(image, CHANNELS))


def _labels(seg, compartment: str) -> np.ndarray:
    return getattr(seg, compartment.lower())


def time_ours(image, seg) -> dict[str, list[float]]:
    """Family -> core-s per compartment, as the features step calls the families."""
    numbers = np.arange(1, int(seg.nuclei.max()) + 1)
    images = Images(image.astype(np.float64), CHANNELS)
    out = {}
    for family, section in enabled_families(ALL_ON):
        out[family.name] = []
        for compartment in COMPARTMENTS:
            start = time.process_time()
            family.measure(Objects(_labels(seg, compartment), numbers), images, section)
            out[family.name].append(time.process_time() - start)
    return out


def cp_measure_calls():
    """Family -> function(labels, image) doing cp_measure's share of the same work."""
    from cp_measure.core import (
        measurecolocalization as coloc,
    )
    from cp_measure.core import (
        measuregranularity,
        measureobjectintensity,
        measureobjectintensitydistribution,
        measureobjectsizeshape,
        measuretexture,
    )
    from cp_measure.multimask import measureobjectneighbors

    defaults = {name: family.defaults for name, family in FAMILIES.items()}
    texture, radial = defaults["Texture"], defaults["RadialDistribution"]
    correlation, neighbors = defaults["Correlation"], defaults["Neighbors"]

    def area_shape(labels, image):
        measureobjectsizeshape.get_sizeshape(labels, None, new_features=False)
        measureobjectsizeshape.get_zernike(labels, None)
        measureobjectsizeshape.get_feret(labels, None)

    def intensity(labels, image):  # also CellProfiler's Location_*Intensity_* columns
        for plane in image:
            measureobjectintensity.get_intensity(labels, plane, legacy=True)

    def per_channel(function, **kwargs):
        def run(labels, image):
            for plane in image:
                function(labels, plane, **kwargs)
        return run

    def colocalization(labels, image):
        thr = correlation["threshold"]
        for a, b in itertools.combinations(range(len(image)), 2):
            x, y = image[a], image[b]
            coloc.get_correlation_pearson(x, y, labels)
            coloc.get_correlation_overlap(x, y, labels, thr=thr)
            coloc.get_correlation_manders_fold(x, y, labels, thr=thr)
            coloc.get_correlation_rwc(x, y, labels, thr=thr)
            coloc.get_correlation_costes(x, y, labels, thr=thr,
                                         scale_max=correlation["costes_scale"])

    def neighbours(labels, image):
        method = {"Within": "Within a specified distance", "Adjacent": "Adjacent",
                  "Expanded": "Expand until adjacent"}[neighbors["method"]]
        measureobjectneighbors.measureobjectneighbors(
            labels, labels, distance_method=method, distance=neighbors["distance"])

    textures = [(scale, texture["gray_levels"]) for scale in texture["scales"]]
    return {
        "AreaShape": area_shape,
        "Intensity": intensity,
        "Texture": lambda labels, image: [
            per_channel(measuretexture.get_texture, scale=s, gray_levels=g)(labels, image)
            for s, g in textures],
        "Granularity": per_channel(measuregranularity.get_granularity,
                                   **FAMILIES["Granularity"].defaults),
        "RadialDistribution": per_channel(
            measureobjectintensitydistribution.get_radial_distribution,
            bin_count=radial["bin_count"], scaled=radial["scaled"],
            maximum_radius=radial["maximum_radius"]),
        "Correlation": colocalization,
        "Neighbors": neighbours,
    }


def _joined(times: dict[str, list[float]]) -> dict[str, list[float]]:
    """Intensity and Location as one row: they share one pass over the pixels (whichever runs
    first pays for it), as cp_measure's get_intensity computes both."""
    out = {}
    for name, row in times.items():
        key = "Intensity + Location" if name in ("Intensity", "Location") else name
        out[key] = [a + b for a, b in zip(out[key], row)] if key in out else list(row)
    return out


def time_cp_measure(image, seg) -> dict[str, list[float]]:
    """Family -> cp_measure core-s per compartment (labels relabelled 1..N first, as its bulk
    API does)."""
    from skimage.segmentation import relabel_sequential

    out = {}
    labels = {c: relabel_sequential(_labels(seg, c))[0] for c in COMPARTMENTS}
    for name, call in cp_measure_calls().items():
        out[name] = []
        for compartment in COMPARTMENTS:
            start = time.process_time()
            call(labels[compartment], image.astype(np.float64))
            out[name].append(time.process_time() - start)
            print(f"  cp_measure {name} {compartment}: {out[name][-1]:.1f} core-s", flush=True)
    return out


def time_step(image, seg, folder: Path) -> tuple[float, float, int]:
    """Core-s of measure_objects with every family, and of writing its float32 table."""
    start = time.process_time()
    table = measure_objects(image, CHANNELS, seg, params=ALL_ON, dtype=np.float32)
    measured = time.process_time() - start
    start = time.process_time()
    write_table(table, folder / "site.parquet", step="extract_features", params=ALL_ON)
    return measured, time.process_time() - start, table.shape[1]


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the parent's peak,
    which Linux carries across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(site: Path) -> None:
    """Child process: the features step alone on a saved site, as a features job runs it;
    prints its peak resident memory."""
    from plateflow.features import SiteLabels

    saved = np.load(site)
    image = saved["image"]
    seg = SiteLabels(saved["nuclei"], saved["cells"], saved["cytoplasm"])
    before = _peak_mb()
    measured, written, columns = time_step(image, seg, site.parent)
    peak = _peak_mb()
    size = image.shape[1]
    print(f"{size}x{image.shape[2]} site, {len(image)} channels, {int(seg.nuclei.max())} cells, "
          f"{columns} columns: features {measured:.1f} core-s, write {written:.2f} core-s; "
          f"peak RSS of the features process {peak:.0f} MB (imports + site loaded: "
          f"{before:.0f} MB); target <= 2048 MB for 2160x2160")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours-only", action="store_true")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--size", type=int, default=1080)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--site", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory:
        if args.child:
            memory(Path(args.site))
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            site = Path(tmp) / "site.npz"
            image, seg = crowded_site(args.size)
            np.savez(site, image=image, nuclei=seg.nuclei, cells=seg.cells,
                     cytoplasm=seg.cytoplasm)
            del image, seg
            return subprocess.run([sys.executable, __file__, "--memory", "--child",
                                   "--site", str(site)], check=False).returncode

    image, seg = crowded_site(args.size)
    n = int(seg.nuclei.max())
    print(f"site {args.size}x{args.size}, channels {', '.join(CHANNELS)}, {n} cells; "
          "core-s over Nuclei + Cells + Cytoplasm")
    ours = _joined(time_ours(image, seg))
    theirs = {} if args.ours_only else _joined(time_cp_measure(image, seg))
    print(f"\n{'family':20s} {'Nuclei':>7s} {'Cells':>7s} {'Cytopl.':>7s} {'ours':>7s} "
          f"{'cp_measure':>10s} {'ratio':>6s}")
    for name, row in ours.items():
        mine = sum(row)
        ref = sum(theirs[name]) if name in theirs else float("nan")
        shown = f"{ref:10.1f}" if name in theirs else ""
        ratio = f"{ref / mine:5.1f}x" if name in theirs else ""
        print(f"{name:20s} " + " ".join(f"{t:7.2f}" for t in row)
              + f" {mine:7.2f} {shown:>10s} {ratio:>6s}")
    total = sum(map(sum, ours.values()))
    print(f"{'all families':20s} {'':23s} {total:7.2f}", end="")
    if theirs:
        ref = sum(map(sum, theirs.values()))
        print(f" {ref:10.1f} {ref / total:5.1f}x")
    else:
        print()
    with tempfile.TemporaryDirectory() as tmp:
        measured, written, columns = time_step(image, seg, Path(tmp))
    print(f"\nfeatures step, every family: measure_objects {measured:.2f} core-s, "
          f"writing the float32 table ({n} rows x {columns} columns) {written:.2f} core-s; "
          "target <= 6 core-s per site")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
