"""A plate's ground-truth table (``plates.<plate>.ground_truth``), read and checked when the
workflow loads.

The table is a CSV with one row per hand-labelled site of the plate::

    plate,well,site,nuclei,cells
    EXAMPLE1,B02,1,truth/EXAMPLE1_B02_s1_nuclei.tif,truth/EXAMPLE1_B02_s1_cells.tif

``nuclei`` (required) and ``cells`` (optional column; an empty cell means no cell mask) are
label images, 0 = background, one integer per object, at the site's size; their paths are
relative to the CSV's folder (or absolute). The ``plate`` column is optional; where given it
must name the plate the table belongs to. Every well and site must be one the workflow
discovered, and every mask file must exist: a mistake fails in the first seconds, with a
message naming the row's plate, well, site and file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from plateflow.sheets.discovery import Experiment, PlateSheet
from plateflow.sheets.errors import DiscoveryError, listing
from plateflow.sheets.naming import normalize_well

__all__ = ["GROUND_TRUTH_COLUMNS", "read_experiment_ground_truth", "read_ground_truth"]

#: Columns of the table that :func:`read_ground_truth` returns (``cells`` may be None).
GROUND_TRUTH_COLUMNS = ["plate", "well", "site", "nuclei", "cells"]
_REQUIRED = ["well", "site", "nuclei"]


def _site(text: str) -> str:
    """``"01"`` -> ``"1"``, as the naming schemes read site numbers."""
    return str(int(text)) if text.isdigit() else text


def _mask_path(folder: str, value: str) -> str:
    """A mask path of the table, as the workflow names it (relative to the working directory
    unless absolute)."""
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(folder, value))


def _read_csv(key: str, path: str, base_dir: Path, hint: str) -> pd.DataFrame:
    full = base_dir / path
    if not full.is_file():
        raise DiscoveryError(f"{key}: the ground-truth table '{path}' does not exist{hint}")
    try:
        table = pd.read_csv(full, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DiscoveryError(f"{key}: cannot read '{path}' as a CSV table: {err}") from err
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise DiscoveryError(
            f"{key}: the table '{path}' lacks column(s) {', '.join(missing)}; it needs "
            f"well, site, nuclei (mask paths relative to its folder) and optionally cells and "
            f"plate; found {', '.join(table.columns) or 'no columns'}")
    if table.empty:
        raise DiscoveryError(f"{key}: the table '{path}' has no rows")
    for column in ("cells", "plate"):
        if column not in table.columns:
            table[column] = ""
    return table


def _check_row(row: dict, number: int, sheet: PlateSheet, folder: str,
               base_dir: Path) -> tuple[dict | None, list[str]]:
    """One table row as the returned record, or the problems with it."""
    plate = sheet.name
    named, well, site = (str(row[k]).strip() for k in ("plate", "well", "site"))
    if named and named != plate:
        problem = (f"row {number}: plate '{named}' is not this table's plate ({plate}); list "
                   f"each plate's sites in its own table")
        return None, [problem]
    try:
        well = normalize_well(well)
    except ValueError:
        return None, [f"row {number} (plate {plate}): {well!r} is not a well name like B03"]
    site = _site(site)
    where = f"plate {plate}, well {well}, site {site}"
    imaged = [s.site for s in sheet.sites_in_well(well)]
    if site not in imaged:
        found = f"sites {listing(imaged)}" if imaged else "no images"
        return None, [f"{where} (row {number}): no such site was imaged (well {well} has {found})"]
    record = {"plate": plate, "well": well, "site": site, "nuclei": None, "cells": None}
    problems = []
    for column in ("nuclei", "cells"):
        value = str(row[column]).strip()
        if not value:
            if column == "nuclei":
                problems.append(f"{where}: no nuclei mask is named (column 'nuclei' is empty)")
            continue
        path = _mask_path(folder, value)
        if not (base_dir / path).is_file():
            problems.append(f"{where}: the {column} mask '{path}' does not exist")
        record[column] = path
    return (None if problems else record), problems


def read_ground_truth(path: str | os.PathLike, sheet: PlateSheet, *,
                      base_dir: str | Path = ".", example: bool = False) -> pd.DataFrame:
    """Read and check one plate's ground-truth table.

    Parameters
    ----------
    path : path
        The CSV (relative to ``base_dir``).
    sheet : PlateSheet
        The discovered plate: every row must name one of its sites.
    base_dir : path
        The working directory that relative paths start from.
    example : bool
        Whether the plate is a generated example plate (said in the error when the table is
        missing: it was generated before the generator wrote one).

    Returns
    -------
    DataFrame
        One row per site, columns :data:`GROUND_TRUTH_COLUMNS`: ``well`` normalised (``B03``),
        ``site`` as the image sheet writes it, mask paths relative to ``base_dir`` (or
        absolute), ``cells`` None where no cell mask is given.

    Raises
    ------
    DiscoveryError
        Listing every problem: a missing or unreadable table, missing columns, rows naming
        another plate or a site that was not imaged, missing mask files, a site listed twice.
    """
    key = f"config 'plates.{sheet.name}.ground_truth'"
    hint = (f" (plate {sheet.name} is an example plate generated before its ground truth was;"
            f" remove its folder to generate it again)" if example else "")
    base_dir = Path(base_dir)
    path = str(path)
    table = _read_csv(key, path, base_dir, hint)
    folder = os.path.dirname(path)
    records, problems, seen = [], [], {}
    for number, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        record, row_problems = _check_row(row, number, sheet, folder, base_dir)
        problems += row_problems
        if record is None:
            continue
        site = (record["well"], record["site"])
        if site in seen:
            problems.append(f"plate {sheet.name}, well {site[0]}, site {site[1]}: listed twice "
                            f"(rows {seen[site]} and {number})")
            continue
        seen[site] = number
        records.append(record)
    if problems:
        raise DiscoveryError(
            f"{key} ('{path}'): {len(problems)} problem(s):\n  - "
            + "\n  - ".join(problems[:20])
            + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""))
    return pd.DataFrame(records, columns=GROUND_TRUTH_COLUMNS, dtype=object)


def read_experiment_ground_truth(config: Mapping, experiment: Experiment, *,
                                 base_dir: str | Path = ".") -> dict[str, pd.DataFrame]:
    """The ground-truth table of every plate that names one (:func:`read_ground_truth`).

    Returns
    -------
    dict
        plate -> its table, in config order; plates without ground truth are left out.

    Raises
    ------
    DiscoveryError
        Every plate's problems together.
    """
    tables, problems = {}, []
    for name, plate in config["plates"].items():
        path = plate.get("ground_truth")
        if path is None or name not in experiment.plates:
            continue
        try:
            tables[name] = read_ground_truth(path, experiment.plates[name], base_dir=base_dir,
                                             example=bool(plate.get("example")))
        except DiscoveryError as err:
            problems.append(str(err))
    if problems:
        raise DiscoveryError("\n".join(problems))
    return tables
