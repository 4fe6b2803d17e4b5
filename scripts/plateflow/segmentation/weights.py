"""Staging model weights for offline compute nodes.

Compute nodes often have no internet. Weights are therefore staged once, on the submit host,
by a Snakemake ``localrule`` into a cache folder that the segmentation jobs read. A source is a
local file or an http(s) URL; the staged file must match the configured sha256, and an offline
host without the file fails with a message that says where to put it. A job checks the staged
file again before it loads it (:func:`check_staged`), since a file copied into the cache by hand
never went through staging.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from plateflow.core.imageio import sha256_file

logger = logging.getLogger(__name__)

__all__ = ["HOW_TO_STAGE", "ModelStagingError", "check_staged", "stage_model", "stage_weights"]


class ModelStagingError(RuntimeError):
    """Weights could not be staged: missing, unreachable or with the wrong hash."""


#: How to stage weights, said by every error about missing weights.
HOW_TO_STAGE = (
    "set segmentation.model.name (a built-in model name such as 'cpsam', or the file name of a "
    "fine-tuned model), .source (a local path or URL of the weights file) and .sha256 (its "
    "sha256), and let the workflow's stage_model rule copy it into model_cache on the submit "
    "host; or copy the file to <model_cache>/<name> yourself"
)


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


def check_staged(path: str | Path | None, *, found_sha256: str | None = None,
                 sha256: str | None = None) -> Path:
    """The staged weights file a job is about to load, checked first.

    Parameters
    ----------
    path : path or None
        The staged file (``<model_cache>/<name>``); None when no model is configured.
    found_sha256 : str, optional
        The file's sha256 if the caller has computed it already (else it is computed here).
    sha256 : str, optional
        The configured sha256 (``segmentation.model.sha256``); None skips the comparison.

    Raises
    ------
    ModelStagingError
        No path, no file there, or a hash that differs from the configured one; the message
        says how to stage the weights.
    """
    if path is None:
        raise ModelStagingError(f"no model weights were handed to the job: {HOW_TO_STAGE}")
    path = Path(path)
    if not path.is_file():
        raise ModelStagingError(f"no staged weights file at '{path}' (and jobs never download "
                                f"one): {HOW_TO_STAGE}")
    if sha256 is not None:
        found = found_sha256 or sha256_file(path)
        if found != sha256.lower():
            raise ModelStagingError(
                f"staged weights '{path}' have sha256 {found}, but segmentation.model.sha256 "
                f"is {sha256.lower()}: a different or corrupt file; fix the file or the hash"
            )
    return path


def stage_model(model: Mapping, destination: str | Path, *, timeout: float = 60.0) -> Path:
    """Stage the weights that ``segmentation.model`` configures to ``destination``
    (``<model_cache>/<name>``): the ``stage_model`` rule.

    Raises
    ------
    ModelStagingError
        The model is not configured for this file, or staging fails; the message says how to
        stage the weights by hand.
    """
    destination = Path(destination)
    if model.get("name") != destination.name:
        raise ModelStagingError(f"'{destination}' is not the configured model "
                                f"(segmentation.model.name is {model.get('name')!r})")
    if not model.get("sha256"):
        raise ModelStagingError(f"segmentation.model.sha256 is not set for '{destination.name}': "
                                f"{HOW_TO_STAGE}")
    if not model.get("source") and not destination.exists():
        raise ModelStagingError(
            f"no weights to stage for model '{destination.name}': segmentation.model.source is "
            f"not set and '{destination}' does not exist. Copy the weights file to "
            f"'{destination}', or set segmentation.model.source to its local path or URL "
            f"(jobs never download weights themselves)")
    return stage_weights(model.get("source") or str(destination), sha256=model["sha256"],
                         destination=destination, timeout=timeout)
