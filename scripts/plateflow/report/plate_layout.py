"""Plate geometry: well names to grid positions, and the smallest standard plate that holds them.

The report keeps its own small well parser (stages never import each other): it accepts
``"B3"``, ``"b03"`` and two-letter rows of 1536-well plates (``"AF48"``), and leaves any other
name off the plate maps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Geometry",
    "WellPlacement",
    "canonical_well",
    "choose_geometry",
    "parse_well",
    "place_wells",
    "row_label",
    "site_sort_key",
    "well_name",
]

#: Standard plates: (rows, columns, wells).
GEOMETRIES = ((8, 12, 96), (16, 24, 384), (32, 48, 1536))
_WELL_RE = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,2})$")


@dataclass(frozen=True)
class Geometry:
    """A standard plate: ``rows`` x ``cols`` = ``wells``."""

    rows: int
    cols: int
    wells: int


def parse_well(name: str) -> tuple[int, int] | None:
    """``"B03"`` -> ``(1, 2)`` (zero-based row, column); None when the name is not A01-style."""
    m = _WELL_RE.match(str(name).strip())
    if not m:
        return None
    letters, col = m.group(1).upper(), int(m.group(2))
    row = ord(letters[0]) - 65 if len(letters) == 1 else 26 + ord(letters[1]) - 65
    if len(letters) == 2 and letters[0] != "A":
        return None
    if col < 1:
        return None
    return row, col - 1


def row_label(row: int) -> str:
    """Zero-based row -> ``"A"`` ... ``"Z"``, ``"AA"`` ... ``"AF"``."""
    return chr(65 + row) if row < 26 else "A" + chr(65 + row - 26)


def well_name(row: int, col: int) -> str:
    """Zero-based (row, column) -> ``"B03"``."""
    return f"{row_label(row)}{col + 1:02d}"


def canonical_well(name: object) -> str:
    """``"b3"`` -> ``"B03"``; names not like a well are returned unchanged."""
    pos = parse_well(str(name))
    return str(name) if pos is None else well_name(*pos)


def choose_geometry(positions: Sequence[tuple[int, int]]) -> Geometry:
    """Smallest standard plate (96, 384, 1536 wells) that holds every (row, column) position.

    Raises
    ------
    ValueError
        When a position lies off a 1536-well plate.
    """
    for rows, cols, n in GEOMETRIES:
        if all(r < rows and c < cols for r, c in positions):
            return Geometry(rows, cols, n)
    far = max(positions, key=lambda p: p[0] * 100 + p[1])
    raise ValueError(
        f"well {well_name(*far)} does not fit on a 1536-well plate (32 rows x 48 columns)"
    )


@dataclass
class WellPlacement:
    """Where a plate's wells sit on its plate map."""

    positions: dict[str, tuple[int, int]]  # well -> (row, column)
    at: dict[tuple[int, int], str]  # (row, column) -> well
    unplaced: list[str]  # names not like a well, left off the maps
    geometry: Geometry | None  # None when no well could be placed


def place_wells(wells: Iterable[str]) -> WellPlacement:
    """Place canonical well names (:func:`canonical_well`) on the smallest plate that holds them."""
    positions: dict[str, tuple[int, int]] = {}
    at: dict[tuple[int, int], str] = {}
    unplaced: list[str] = []
    for well in wells:
        pos = parse_well(well)
        if pos is None:
            unplaced.append(well)
        else:
            positions[well] = pos
            at[pos] = well
    geometry = choose_geometry(list(positions.values())) if positions else None
    return WellPlacement(positions, at, unplaced, geometry)


def site_sort_key(site: object) -> tuple:
    """Sites in numeric order (``"2"`` before ``"10"``), names that are not numbers after."""
    s = str(site)
    return (0, int(s), s) if s.isdigit() else (1, 0, s)
