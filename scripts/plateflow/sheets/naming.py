"""File-naming schemes of microscope exports.

A naming scheme is a regular expression with named groups. It must name the well (``well``, or
``row`` and ``column``), the ``site`` and the ``channel``; ``plane`` and ``plate`` are optional.
Presets cover the exports labs meet most often; a plate config may give its own regex instead.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

__all__ = ["PRESETS", "ImageName", "NamingScheme", "normalize_well", "well_from_row_column"]

#: Regular expressions of real microscope exports, matched case-insensitively on the file name.
PRESETS: dict[str, str] = {
    # Cellomics / ImageXpress-style, as in CellProfiler's example data:
    # AS_09125_050116030001_D03f00d0.tif -> plate AS_09125_050116030001, well D03, field 0, channel 0
    "cellomics": r"^(?P<plate>.+)_(?P<well>[A-Pa-p]\d{2})f(?P<site>\d{2,})d(?P<channel>\d+)\.tiff?$",
    # MetaXpress: {plate}_{well}_s{site}_w{channel}.tif, where MetaXpress may append a 36-character
    # GUID after the channel number (...a01_s1_w1a571d43d-5554-47fd-bb54-5db68290e5a7.tif).
    "metaxpress": (
        r"^(?P<plate>.+?)_(?P<well>[A-Pa-p]\d{1,2})_s(?P<site>\d+)_w(?P<channel>\d+?)"
        r"(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})?"
        r"\.tiff?$"
    ),
    # Opera / Operetta (Harmony export): r01c01f01p01-ch1sk1fk1fl1.tiff
    "operetta": (
        r"^r(?P<row>\d{2})c(?P<column>\d{2})f(?P<site>\d{2,})p(?P<plane>\d{2})"
        r"-ch(?P<channel>\d+)sk\d+fk\d+fl\d+\.tiff?$"
    ),
}

_ROWS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_WELL_RE = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,3})$")


def well_from_row_column(row: int, column: int) -> str:
    """Well name ``A01`` from 1-based row and column numbers (row 1 = A)."""
    if not 1 <= row <= 32:
        raise ValueError(f"row number {row} is outside 1..32 (A..AF)")
    if column < 1:
        raise ValueError(f"column number {column} must be 1 or more")
    letters = _ROWS[row - 1] if row <= 26 else "A" + _ROWS[row - 27]
    return f"{letters}{column:02d}"


@lru_cache(maxsize=4096)
def normalize_well(well: str) -> str:
    """Canonical well name: upper-case row letter(s) and a two-digit column (``b7`` -> ``B07``)."""
    match = _WELL_RE.match(str(well).strip())
    if not match:
        raise ValueError(f"'{well}' is not a well name like A01 or B7")
    return f"{match.group(1).upper()}{int(match.group(2)):02d}"


class ImageName(NamedTuple):
    """What a file name says about the image in it (a tuple: a screen parses millions)."""

    well: str
    site: str
    channel: str
    plane: str | None = None
    plate: str | None = None


class NamingScheme:
    """A compiled naming scheme.

    Parameters
    ----------
    scheme : str
        A preset name (see :data:`PRESETS`) or a regular expression with named groups.
    """

    def __init__(self, scheme: str):
        self.name = scheme if scheme in PRESETS else "custom"
        pattern = PRESETS.get(scheme, scheme)
        try:
            self.regex = re.compile(pattern, re.IGNORECASE)
        except re.error as err:
            raise ValueError(f"naming scheme '{scheme}' is not a valid regular expression: {err}")
        groups = set(self.regex.groupindex)
        has_well = "well" in groups or {"row", "column"} <= groups
        missing = [g for g in ("site", "channel") if g not in groups]
        if not has_well:
            missing.insert(0, "well (or row and column)")
        if missing:
            raise ValueError(
                f"naming scheme '{scheme}' lacks the named group(s) {', '.join(missing)}; "
                f"presets are {', '.join(sorted(PRESETS))}"
            )

    def parse(self, filename: str) -> ImageName | None:
        """Parse a file name (no folder); ``None`` when it does not match the scheme."""
        match = self.regex.match(filename)
        if match is None:
            return None
        groups = match.groupdict()
        if groups.get("well") is not None:
            well = normalize_well(groups["well"])
        else:
            well = well_from_row_column(int(groups["row"]), int(groups["column"]))
        return ImageName(well, _number(groups["site"]), _number(groups["channel"]),
                         groups.get("plane"), groups.get("plate"))


@lru_cache(maxsize=4096)
def _number(text: str) -> str:
    """``"01"`` -> ``"1"``; text that is not a number stays as it is."""
    return str(int(text)) if text.isdigit() else text
