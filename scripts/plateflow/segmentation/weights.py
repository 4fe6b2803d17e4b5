"""Staging model weights for offline compute nodes.

Compute nodes often have no internet. Weights are therefore staged once, on the submit host,
by a Snakemake ``localrule`` into a cache folder that the segmentation jobs read. A source is a
local file or an http(s) URL; the staged file must match the configured sha256, and an offline
host without the file fails with a message that says where to put it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from plateflow.core.imageio import sha256_file

logger = logging.getLogger(__name__)

__all__ = ["ModelStagingError", "stage_weights"]


class ModelStagingError(RuntimeError):
    """Weights could not be staged: missing, unreachable or with the wrong hash."""


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _check(path: Path, sha256: str, *, what: str) -> None:
    found = sha256_file(path)
    if found != sha256.lower():
        raise ModelStagingError(
            f"{what} '{path}' has sha256 {found}, expected {sha256.lower()}: a different or "
            "corrupt file; fix segmentation.model.sha256 or the file"
        )


def stage_weights(
    source: str, *, sha256: str, destination: str | Path, timeout: float = 60.0
) -> Path:
    """Put the weights at ``destination``, verified against ``sha256``.

    Parameters
    ----------
    source : str
        A local path or an http(s) URL.
    sha256 : str
        Expected hex digest of the weights file.
    destination : path
        Where the jobs will read the weights (the cache).
    timeout : float
        Seconds before a download is given up.

    Raises
    ------
    ModelStagingError
        When the source is missing or unreachable, or the hash does not match.
    """
    if not sha256 or len(sha256) != 64:
        raise ModelStagingError("segmentation.model.sha256 must be the 64-hex-digit sha256 "
                                "of the weights file")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists():
        _check(destination, sha256, what="cached weights")
        logger.info("weights already staged at %s", destination)
        return destination
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False) as handle:
        partial = Path(handle.name)
    try:
        if _is_url(source):
            try:
                with (urllib.request.urlopen(source, timeout=timeout) as response,
                      open(partial, "wb") as out):
                    shutil.copyfileobj(response, out)
            except (urllib.error.URLError, OSError) as err:
                raise ModelStagingError(
                    f"cannot download weights from {source} ({err}); this host looks offline. "
                    f"Copy the file to '{destination}' (sha256 {sha256}) or set "
                    "segmentation.model.source to a local path"
                ) from err
        else:
            path = Path(source)
            if not path.is_file():
                raise ModelStagingError(
                    f"weights file '{source}' does not exist; set segmentation.model.source to "
                    "the weights' path or URL"
                )
            shutil.copyfile(path, partial)
        _check(partial, sha256, what=f"weights from {source}")
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("staged weights from %s to %s", source, destination)
    return destination
