"""Platemaps: one row per well, its role (control or treatment) and its annotations."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from plateflow.sheets.errors import DiscoveryError
from plateflow.sheets.errors import listing as _listing
from plateflow.sheets.naming import normalize_well

__all__ = ["ROLES", "read_platemap"]

#: Canonical well roles, and the spellings accepted for them in platemaps.
ROLES = ("negative_control", "positive_control", "treatment")
_ROLE_ALIASES = {
    "negative_control": "negative_control",
    "negcon": "negative_control",
    "negative": "negative_control",
    "neg": "negative_control",
    "positive_control": "positive_control",
    "poscon": "positive_control",
    "positive": "positive_control",
    "pos": "positive_control",
    "treatment": "treatment",
    "trt": "treatment",
    "compound": "treatment",
}


def read_platemap(path: str | Path, *, plate: str) -> pd.DataFrame:
    """Read a platemap CSV: one row per well, a ``well`` and a ``role`` column, any others.

    Returns
    -------
    DataFrame
        ``Metadata_Well``, ``Metadata_Role`` and ``Metadata_<column>`` for every other column.
    """
    path = Path(path)
    if not path.is_file():
        raise DiscoveryError(f"plate {plate}: platemap '{path}' does not exist")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    renamed = {}
    for column in table.columns:
        bare = column.strip().removeprefix("Metadata_")
        renamed[column] = "Metadata_" + ("Well" if bare.lower() == "well" else
                                         "Role" if bare.lower() == "role" else bare)
    table = table.rename(columns=renamed)
    for needed in ("Metadata_Well", "Metadata_Role"):
        if needed not in table.columns:
            raise DiscoveryError(
                f"plate {plate}: platemap '{path}' has no '{needed.removeprefix('Metadata_').lower()}'"
                f" column (columns: {', '.join(map(str, table.columns))})"
            )
    problems = []
    wells = []
    for line, raw in enumerate(table["Metadata_Well"], start=2):
        try:
            wells.append(normalize_well(raw))
        except ValueError:
            problems.append(f"line {line}: '{raw}' is not a well name")
            wells.append(raw)
    table["Metadata_Well"] = wells
    roles = []
    for well, raw in zip(wells, table["Metadata_Role"]):
        role = _ROLE_ALIASES.get(raw.strip().lower())
        if role is None:
            problems.append(
                f"well {well}: role '{raw}' is not one of {', '.join(ROLES)} (or negcon/poscon/trt)"
            )
        roles.append(role)
    table["Metadata_Role"] = roles
    duplicated = sorted(set(table.loc[table["Metadata_Well"].duplicated(), "Metadata_Well"]))
    if duplicated:
        problems.append(f"wells listed more than once: {_listing(duplicated)}")
    if problems:
        raise DiscoveryError(
            f"plate {plate}: platemap '{path}' is invalid:\n  " + "\n  ".join(problems)
        )
    for column in table.columns:
        if column in ("Metadata_Well", "Metadata_Role"):
            continue
        numeric = pd.to_numeric(table[column].replace("", None), errors="coerce")
        if numeric.notna().sum() == (table[column] != "").sum() and numeric.notna().any():
            table[column] = numeric
    return table.reset_index(drop=True)
