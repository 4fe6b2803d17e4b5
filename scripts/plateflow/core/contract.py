"""The file contract between stages: every stage reads and writes only what is written here.

Results tree (one folder per stage; ``{batch}`` is a block of neighbouring wells of one plate
row, e.g. ``A01-A06``, see :func:`well_batch`)::

    results/sheets/{plate}.csv                      image sheet: one row per site, columns
                                                    Metadata_Plate/Well/Site, Image_FileName_<ch>
    results/qc/{plate}/batches/{batch}.parquet      QC: one row per site (QC_Status, files)
    results/qc/{plate}/sites.parquet                the plate's QC rows + plate-relative flags
    results/qc/{plate}/reacquire.csv                one row per failed check
    results/illumination/{plate}/{key}/flatfield.tiff   (C, Y, X) float32 flat-field, mean 1;
                                                    {key} hashes what it depends on
    results/preprocessed/{plate}/{batch}/{well}/s{site}.tiff   corrected (C, Y, X) stack
    results/segmentation/{plate}/{batch}/{well}/s{site}.tiff   labels: Nuclei, Cells, Cytoplasm
                                                    (metadata: segmentation.info, objects)
    results/segmentation/{plate}/sites.parquet      segmentation QC: one row per site (SegQC_*)
    results/segmentation/{plate}/reacquire.csv      one row per segmentation flag (QC's columns)
    results/validation/{plate}/segmentation_accuracy.parquet   per site and compartment: AP,
                                                    Dice, precision, recall against the masks
                                                    of plates.<plate>.ground_truth
    results/features/{plate}/{batch}/{well}/s{site}.parquet    one row per cell
    results/wells/{plate}/{batch}.parquet           one row per well
    results/plates/{plate}/profiles[_normalized].parquet
    results/experiment/profiles[_normalized].parquet
    results/qc/report.html                          the report (QC, segmentation QC, accuracy)

**Sites.** A batch's sites travel as ``"well/site"`` strings (``"B03/1"``): :func:`site_id`
makes one, :func:`parse_site_ids` reads them. Inside a batch folder each site has one file,
:func:`site_path`.

**Skipped sites.** A site the QC gate stops keeps a file at every per-site stage so that every
stage sees every site: a placeholder image stack (one 1x1 zero page per page the stage would
write) whose metadata carries ``skipped`` (why), and an empty feature table whose Parquet
metadata carries the same note. :func:`write_placeholder` writes one, :func:`skipped` reads the
reason back (None for a real result).

**QC decisions.** Stages after QC read the gate from a batch QC table through
:func:`read_qc_decisions`: status, reasons, the raw files QC measured and their hash.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from plateflow.core.imageio import write_stack
from plateflow.core.provenance import read_table

__all__ = [
    "BATCH_PATTERN",
    "KEY_PATTERN",
    "QC_PASS",
    "REACQUIRE_COLUMNS",
    "SITE_KEYS",
    "QCDecision",
    "new_site_path",
    "parse_site_ids",
    "prune_other_keys",
    "prune_stale_batches",
    "read_qc_decisions",
    "site_frame",
    "site_id",
    "site_path",
    "skipped",
    "well_batch",
    "well_sort_key",
    "write_placeholder",
]

#: The columns that name a site in every per-site and per-cell table.
SITE_KEYS = ["Metadata_Plate", "Metadata_Well", "Metadata_Site"]
#: ``QC_Status`` of a site that passed the QC gate (others: ``fail``, ``unreadable``).
QC_PASS = "pass"
#: Columns of a re-acquisition list (QC's and the segmentation QC's), one row per flag.
REACQUIRE_COLUMNS = ["plate", "well", "site", "channel", "metric", "value", "threshold",
                     "reason", "status", "image_sha256"]
#: The metadata key of a placeholder that says why a site was skipped.
SKIPPED = "skipped"
#: Prefix of the image sheet's raw-file columns, one per channel.
SHEET_FILE = "Image_FileName_"
_WELL = re.compile(r"^([A-Z]+)(\d+)$")
#: A batch name (:func:`well_batch`): ``B07`` or ``A01-A12``; the rules' wildcard constraint.
BATCH_PATTERN = r"[A-Z]{1,2}\d{2}(-[A-Z]{1,2}\d{2})?"
#: A flat-field key (a :func:`plateflow.core.params.params_hash`); the rules' constraint.
KEY_PATTERN = r"[0-9a-f]{16}"
_KEY = re.compile(KEY_PATTERN)
_BATCH = re.compile(BATCH_PATTERN)


def well_batch(well: str, wells_per_job: int) -> str:
    """Name of the per-image job (batch) a well belongs to.

    Wells are grouped in blocks of ``wells_per_job`` columns within their row, counted from
    column 1: with 4 wells per job, A01-A04, A05-A08, ... The name spans the block's nominal
    first and last well (``"A05-A08"``), whether or not those wells were imaged, so it never
    depends on which other wells exist. With 1 well per job the name is the well itself.
    """
    if wells_per_job < 1:
        raise ValueError(f"wells_per_job must be at least 1, got {wells_per_job}")
    match = _WELL.match(well)
    if match is None:
        raise ValueError(f"Well name {well!r} is not a row letter and a column number")
    row, column = match.group(1), int(match.group(2))
    if wells_per_job == 1:
        return f"{row}{column:02d}"
    first = (column - 1) // wells_per_job * wells_per_job + 1
    return f"{row}{first:02d}-{row}{first + wells_per_job - 1:02d}"


def well_sort_key(well: str) -> tuple[int, str, int]:
    """Plate order of a normalised well name: A01 < A02 < ... < P24 < AA01."""
    match = _WELL.match(well)
    if match is None:
        return (99, well, 0)
    return (len(match.group(1)), match.group(1), int(match.group(2)))


def site_id(well: str, site: str | int) -> str:
    """A site's id within its plate: ``"well/site"``."""
    return f"{well}/{site}"


