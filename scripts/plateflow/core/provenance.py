"""Provenance: the columns every Parquet row carries, and the metadata every Parquet file carries.

Every row says which raw images it came from (sha256), which pipeline version and step made it,
a hash of that step's parameters, the segmentation method/model/weights where one was used, the
versions of the key packages, and a UTC timestamp. Each file also stores the step's full
parameters (and those of the upstream steps, its lineage) in the Parquet key-value metadata.
Provenance columns start with ``Metadata_`` so profiling tools treat them as metadata.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata as importlib_metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from plateflow import __version__
from plateflow.core.params import params_hash

__all__ = [
    "PROVENANCE_COLUMNS",
    "add_provenance",
    "combine_hashes",
    "params_hash",
    "read_file_metadata",
    "read_table",
    "software_versions",
    "without_provenance",
    "write_table",
]

PREFIX = "Metadata_Provenance_"
PROVENANCE_COLUMNS = [
    f"{PREFIX}ImageSHA256",
    f"{PREFIX}PipelineVersion",
    f"{PREFIX}Step",
    f"{PREFIX}ParamsHash",
    f"{PREFIX}SegmentationMethod",
    f"{PREFIX}Model",
    f"{PREFIX}WeightsSHA256",
    f"{PREFIX}Lineage",
    f"{PREFIX}Versions",
    f"{PREFIX}Timestamp",
]
#: Provenance columns whose values change from run to run by design.
VOLATILE_COLUMNS = [f"{PREFIX}Timestamp"]

_KEY_PACKAGES = (
    "numpy",
    "scipy",
    "scikit-image",
    "tifffile",
    "pandas",
    "pyarrow",
    "snakemake",
    "cellpose",
    "torch",
)


def combine_hashes(hashes: Iterable[str]) -> str:
    """One sha256 standing for a set of image hashes (order-independent)."""
    joined = "\n".join(sorted(hashes))
    return hashlib.sha256(joined.encode()).hexdigest()


@lru_cache(maxsize=1)
def software_versions() -> str:
    """JSON of the versions of plateflow, Python and the key packages that are installed."""
    versions = {"plateflow": __version__, "python": platform.python_version()}
    for name in _KEY_PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return json.dumps(versions, sort_keys=True)


def without_provenance(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without its provenance columns (before a step writes its own)."""
    return table.drop(columns=[c for c in PROVENANCE_COLUMNS if c in table.columns])


def add_provenance(
    table: pd.DataFrame,
    *,
    step: str,
    params: Mapping | None,
    image_sha256: str | pd.Series | None,
    lineage: Mapping[str, str] | None = None,
    segmentation: Mapping | None = None,
) -> pd.DataFrame:
    """Return a copy of ``table`` with the provenance columns filled.

    Parameters
    ----------
    table : DataFrame
    step : str
        Name of the rule that made the table.
    params : mapping
        Exactly the parameters that step used.
    image_sha256 : str or Series
        Raw-image hash of each row (a Series aligned with ``table``) or one for all rows.
    lineage : mapping of str to str, optional
        ``{upstream step: its params hash}`` for the steps this one depends on.
    segmentation : mapping, optional
        ``method``, ``model`` and ``weights_sha256`` of the segmentation behind the rows.
    """
    out = table.copy()
    segmentation = segmentation or {}
    chain = dict(lineage or {})
    chain[step] = params_hash(params)
    values = {
        "ImageSHA256": image_sha256,
        "PipelineVersion": __version__,
        "Step": step,
        "ParamsHash": chain[step],
        "SegmentationMethod": segmentation.get("method"),
        "Model": segmentation.get("model"),
        "WeightsSHA256": segmentation.get("weights_sha256"),
        "Lineage": json.dumps(chain, sort_keys=True),
        "Versions": software_versions(),
        "Timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for name, value in values.items():
        column = PREFIX + name
        if isinstance(value, pd.Series):
            out[column] = value.to_numpy()
        else:
            out[column] = pd.Series([value] * len(out), index=out.index, dtype="object")
    return out


def write_table(
    table: pd.DataFrame,
    path: str | Path,
    *,
    step: str,
    params: Mapping | None,
    lineage: Mapping[str, str] | None = None,
    notes: Mapping[str, str] | None = None,
) -> None:
    """Write a table as Parquet with the step's full parameters in the key-value metadata.

    ``notes`` are extra ``plateflow.<key>`` strings (e.g. ``skipped``: why a site has no rows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    chain = dict(lineage or {})
    chain[step] = params_hash(params)
    extra = {
        b"plateflow.step": step.encode(),
        b"plateflow.params": json.dumps(params or {}, sort_keys=True, default=str).encode(),
        b"plateflow.lineage": json.dumps(chain, sort_keys=True).encode(),
        b"plateflow.version": __version__.encode(),
        **{f"plateflow.{k}".encode(): str(v).encode() for k, v in (notes or {}).items()},
    }
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **extra})
    pq.write_table(arrow, path)


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet table written by :func:`write_table` (optionally only some columns)."""
    return pq.read_table(path, columns=columns).to_pandas()


def read_file_metadata(path: str | Path) -> dict:
    """The plateflow key-value metadata of a Parquet file: step, params, lineage, version."""
    raw = pq.read_schema(path).metadata or {}
    out = {}
    for key, value in raw.items():
        key = key.decode()
        if key.startswith("plateflow."):
            name = key.removeprefix("plateflow.")
            out[name] = json.loads(value) if name in ("params", "lineage") else value.decode()
    return out
