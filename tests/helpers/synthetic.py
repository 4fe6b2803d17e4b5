"""Synthetic but realistic example plate, so a fresh clone runs the pipeline with no download.

``make_example_plate(out_dir)`` (or ``python tests/helpers/synthetic.py OUT_DIR``) writes one
small plate of 8 wells x ``sites_per_well`` sites x 3 channels, with ground truth::

    OUT_DIR/
      images/{plate}_{well}_s{site}_w{channel}.tif   raw uint16 2-D TIFFs, MetaXpress naming
      platemap.csv       well, role, compound, dose_uM
      truth/{plate}_{well}_s{site}_nuclei.tif        uint16 instance labels (0 = background)
      truth/{plate}_{well}_s{site}_cells.tif         uint16 instance labels; nucleus i lies in cell i
      truth.csv          one row per site: counts, planted defect and planted phenotype
      flatfield.tif      float32 (C, Y, X), the true vignetting per channel, mean 1
      channels.yaml      w1: DNA, w2: ER, w3: Mito

Channels
--------
``w1`` = DNA (nuclear stain), ``w2`` = ER (cell body: fills the whole cell, brighter around the
nucleus), ``w3`` = Mito (cytoplasmic, punctate, enriched around the nucleus).

Plate layout (96-well naming)
-----------------------------
====== ================ ========== =======
well   role             compound   dose_uM
====== ================ ========== =======
B02    negative_control DMSO       0
B03    negative_control DMSO       0
B04    positive_control PosCtrl    10
B05    positive_control PosCtrl    10
B06    treatment        CMPD-1     0.1
B07    treatment        CMPD-1     0.3
B08    treatment        CMPD-1     1
B09    treatment        CMPD-1     3
====== ================ ========== =======

Planted phenotype
-----------------
The effect ``e`` (0 = none, 1 = maximal) is a sigmoid in log dose,
``e = 1 / (1 + EC50 / dose)`` with ``EC50 = 0.5`` uM (Hill slope 1), so CMPD-1 gives
e = 0.167, 0.375, 0.667, 0.857; DMSO gives 0 and PosCtrl gives 1. Per cell, the Mito
intensity is multiplied by ``1 - 0.6 e`` (40 % of control at maximal effect) and the nucleus area
by ``1 + 0.4 e`` (+40 % at maximal effect). Both are clearly measurable per well from the median of
per-cell features (about 60 cells per site). DNA and ER brightness do not depend on dose.

Image model
-----------
Noise-free signal (ADU above the camera offset) = background + objects, blurred by a Gaussian PSF
(sigma 1 px at size 512), multiplied by the per-channel vignetting (``flatfield.tif``, the same
for every site, corners at 0.5-0.6 of the centre, centre slightly off the image centre), then
Poisson shot noise (1 electron per ADU), Gaussian read noise (sigma 3 ADU) and the camera offset
(100 ADU), rounded and clipped to uint16. Nuclei are textured ellipses with equivalent radius
about 7-13 px at size 512 (all lengths scale with ``size / 512``), 40-80 per clean site, placed by
rejection sampling so that nuclei do not touch. Cells are the nuclei grown into
Voronoi-limited blobs of about 2-3x the nucleus radius, with a wobbly outline. The field of view
is a window onto a larger dish: cells are simulated in a margin around it too, so the density
does not drop at the image border and cells whose nucleus lies just outside the field reach into
the image (they are drawn, but are not in the truth masks).

The flat-field is recoverable from the images: plateflow's default estimator (the per-pixel
10th percentile of the clean sites, smoothed; plateflow.illumination) correlates with
``flatfield.tif`` at 0.999 in every channel with 3-5 sites per well; the per-pixel median does
so only for the sparse DNA stain (the dense ER stain covers about half the sites at each pixel).
With ``camera_offset`` set to the 100 ADU offset, its depth matches the truth as well.

Ground truth
------------
Nuclei (and their cells) cut by the image border are kept in the truth masks when at least
``30 * (size / 512) ** 2`` px of the nucleus remain visible; smaller border slivers are still
drawn in the images but are dropped from the truth masks (nucleus and cell). ``n_nuclei`` in
``truth.csv`` is the number of labels in the nuclei mask; the per-site phenotype columns
(``mean_nucleus_area_px``, ``median_nucleus_area_px``, ``median_cell_area_px``,
``median_cell_mito_mean``) are measured on the truth masks and are empty for the blank site;
``effect``, ``mito_factor`` and ``nucleus_area_factor`` are the planted values. Truth masks describe the specimen, so
they are written for every site, defects included: the in-focus objects for the out-of-focus
site, the objects for the saturated site and for the corrupt site (whose ``w1`` and ``w3`` files
are fine), and empty masks for the blank site.

Planted defects (each in its own well, so every well keeps clean sites)
-------------------------------------------------------------------------
* ``out_of_focus``: B06 site 2, every channel blurred with an extra Gaussian of sigma
  5 px at size 512 (before the noise, as in a microscope).
* ``saturated``: B07 site 1, exposure so long that about 8 % of the pixels of every channel
  sit at 65535.
* ``blank``: B08 site 3, background, vignetting and noise only; no cells (``n_nuclei`` = 0).
* ``corrupt``: B09 site 2, the ``w2`` (ER) file is truncated to 300 bytes, as after an
  interrupted copy: its TIFF header is there but ``tifffile.imread`` raises.

Files are byte-identical for the same arguments (no timestamps in the TIFFs). Existing files of
the same names are overwritten; other files in ``OUT_DIR`` are left alone.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage.measure import label

logger = logging.getLogger(__name__)

#: channel code in the file name -> biological channel name
CHANNELS: dict[str, str] = {"w1": "DNA", "w2": "ER", "w3": "Mito"}
CHANNEL_NAMES: list[str] = list(CHANNELS.values())

#: (well, role, compound, dose_uM)
PLATE_LAYOUT: list[tuple[str, str, str, float]] = [
    ("B02", "negative_control", "DMSO", 0.0),
    ("B03", "negative_control", "DMSO", 0.0),
    ("B04", "positive_control", "PosCtrl", 10.0),
    ("B05", "positive_control", "PosCtrl", 10.0),
    ("B06", "treatment", "CMPD-1", 0.1),
    ("B07", "treatment", "CMPD-1", 0.3),
    ("B08", "treatment", "CMPD-1", 1.0),
    ("B09", "treatment", "CMPD-1", 3.0),
]

#: (well, site) -> defect name
DEFECTS: dict[tuple[str, int], str] = {
    ("B06", 2): "out_of_focus",
    ("B07", 1): "saturated",
    ("B08", 3): "blank",
    ("B09", 2): "corrupt",
}
#: channel code whose file is corrupted at the corrupt site
CORRUPT_CHANNEL = "w2"

#: Model constants, lengths in px at size 512 (scaled by size / 512), intensities in ADU.
DEFAULT_PARAMS: dict = {
    "camera_offset": 100.0,  # camera black level (ADU)
    "read_noise": 3.0,  # Gaussian read noise sigma (ADU)
    "electrons_per_adu": 1.0,  # shot noise: Poisson(signal * e/ADU) / (e/ADU)
    "background": [40.0, 60.0, 40.0],  # diffuse background per channel, above offset (ADU)
    "vignetting_corner": [0.55, 0.58, 0.52],  # corner/centre ratio of the flat-field per channel
    "psf_sigma": 1.0,  # optical blur (px)
    "nuclei_per_site": [42, 72],  # nucleus centres in the field, uniform integer range
    "nucleus_radius": [10.0, 1.2, 7.0, 13.0],  # equivalent radius: mean, sd, min, max (px)
    "nucleus_aspect": [1.0, 1.5],  # ellipse axis ratio range
    "nucleus_gap": 1.1,  # min centre distance = gap * (semi-major_i + semi-major_j)
    "cell_radius_factor": [2.0, 3.0],  # cell extent / nucleus radius, uniform range
    "dna_amplitude": 1500.0,  # median nucleus DNA signal (ADU)
    "dna_texture": [0.25, 1.0],  # chromatin texture: relative amplitude, correlation length (px)
    "er_amplitude": 500.0,  # median cell ER signal (ADU)
    "mito_amplitude": 450.0,  # median cell Mito signal of an untreated cell (ADU)
    "ec50_uM": 0.5,  # dose of half-maximal effect
    "hill": 1.0,  # Hill slope of the dose response
    "mito_max_drop": 0.6,  # Mito factor = 1 - mito_max_drop * effect
    "nucleus_area_max_gain": 0.4,  # nucleus area factor = 1 + nucleus_area_max_gain * effect
    "min_visible_area": 30.0,  # border nuclei smaller than this (px at 512) leave the truth
    "defocus_sigma": 5.0,  # extra blur of the out-of-focus site (px)
    "saturation_quantile": 0.92,  # this quantile of the saturated site lands at 1.1 x 65535
    "corrupt_bytes": 300,  # length the corrupt file is truncated to
}

_UINT16_MAX = 65535
_PLATE_RE = re.compile(r"^[A-Za-z0-9-]+$")


# ----------------------------------------------------------------------------- biology


def dose_effect(dose_uM: float, role: str, *, params: dict | None = None) -> float:
    """Fraction of the maximal phenotype (0..1) for a well.

    Parameters
    ----------
    dose_uM : float
        Dose in micromolar (0 for vehicle).
    role : str
        ``negative_control``, ``positive_control`` or ``treatment``.

    Returns
    -------
    float
        0 for negative controls, 1 for positive controls, a Hill sigmoid in log dose otherwise.
    """
    p = DEFAULT_PARAMS if params is None else params
    if role == "negative_control" or dose_uM <= 0:
        return 0.0
    if role == "positive_control":
        return 1.0
    return 1.0 / (1.0 + (p["ec50_uM"] / dose_uM) ** p["hill"])


def _phenotype(effect: float, p: dict) -> tuple[float, float]:
    """Return (mito_factor, nucleus_area_factor) for an effect in 0..1."""
    return 1.0 - p["mito_max_drop"] * effect, 1.0 + p["nucleus_area_max_gain"] * effect


# ----------------------------------------------------------------------------- optics


def make_flatfield(size: int, *, seed: int = 0, params: dict | None = None) -> NDArray[np.float32]:
    """True vignetting of the synthetic microscope, one smooth radial falloff per channel.

    Parameters
    ----------
    size : int
        Image height and width (px).
    seed : int
        Random seed; sets the small per-channel shifts of the optical centre.

    Returns
    -------
    flatfield : (C, Y, X) float32 ndarray
        Each channel has mean 1; corners are at about ``vignetting_corner`` of the centre.
    """
    p = DEFAULT_PARAMS if params is None else params
    rng = np.random.default_rng([seed, 7919])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    base_shift = np.array([0.04, -0.03]) * size
    out = np.empty((len(CHANNELS), size, size), np.float32)
    half_diag = size / math.sqrt(2.0)
    for c, corner in enumerate(p["vignetting_corner"]):
        cy, cx = (size - 1) / 2 + base_shift + rng.uniform(-0.02, 0.02, 2) * size
        s2 = half_diag**2 / (2.0 * math.log(1.0 / corner))
        aniso = 1.0 + rng.uniform(-0.08, 0.08)  # slightly elliptical falloff
        r2 = (yy - cy) ** 2 * aniso + (xx - cx) ** 2 / aniso
        f = np.exp(-r2 / (2.0 * s2))
        out[c] = f / f.mean()
    return out


# ----------------------------------------------------------------------------- one site


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> NDArray:
    """Gaussian-filtered white noise scaled to unit standard deviation."""
    g = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return g / (g.std() + 1e-12)


def _place_nuclei(rng: np.random.Generator, n: int, size: int, scale: float, area_factor: float,
                  p: dict) -> list[tuple[float, float, float, float, float, float]]:
    """Rejection-sample non-touching ellipses: (cy, cx, r_equiv, a, b, theta)."""
    mean, sd, lo, hi = p["nucleus_radius"]
    placed: list[tuple[float, float, float, float, float, float]] = []
    centres = np.empty((n, 2))
    majors = np.empty(n)
    attempts = 0
    while len(placed) < n and attempts < 50 * n:
        attempts += 1
        r = float(np.clip(rng.normal(mean, sd), lo, hi)) * scale * math.sqrt(area_factor)
        ratio = rng.uniform(*p["nucleus_aspect"])
        a, b = r * math.sqrt(ratio), r / math.sqrt(ratio)
        cy, cx = rng.uniform(0, size, 2)
        k = len(placed)
        if k:
            d = np.hypot(centres[:k, 0] - cy, centres[:k, 1] - cx)
            if np.any(d < p["nucleus_gap"] * (majors[:k] + a)):
                continue
        centres[k] = cy, cx
        majors[k] = a
        placed.append((cy, cx, r, a, b, rng.uniform(0, math.pi)))
    return placed


def _render_site(rng: np.random.Generator, size: int, effect: float, defect: str,
                 flatfield: NDArray, p: dict) -> dict:
    """Simulate one site.

    Returns
    -------
    dict
        ``image`` : (C, Y, X) uint16 raw image; ``nuclei``, ``cells`` : (Y, X) uint16 truth labels;
        ``clean`` : (C, Y, X) float noise-free signal before vignetting (ADU above offset);
        ``mito_factor``, ``area_factor`` : planted phenotype.
    """
    scale = size / 512.0
    mito_factor, area_factor = _phenotype(effect, p)
    # The field of view is a window onto a larger dish: simulate a margin around it so that
    # cells cut by the border look the same as anywhere else, then crop.
    margin = _margin(scale, p)
    full = size + 2 * margin
    shape = (full, full)
    nuc = np.zeros(shape, np.int32)
    signal = np.empty((3, *shape))
    for c, bg in enumerate(p["background"]):
        signal[c] = bg

    lo, hi = p["nuclei_per_site"]
    n_field = int(rng.integers(lo, hi + 1))  # expected number of nucleus centres in the field
    nuclei = [] if defect == "blank" else _place_nuclei(
        rng, round(n_field * (full / size) ** 2), full, scale, area_factor, p)
    n = len(nuclei)
    if n:
        tex_amp, tex_sigma = p["dna_texture"]
        dna_tex = np.clip(1.0 + tex_amp * _smooth_noise(rng, shape, tex_sigma * scale), 0.2, None)
        dna = np.zeros(shape)
        dna_amp = p["dna_amplitude"] * rng.lognormal(0.0, 0.25, n)
        for i, (cy, cx, _r, a, b, th) in enumerate(nuclei, start=1):
            y0, y1 = max(int(cy - a) - 2, 0), min(int(cy + a) + 3, full)
            x0, x1 = max(int(cx - a) - 2, 0), min(int(cx + a) + 3, full)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            dy, dx = yy - cy, xx - cx
            u = (dx * math.cos(th) + dy * math.sin(th)) / a
            v = (-dx * math.sin(th) + dy * math.cos(th)) / b
            rho2 = u * u + v * v
            inside = (rho2 <= 1.0) & (nuc[y0:y1, x0:x1] == 0)
            nuc[y0:y1, x0:x1][inside] = i
            prof = dna_amp[i - 1] * (1.0 - 0.3 * rho2) * dna_tex[y0:y1, x0:x1]
            dna[y0:y1, x0:x1][inside] = prof[inside]
        signal[0] += dna

        # cells: nuclei grown into Voronoi-limited blobs with a wobbly outline
        dist, (iy, ix) = ndi.distance_transform_edt(nuc == 0, return_indices=True)
        owner = nuc[iy, ix]
        radius = np.array([0.0] + [t[2] for t in nuclei])
        reach = np.zeros(n + 1)
        reach[1:] = (rng.uniform(*p["cell_radius_factor"], n) - 1.0) * radius[1:]
        wobble = np.clip(1.0 + 0.3 * _smooth_noise(rng, shape, 6.0 * scale), 0.5, 1.5)
        cells = np.where(dist <= reach[owner] * wobble, owner, 0)
        cells = _keep_nucleated(cells, nuc)

        # falloff with the distance from the nucleus edge, in nucleus radii
        near = np.exp(-dist / np.maximum(radius[owner], 1e-6))
        in_nuc = nuc > 0
        in_cell = cells > 0
        er_amp = np.zeros(n + 1)
        er_amp[1:] = p["er_amplitude"] * rng.lognormal(0.0, 0.25, n)
        er_prof = np.where(in_nuc, 0.8, 0.55 + 0.45 * near)
        er_tex = 1.0 + 0.25 * _smooth_noise(rng, shape, 0.8 * scale)
        signal[1] += np.where(in_cell, er_amp[cells] * er_prof * np.clip(er_tex, 0.2, None), 0.0)

        mito_amp = np.zeros(n + 1)
        mito_amp[1:] = p["mito_amplitude"] * mito_factor * rng.lognormal(0.0, 0.2, n)
        mito_prof = np.where(in_nuc, 0.1, 0.4 + 0.6 * near)
        density = min(0.05 / scale**2, 0.5)
        puncta = (rng.random(shape) < density) / density
        mito = mito_amp[cells] * mito_prof * (0.25 + 0.75 * puncta)
        signal[2] += np.where(in_cell, mito, 0.0)
    else:
        cells = np.zeros(shape, np.int32)

    blur = p["psf_sigma"] * scale
    if defect == "out_of_focus":
        blur = math.hypot(blur, p["defocus_sigma"] * scale)
    for c in range(3):
        signal[c] = ndi.gaussian_filter(signal[c], blur, mode="nearest")
    window = (slice(margin, margin + size), slice(margin, margin + size))
    signal = signal[(slice(None), *window)]
    nuc, cells = nuc[window], cells[window]
    clean = signal.copy()

    # truth: drop border slivers, renumber 1..n so that nucleus i lies in cell i
    nuc_t, cells_t = _truth_labels(nuc, cells, p["min_visible_area"] * scale**2)

    expo = flatfield * signal
    if defect == "saturated":
        q = np.quantile(expo.reshape(3, -1), p["saturation_quantile"], axis=1)
        expo *= ((1.1 * _UINT16_MAX - p["camera_offset"]) / q)[:, None, None]
    e = p["electrons_per_adu"]
    raw = rng.poisson(expo * e) / e
    raw += rng.normal(p["camera_offset"], p["read_noise"], raw.shape)
    image = np.clip(np.rint(raw), 0, _UINT16_MAX).astype(np.uint16)
    return {"image": image, "nuclei": nuc_t, "cells": cells_t, "clean": clean,
            "mito_factor": mito_factor, "area_factor": area_factor}


def _margin(scale: float, p: dict) -> int:
    """Width (px) of the simulated dish around the field: the largest reach of a cell."""
    r_max = p["nucleus_radius"][3] * math.sqrt(1.0 + p["nucleus_area_max_gain"])
    reach = r_max * (math.sqrt(p["nucleus_aspect"][1]) + 1.5 * (p["cell_radius_factor"][1] - 1))
    return math.ceil(reach * scale) + 2


def _keep_nucleated(cells: NDArray, nuc: NDArray) -> NDArray:
    """Zero the pieces of each cell label that are not connected to its own nucleus.

    Parameters
    ----------
    cells, nuc : (Y, X) int ndarray
        Cell and nucleus labels with the same ids.
    """
    comp = label(cells, background=0, connectivity=1)  # equal-valued connected pieces
    good = np.zeros(int(comp.max()) + 1, bool)
    good[comp[nuc > 0]] = True
    good[0] = False
    return np.where(good[comp], cells, 0)


def _truth_labels(nuc: NDArray, cells: NDArray, min_area: float) -> tuple[NDArray, NDArray]:
    """Drop nuclei with fewer than ``min_area`` visible px (and their cells); renumber 1..n."""
    n = max(int(nuc.max()), int(cells.max()))
    if n == 0:
        z = np.zeros(nuc.shape, np.uint16)
        return z, z.copy()
    area = np.bincount(nuc.ravel(), minlength=n + 1)
    keep = area >= min_area
    keep[0] = False
    lut = np.zeros(n + 1, np.uint16)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint16)
    return lut[nuc], lut[cells]


# ----------------------------------------------------------------------------- files


def _write_tiff(path: Path, data: NDArray, **kwargs) -> None:
    """Write a TIFF with no timestamp or free-text metadata, so equal data gives equal bytes."""
    tifffile.imwrite(path, data, photometric="minisblack", metadata=None, datetime=False,
                     software=False, **kwargs)


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.6g}"


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join(v if isinstance(v, str) else _fmt(v) for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


TRUTH_COLUMNS: list[str] = [
    "plate", "well", "site", "n_nuclei", "defect", "role", "compound", "dose_uM",
    "effect",  # planted fraction of maximal phenotype, 0..1
    "mito_factor",  # planted per-cell Mito intensity factor vs untreated
    "nucleus_area_factor",  # planted nucleus area factor vs untreated
    "mean_nucleus_area_px",  # from the truth mask
    "median_nucleus_area_px",  # from the truth mask
    "median_cell_area_px",  # from the truth mask
    "median_cell_mito_mean",  # median over truth cells of the mean noise-free Mito ADU
                              # (above offset, before vignetting)
]


def make_example_plate(out_dir: str | Path, *, plate: str = "EXAMPLE1", seed: int = 0,
                       size: int = 512, sites_per_well: int = 3,
                       params: dict | None = None) -> Path:
    """Write a synthetic 8-well example plate with ground truth and planted defects.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created if missing).
    plate : str
        Plate name used in the file names (letters, digits and ``-`` only).
    seed : int
        Random seed; the same arguments give byte-identical files.
    size : int
        Image height and width in px (>= 64). Object sizes scale with ``size / 512``.
    sites_per_well : int
        Sites per well (>= 3, so that every well keeps clean sites next to the defects).
    params : dict, optional
        Model constants; missing keys come from ``DEFAULT_PARAMS``.

    Returns
    -------
    Path
        ``out_dir``. See the module docstring for the files in it.
    """
    if not _PLATE_RE.match(plate):
        raise ValueError(f"plate name {plate!r} must use only letters, digits and '-' "
                         "(an '_' would clash with the {plate}_{well}_s{site}_w{channel} names)")
    if int(size) != size or size < 64:
        raise ValueError(f"image size must be a whole number of pixels >= 64, got {size!r}")
    if int(sites_per_well) != sites_per_well or sites_per_well < 3:
        raise ValueError("sites_per_well must be at least 3: the planted defects use sites 1-3 and "
                         f"every well must keep clean sites; got {sites_per_well!r}")
    size, sites_per_well, seed = int(size), int(sites_per_well), int(seed)
    p = {**DEFAULT_PARAMS, **(params or {})}
    t0 = time.perf_counter()

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)

    flat = make_flatfield(size, seed=seed, params=p)
    _write_tiff(out / "flatfield.tif", flat)
    (out / "channels.yaml").write_text(
        "# channel code in the image file names -> biological channel\n"
        + "".join(f"{k}: {v}\n" for k, v in CHANNELS.items()), encoding="utf-8")
    _write_csv(out / "platemap.csv", ["well", "role", "compound", "dose_uM"],
               [[w, r, c, d] for w, r, c, d in PLATE_LAYOUT])

    rows = []
    for wi, (well, role, compound, dose) in enumerate(PLATE_LAYOUT):
        effect = dose_effect(dose, role, params=p)
        for site in range(1, sites_per_well + 1):
            defect = DEFECTS.get((well, site), "none")
            rng = np.random.default_rng([seed, wi, site])
            res = _render_site(rng, size, effect, defect, flat, p)
            stem = f"{plate}_{well}_s{site}"
            for c, code in enumerate(CHANNELS):
                path = out / "images" / f"{stem}_{code}.tif"
                _write_tiff(path, res["image"][c])
                if defect == "corrupt" and code == CORRUPT_CHANNEL:
                    with open(path, "r+b") as fh:
                        fh.truncate(p["corrupt_bytes"])
            _write_tiff(out / "truth" / f"{stem}_nuclei.tif", res["nuclei"], compression="zlib")
            _write_tiff(out / "truth" / f"{stem}_cells.tif", res["cells"], compression="zlib")
            rows.append([plate, well, site, int(res["nuclei"].max()), defect, role, compound,
                         dose, effect, res["mito_factor"], res["area_factor"],
                         *_pheno_stats(res)])
    _write_csv(out / "truth.csv", TRUTH_COLUMNS, rows)
    logger.info("wrote example plate %s (%d sites, %d px) to %s in %.1f s", plate,
                len(rows), size, out, time.perf_counter() - t0)
    return out


def _pheno_stats(res: dict) -> list[float]:
    nuc, cells = res["nuclei"], res["cells"]
    n = int(nuc.max())
    if n == 0:
        return [float("nan")] * 4
    nuc_area = np.bincount(nuc.ravel(), minlength=n + 1)[1:]
    cell_area = np.bincount(cells.ravel(), minlength=n + 1)[1:]
    mito_sum = np.bincount(cells.ravel(), weights=res["clean"][2].ravel(), minlength=n + 1)[1:]
    return [float(nuc_area.mean()), float(np.median(nuc_area)), float(np.median(cell_area)),
            float(np.median(mito_sum / np.maximum(cell_area, 1)))]


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python tests/helpers/synthetic.py OUT_DIR [--plate P] [--seed N] ...``."""
    ap = argparse.ArgumentParser(
        prog="python tests/helpers/synthetic.py",
        description="Write a synthetic 8-well example plate (3 channels: w1=DNA, w2=ER, w3=Mito) "
                    "with ground-truth masks, a plate map and planted defects.")
    ap.add_argument("out_dir", help="folder to write the plate into")
    ap.add_argument("--plate", default="EXAMPLE1", help="plate name (default EXAMPLE1)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--size", type=int, default=512, help="image size in px (default 512)")
    ap.add_argument("--sites", type=int, default=3, help="sites per well, >= 3 (default 3)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        make_example_plate(args.out_dir, plate=args.plate, seed=args.seed, size=args.size,
                           sites_per_well=args.sites)
    except ValueError as exc:
        ap.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
