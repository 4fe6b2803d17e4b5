"""A site as segmentation and features see it: raw / flat-field / detector maximum, in [0, 1].

Dividing by the flat-field evens out the illumination; dividing by the image type's maximum
(not by each image's own range) keeps intensities comparable across sites and plates.

The illumination stage writes one preprocessed file per site
(``results/preprocessed/{plate}/{batch}/{well}/s{site}.tiff``) in one of three storages
(config ``preprocess.storage``):

- ``reference`` (default): no pixels, only what the correction needs: the raw files, their
  hash, the flat-field's path and hash, the detector maximum and the camera offset.
  :func:`read_preprocessed` applies :func:`correct_site` when it reads the file, so every
  reader gets exactly the float32 image, and the results tree holds no copy of the images.
- ``float32``: the corrected pixels (zlib): exact, about 1.5 x the raw images' size.
- ``float16``: the corrected pixels rounded to 11 significant bits (0.64 x the raw size);
  enough to move segmentation and some texture-like features by up to ~1 % (README).

:func:`read_preprocessed` reads all three (and skipped-site placeholders) as float32.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from plateflow.core.imageio import read_site, read_stack, sha256_file, sha256_site, write_stack

logger = logging.getLogger(__name__)

__all__ = ["STORAGES", "correct_site", "read_preprocessed", "write_reference"]

#: ``preprocess.storage`` values; the dtype the pixels are kept in (None: no pixels kept).
STORAGES = {"reference": None, "float32": np.float32, "float16": np.float16}


class PreprocessedChangedError(RuntimeError):
    """A preprocessed reference no longer matches the raw files or flat-field it names."""


def correct_site(
    image: np.ndarray,
    flatfields: np.ndarray | Sequence[np.ndarray],
    *,
    dtype_max: float,
    camera_offset: float = 0.0,
) -> np.ndarray:
    """Illumination-correct one site and scale it to [0, 1].

    Parameters
    ----------
    image : (C, Y, X) ndarray
        Raw site image (uint8/uint16).
    flatfields : (C, Y, X) ndarray or sequence of C (Y, X) ndarrays
        One flat-field per channel (mean 1), from
        :func:`plateflow.illumination.flatfield.estimate_flatfield`.
    dtype_max : float
        Largest value of the raw image type (65535 for uint16, 255 for uint8).
    camera_offset : float
        The camera's black level (ADU), subtracted first; use the value the flat-field was
        estimated with.

    Returns
    -------
    (C, Y, X) float32 ndarray
        ``clip((image - camera_offset) / flatfield / dtype_max, 0, 1)``: the raw intensity
        range is kept (no per-image stretch); pixels pushed above the type's maximum by the
        correction clip at 1.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(
            f"Illumination correction expects one site as (channels, height, width), got "
            f"shape {image.shape}"
        )
    flats = np.asarray(flatfields, dtype=np.float32)
    if flats.shape != image.shape:
        raise ValueError(
            f"The flat-fields have shape {flats.shape} but the site image has shape "
            f"{image.shape}: one flat-field per channel, same image size, is needed"
        )
    if dtype_max <= 0:
        raise ValueError(f"dtype_max must be positive, got {dtype_max}")
    out = image.astype(np.float32)
    if camera_offset:
        out -= np.float32(camera_offset)
    out /= flats
    out *= np.float32(1.0 / dtype_max)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _relative_to(path: str | Path, folder: Path) -> str:
    """A path as seen from ``folder``: results move together, so a reference stays valid."""
    return os.path.relpath(os.path.abspath(path), os.path.abspath(folder))


def write_reference(
    path: str | Path, *, files: Mapping[str, str], channels: Sequence[str], flatfield: str | Path,
    flatfield_sha256: str, dtype_max: float, camera_offset: float, metadata: Mapping,
) -> None:
    """Write a ``reference`` preprocessed file: what :func:`read_preprocessed` needs, no pixels.

    The flat-field (inside the results tree) and relative raw paths are kept relative to the
    file's own folder, so the reference reads the same from any working directory and after
    the results folder is moved with its images; absolute raw paths stay absolute.
    """
    folder = Path(path).parent
    kept = {c: str(files[c]) if os.path.isabs(files[c]) else _relative_to(files[c], folder)
            for c in channels}
    write_stack(path, np.zeros((len(channels), 1, 1), np.uint8), metadata={
        **metadata, "storage": "reference", "files": kept,
        "flatfield": _relative_to(flatfield, folder), "flatfield_sha256": flatfield_sha256,
        "dtype_max": float(dtype_max), "camera_offset": float(camera_offset),
    })


_FLATFIELDS: dict[tuple[str, str], np.ndarray] = {}


def _flatfield(path: str, sha256: str) -> np.ndarray:
    """A flat-field stack, checked against its hash; cached, as every site of a batch reads it."""
    key = (path, sha256)
    if key not in _FLATFIELDS:
        if not Path(path).is_file() or sha256_file(path) != sha256:
            raise PreprocessedChangedError(
                f"flat-field '{path}' is missing or changed since the site was corrected; "
                f"rerun the workflow so that correction and everything after it are redone")
        _FLATFIELDS.clear()
        _FLATFIELDS[key] = read_stack(path)[0]
    return _FLATFIELDS[key]


def read_preprocessed(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a preprocessed site, whatever its storage, as a float32 (C, Y, X) stack.

    A skipped site's placeholder comes back as it is (1x1 pages; see
    :func:`plateflow.core.contract.skipped`).

    Raises
    ------
    PreprocessedChangedError
        For a ``reference`` file whose raw images or flat-field changed since it was written.
    """
    stack, meta = read_stack(path)
    if meta.get("storage") != "reference" or meta.get("skipped"):
        return np.asarray(stack, dtype=np.float32), meta
    channels = meta["channels"]
    folder = Path(path).parent
    files = {c: str(folder / f) for c, f in meta["files"].items()}  # absolute paths stay
    if sha256_site(files, channels) != meta["image_sha256"]:
        raise PreprocessedChangedError(
            f"plate {meta['plate']}, well {meta['well']}, site {meta['site']}: its raw images "
            f"changed since QC ({', '.join(files.values())}); rerun the workflow")
    image = read_site(files, channels)
    fields = _flatfield(os.path.abspath(folder / meta["flatfield"]), meta["flatfield_sha256"])
    corrected = correct_site(image, fields, dtype_max=meta["dtype_max"],
                             camera_offset=meta["camera_offset"])
    return corrected, meta