def parse_site_ids(site_ids: Sequence[str]) -> list[tuple[str, str]]:
    """``(well, site)`` pairs from ``"well/site"`` strings."""
    pairs = []
    for item in site_ids:
        well, sep, site = str(item).partition("/")
        if not sep:
            raise ValueError(f"site id {item!r} is not 'well/site'")
        pairs.append((well, site))
    return pairs


def site_path(folder: str | Path, well: str, site: str, suffix: str) -> Path:
    """Where one site's output lives inside its batch's output folder."""
    return Path(folder) / well / f"s{site}{suffix}"


def new_site_path(folder: str | Path, well: str, site: str, suffix: str) -> Path:
    """:func:`site_path`, with its well folder created."""
    path = site_path(folder, well, site, suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def prune_other_keys(key_folder: str | Path) -> list[Path]:
    """Remove the sibling key folders of ``key_folder`` (older flat-fields of the same plate).

    A plate's flat-field lives in ``results/illumination/{plate}/{key}/``, where the key
    hashes everything it depends on; once a new key's flat-field is written, the old ones are
    no longer any job's input. Returns the folders removed.
    """
    key_folder = Path(key_folder)
    removed = []
    for sibling in key_folder.parent.iterdir():
        if sibling.is_dir() and sibling != key_folder and _KEY.fullmatch(sibling.name):
            shutil.rmtree(sibling)
            removed.append(sibling)
    return removed


#: The per-batch outputs of a plate, under the results folder.
BATCH_OUTPUTS = ("qc/{plate}/batches", "preprocessed/{plate}", "segmentation/{plate}",
                 "features/{plate}", "wells/{plate}")


def prune_stale_batches(results: str | Path, plate: str, batches) -> list[Path]:
    """Remove a plate's per-batch outputs whose batch no longer exists.

    Batches are named by their block of wells, so changing ``batching.wells_per_job`` (or
    removing every site of a block) leaves the old batches' outputs behind, where a glob over
    the results would count their cells twice. Returns what was removed.
    """
    keep = set(batches)
    removed = []
    for pattern in BATCH_OUTPUTS:
        folder = Path(results) / pattern.format(plate=plate)
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            name = entry.name.removesuffix(".parquet")
            if _BATCH.fullmatch(name) and name not in keep:
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
    return removed


def site_frame(plate: str, well: str, site: str, n: int = 1) -> pd.DataFrame:
    """``n`` rows of the site's key columns (:data:`SITE_KEYS`)."""
    return pd.DataFrame({"Metadata_Plate": [plate] * n, "Metadata_Well": [well] * n,
                         "Metadata_Site": [str(site)] * n})


def write_placeholder(
    path: str | Path, *, pages: int, dtype, reason: str, metadata: Mapping
) -> None:
    """The stand-in for a skipped site's image stack: ``pages`` 1x1 zero pages, and why."""
    write_stack(path, np.zeros((pages, 1, 1), dtype), metadata={**metadata, SKIPPED: reason})


def skipped(metadata: Mapping) -> str | None:
    """Why a site was skipped, from a stack's or a table's metadata; None if it was not."""
    return metadata.get(SKIPPED) or None


class QCDecision(NamedTuple):
    """What the QC gate decided about one site."""

    status: str
    reasons: str
    files: dict[str, str]  # channel -> the raw file QC measured
    image_sha256: str

    @property
    def passed(self) -> bool:
        return self.status == QC_PASS


def read_qc_decisions(
    qc_table: str | Path, channels: Sequence[str]
) -> dict[tuple[str, str], QCDecision]:
    """The QC gate of a QC table: ``(well, site) -> QCDecision``."""
    names = [f"Metadata_FileName_{c}" for c in channels]
    table = read_table(qc_table, columns=[*SITE_KEYS, "QC_Status", "QC_Reasons", *names,
                                          "Metadata_Provenance_ImageSHA256"])
    return {
        (str(r["Metadata_Well"]), str(r["Metadata_Site"])): QCDecision(
            str(r["QC_Status"]), str(r["QC_Reasons"]),
            {c: str(r[n]) for c, n in zip(channels, names)},
            str(r["Metadata_Provenance_ImageSHA256"]),
        )
        for r in table.to_dict("records")
    }
