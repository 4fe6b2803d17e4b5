"""Rule write_image_sheet: the discovered image sheet of one plate, as a CSV."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from plateflow.sheets.discovery import discover_plate


def write_image_sheet(
    *, plate: str, plate_config: Mapping, channel_map: Mapping, output: str | Path
) -> int:
    """Discover one plate and write its image sheet; returns the number of sites."""
    sheet = discover_plate(plate, plate_config, channel_map=channel_map)
    table = sheet.to_frame()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False)
    return len(table)
