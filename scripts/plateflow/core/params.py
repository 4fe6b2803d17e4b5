"""Parameters in canonical form, and a hash of the code a stage runs.

Snakemake reruns a job when the ``repr`` of one of its params changes. Comparing raw config
dicts would rerun jobs for cosmetic edits (key order, ``1`` written for ``1.0``), so the
workflow puts its config through :func:`canonical` once, after the schema has filled in every
default: keys sorted at every level, integers cast to float where the schema says ``number``.
:func:`code_hash` turns the source of the package folders a step runs into one short hash,
which the rules pass as a param, so editing a stage's code reruns that stage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

__all__ = ["canonical", "code_hash", "params_hash"]

PACKAGE = Path(__file__).resolve().parents[1]


def _types(schema: Mapping | None) -> set[str]:
    kind = (schema or {}).get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def canonical(value, schema: Mapping | None = None):
    """``value`` with sorted keys at every level and numbers typed as ``schema`` says.

    Parameters
    ----------
    value : any JSON-like value
    schema : mapping, optional
        The JSON schema of ``value`` (``properties``, ``additionalProperties``, ``items``
        are followed); without it only the keys are sorted.
    """
    types = _types(schema)
    if isinstance(value, Mapping):
        props = (schema or {}).get("properties", {})
        extra = (schema or {}).get("additionalProperties")
        extra = extra if isinstance(extra, Mapping) else None
        return {k: canonical(value[k], props.get(k, extra))
                for k in sorted(value, key=lambda k: (str(type(k)), k))}
    if isinstance(value, (list, tuple)):
        items = (schema or {}).get("items")
        return [canonical(v, items if isinstance(items, Mapping) else None) for v in value]
    if (isinstance(value, int) and not isinstance(value, bool) and "number" in types
            and "integer" not in types):
        return float(value)
    return value


def params_hash(params: Mapping | None) -> str:
    """Short, stable hash of a parameter dict (canonical JSON, sorted keys): 16 hex digits."""
    text = json.dumps(params or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@cache
def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    paths = [folder] if folder.is_file() else sorted(folder.rglob("*.py"))
    for path in paths:
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def code_hash(parts: Iterable[str]) -> str:
    """One short hash of the package's source behind a step.

    Parameters
    ----------
    parts : iterable of str
        Subpackages or modules of ``plateflow`` (``"qc"``, ``"core"``, ``"__init__.py"``).
    """
    digest = hashlib.sha256()
    for part in sorted(set(parts)):
        digest.update(_folder_digest(PACKAGE / part).encode())
    return digest.hexdigest()[:16]
