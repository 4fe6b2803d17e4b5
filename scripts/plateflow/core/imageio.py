"""Reading raw site images, writing and reading the pipeline's own image stacks, hashing files."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tifffile

logger = logging.getLogger(__name__)

__all__ = [
    "UnreadableImageError",
    "dtype_max",
    "read_image",
    "read_site",
    "read_stack",
    "read_stack_metadata",
    "sha256_file",
    "sha256_site",
    "write_stack",
]

_TIFF_SUFFIXES = {".tif", ".tiff"}


class UnreadableImageError(RuntimeError):
    """A raw image file could not be read; the message names the file and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image '{path}': {reason}")


def dtype_max(dtype: np.dtype, *, bit_depth: int | None = None) -> int:
    """Largest value a detector writes: ``2**bit_depth - 1`` if given, else the dtype's maximum."""
    if bit_depth is not None:
        return int(2**bit_depth - 1)
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui":
        raise ValueError(f"raw images must be integer (8- or 16-bit), not {dtype}")
    return int(np.iinfo(dtype).max)


def read_image(path: str | Path) -> np.ndarray:
    """Read one 2-D plane of one channel.

    Returns
    -------
    image : (Y, X) ndarray
        As stored (uint8 or uint16 for microscope exports).

    Raises
    ------
    UnreadableImageError
        When the file is missing, truncated, corrupt or not a single 2-D plane.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            image = tifffile.imread(path)
        else:
            import imageio.v3 as iio

            image = iio.imread(path)
    except Exception as err:  # any decoder failure means the same thing to the user
        raise UnreadableImageError(path, f"{type(err).__name__}: {err}") from err
    image = np.squeeze(np.asarray(image))
    if image.ndim != 2:
        raise UnreadableImageError(path, f"expected one 2-D plane, found shape {image.shape}")
    return image


def read_site(files: Mapping[str, str | Path], channels: Sequence[str]) -> np.ndarray:
    """Read every channel of one site into one stack.

    Parameters
    ----------
    files : mapping of channel name to path
    channels : sequence of str
        Channel order of the stack.

    Returns
    -------
    image : (C, Y, X) ndarray
    """
    planes = [read_image(files[name]) for name in channels]
    shapes = {plane.shape for plane in planes}
    dtypes = {plane.dtype for plane in planes}
    if len(shapes) > 1 or len(dtypes) > 1:
        detail = ", ".join(
            f"{name}: {plane.shape} {plane.dtype}" for name, plane in zip(channels, planes)
        )
        raise UnreadableImageError(files[channels[0]], f"channels differ in shape or type ({detail})")
    return np.stack(planes)


def sha256_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_site(files: Mapping[str, str | Path], channels: Sequence[str]) -> str:
    """One hash for a site: sha256 over ``channel=sha256(file)`` lines in channel order."""
    lines = "".join(f"{name}={sha256_file(files[name])}\n" for name in channels)
    return hashlib.sha256(lines.encode()).hexdigest()


def write_stack(
    path: str | Path, stack: np.ndarray, *, metadata: Mapping, predictor: bool = False
) -> None:
    """Write a (C, Y, X) stack as one zlib-compressed TIFF with JSON metadata in its description.

    ``predictor`` stores differences of neighbouring pixels (TIFF's floating-point predictor
    for float stacks, the horizontal one for integers), which smooth images compress better
    with: a corrected float16 site of the example plate takes 12 % less. Readers need
    ``imagecodecs`` for it; :func:`read_stack` reads either.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    description = json.dumps(dict(metadata), sort_keys=True, default=str)
    tifffile.imwrite(
        path,
        np.ascontiguousarray(stack),
        compression="zlib",
        compressionargs={"level": 1},
        predictor=bool(predictor),
        description=description,
        metadata=None,
        photometric="minisblack",
    )


def read_stack(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a stack written by :func:`write_stack`; returns ``(stack, metadata)``."""
    with tifffile.TiffFile(path) as tif:
        stack = tif.asarray()
        description = tif.pages[0].description
    metadata = json.loads(description) if description else {}
    if stack.ndim == 2:
        stack = stack[np.newaxis]
    return stack, metadata


def read_stack_metadata(path: str | Path) -> dict:
    """The metadata of a stack written by :func:`write_stack`, without reading its pixels."""
    with tifffile.TiffFile(path) as tif:
        description = tif.pages[0].description
    return json.loads(description) if description else {}
