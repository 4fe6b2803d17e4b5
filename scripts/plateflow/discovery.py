"""Discovery: plate folders and platemaps -> a validated image sheet (one row per site).

Runs when the workflow loads, so a mistake in the plate folders fails in the first seconds with a
message that names the plate, well, site and file, rather than after thousands of jobs.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from plateflow.naming import NamingScheme, normalize_well

logger = logging.getLogger(__name__)

__all__ = [
    "ROLES",
    "DiscoveryError",
    "Experiment",
    "PlateSheet",
    "Site",
    "discover_plate",
    "load_experiment",
    "read_platemap",
]

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
_MAX_LISTED = 5


class DiscoveryError(ValueError):
    """The plate folders, naming scheme or platemap do not describe a valid plate."""


@dataclass(frozen=True)
class Site:
    """One field of view: all its channel files."""

    plate: str
    well: str
    site: str
    files: dict[str, str]


@dataclass
class PlateSheet:
    """The validated image sheet and platemap of one plate."""

    name: str
    channels: list[str]
    sites: list[Site]
    platemap: pd.DataFrame
    bit_depth: int | None = None
    _index: dict[tuple[str, str], Site] = field(default_factory=dict, repr=False)

    _by_well: dict[str, list[Site]] = field(default_factory=dict, repr=False)
    _batches: dict[int, dict[str, list[Site]]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._index = {(s.well, s.site): s for s in self.sites}
        self._by_well = {}
        for s in self.sites:
            self._by_well.setdefault(s.well, []).append(s)

    def site(self, well: str, site: str) -> Site:
        return self._index[(well, site)]

    @property
    def wells(self) -> list[str]:
        return sorted(self._by_well, key=_well_sort_key)

    def sites_in_well(self, well: str) -> list[Site]:
        return list(self._by_well.get(well, []))

    def batches(self, wells_per_job: int) -> dict[str, list[Site]]:
        """The plate's sites grouped into per-image jobs: batch name -> its sites, in order.

        A batch is a block of ``wells_per_job`` neighbouring wells of one plate row (see
        :func:`well_batch`); it is fixed by the wells' positions, so adding a site or a well
        changes only the batch it falls in. Computed once per batch size.
        """
        if wells_per_job not in self._batches:
            batches: dict[str, list[Site]] = {}
            for s in self.sites:
                batches.setdefault(well_batch(s.well, wells_per_job), []).append(s)
            self._batches[wells_per_job] = batches
        return self._batches[wells_per_job]

    def platemap_row(self, well: str) -> dict:
        row = self.platemap.loc[self.platemap["Metadata_Well"] == well].iloc[0]
        return {key: _plain(value) for key, value in row.items()}

    def to_frame(self) -> pd.DataFrame:
        """The image sheet: one row per site, ``Image_FileName_<channel>`` columns."""
        rows = [
            {
                "Metadata_Plate": s.plate,
                "Metadata_Well": s.well,
                "Metadata_Site": s.site,
                **{f"Image_FileName_{name}": s.files[name] for name in self.channels},
            }
            for s in self.sites
        ]
        return pd.DataFrame(rows)


@dataclass
class Experiment:
    """All plates of a run; every plate has the same channel names in the same order."""

    plates: dict[str, PlateSheet]
    channels: list[str]

    def site(self, plate: str, well: str, site: str) -> Site:
        return self.plates[plate].site(well, site)


def _plain(value):
    """numpy scalars -> Python scalars, NaN -> None, so params stay JSON- and hash-friendly."""
    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def well_batch(well: str, wells_per_job: int) -> str:
    """Name of the per-image job (batch) a well belongs to.

    Wells are grouped in blocks of ``wells_per_job`` columns within their row, counted from
    column 1: with 4 wells per job, A01-A04, A05-A08, ... The name spans the block's nominal
    first and last well (``"A05-A08"``), whether or not those wells were imaged, so it never
    depends on which other wells exist. With 1 well per job the name is the well itself.
    """
    if wells_per_job < 1:
        raise ValueError(f"wells_per_job must be at least 1, got {wells_per_job}")
    match = re.match(r"^([A-Z]+)(\d+)$", well)
    if match is None:
        raise ValueError(f"Well name {well!r} is not a row letter and a column number")
    row, column = match.group(1), int(match.group(2))
    if wells_per_job == 1:
        return f"{row}{column:02d}"
    first = (column - 1) // wells_per_job * wells_per_job + 1
    return f"{row}{first:02d}-{row}{first + wells_per_job - 1:02d}"


def _well_sort_key(well: str) -> tuple[int, str, int]:
    match = re.match(r"^([A-Z]+)(\d+)$", well)
    return (len(match.group(1)), match.group(1), int(match.group(2)))


def _site_sort_key(site: Site) -> tuple:
    number = int(site.site) if site.site.isdigit() else site.site
    return (_well_sort_key(site.well), (0, number) if isinstance(number, int) else (1, number))


def _listing(items: list[str], total: int | None = None) -> str:
    total = len(items) if total is None else total
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" ... and {total - _MAX_LISTED} more" if total > _MAX_LISTED else "")


def _channel_map(raw: Mapping) -> dict[str, str]:
    """Normalise a channel map's keys the way file names are parsed ("01" and 1 -> "1")."""
    out = {}
    for key, name in raw.items():
        key = str(key)
        out[str(int(key)) if key.isdigit() else key] = str(name)
    return out


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


def discover_plate(
    name: str,
    plate_config: Mapping,
    *,
    channel_map: Mapping,
    base_dir: str | Path = ".",
) -> PlateSheet:
    """Find, parse and validate the images and platemap of one plate.

    Parameters
    ----------
    name : str
        The plate's name in the config.
    plate_config : mapping
        ``folder``, ``naming``, ``platemap``, optional ``channels``, ``plane``, ``bit_depth``,
        ``extensions`` and ``exclude``.
    channel_map : mapping
        Instrument channel -> biological name, used where the plate gives none.
    base_dir : path
        Relative folders are resolved against it.

    Raises
    ------
    DiscoveryError
        With every problem found, each naming plate, well, site and file.
    """
    base_dir = Path(base_dir)
    folder = base_dir / plate_config["folder"]
    if not folder.is_dir():
        raise DiscoveryError(f"plate {name}: image folder '{folder}' does not exist")
    scheme = NamingScheme(plate_config["naming"])
    channels = _channel_map(plate_config.get("channels") or channel_map)
    extensions = {e.lower() for e in plate_config.get("extensions", [".tif", ".tiff", ".png"])}
    exclude = re.compile(plate_config["exclude"]) if plate_config.get("exclude") else None
    plane = plate_config.get("plane")
    plane = None if plane is None else str(plane)

    folder_name = str(folder)  # os.path.join: pathlib costs ~10 us a file, 1 s a 10-plate screen
    unmatched, unknown_channel = [], defaultdict(list)
    found: dict[tuple[str, str, str], list[tuple[str | None, str]]] = defaultdict(list)
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.is_file())
    for filename in names:
        if os.path.splitext(filename)[1].lower() not in extensions:
            continue
        if exclude is not None and exclude.search(filename):
            continue
        parsed = scheme.parse(filename)
        if parsed is None:
            unmatched.append(filename)
            continue
        if plane is not None and parsed.plane is not None and int(parsed.plane) != int(plane):
            continue
        if parsed.channel not in channels:
            unknown_channel[parsed.channel].append(filename)
            continue
        key = (parsed.well, parsed.site, channels[parsed.channel])
        found[key].append((parsed.plane, os.path.join(folder_name, filename)))

    problems = []
    if unmatched:
        problems.append(
            f"{len(unmatched)} file(s) in '{folder}' match no naming scheme "
            f"('{plate_config['naming']}'): {_listing(unmatched)}"
        )
    for channel, files in sorted(unknown_channel.items()):
        problems.append(
            f"{len(files)} file(s) have channel '{channel}', which the channel map "
            f"{dict(channels)} does not name: {_listing(files)}"
        )
    if not found and not problems:
        problems.append(f"no images found in '{folder}' (extensions {sorted(extensions)})")

    by_site: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for (well, site, channel), hits in sorted(found.items()):
        if len(hits) > 1:
            planes = sorted({h[0] for h in hits if h[0] is not None})
            hint = (
                f" (planes {', '.join(planes)}: set 'plane' in the plate config to choose one)"
                if len(planes) > 1
                else ""
            )
            problems.append(
                f"well {well}, site {site}: channel '{channel}' appears {len(hits)} times"
                f"{hint}: {_listing([Path(h[1]).name for h in hits])}"
            )
            continue
        by_site[(well, site)][channel] = hits[0][1]

    expected = list(dict.fromkeys(channels.values()))
    sites = []
    incomplete = []
    for (well, site), files in by_site.items():
        missing = [c for c in expected if c not in files]
        if missing:
            some_file = Path(next(iter(files.values()))).name
            incomplete.append(
                f"well {well}, site {site}: missing channel(s) {', '.join(missing)} "
                f"(expected {', '.join(expected)}; found {', '.join(sorted(files))}, "
                f"e.g. '{some_file}')"
            )
            continue
        sites.append(Site(plate=name, well=well, site=site, files={c: files[c] for c in expected}))
    if incomplete:
        problems.append(f"{len(incomplete)} site(s) lack a channel:\n    " +
                        "\n    ".join(incomplete[:_MAX_LISTED]) +
                        (f"\n    ... and {len(incomplete) - _MAX_LISTED} more"
                         if len(incomplete) > _MAX_LISTED else ""))

    platemap = read_platemap(base_dir / plate_config["platemap"], plate=name)
    plate_wells = {w for w, _ in by_site}
    map_wells = set(platemap["Metadata_Well"])
    not_imaged = sorted(map_wells - plate_wells, key=_well_sort_key)
    not_mapped = sorted(plate_wells - map_wells, key=_well_sort_key)
    if not_imaged:
        problems.append(
            f"{len(not_imaged)} platemap well(s) have no images in '{folder}': {_listing(not_imaged)}"
        )
    if not_mapped:
        problems.append(
            f"{len(not_mapped)} imaged well(s) are missing from the platemap "
            f"'{plate_config['platemap']}': {_listing(not_mapped)}"
        )
    if problems:
        raise DiscoveryError(f"plate {name}:\n  - " + "\n  - ".join(problems))

    sites.sort(key=_site_sort_key)
    logger.info("plate %s: %d sites in %d wells, channels %s", name, len(sites),
                len(plate_wells), ", ".join(expected))
    return PlateSheet(
        name=name,
        channels=expected,
        sites=sites,
        platemap=platemap,
        bit_depth=plate_config.get("bit_depth"),
    )


def load_experiment(config: Mapping, *, base_dir: str | Path = ".") -> Experiment:
    """Discover every plate of a validated config; all plates must share their channel names."""
    plates = {}
    errors = []
    for name, plate_config in config["plates"].items():
        try:
            plates[name] = discover_plate(
                name, plate_config, channel_map=config.get("channels") or {}, base_dir=base_dir
            )
        except DiscoveryError as err:
            errors.append(str(err))
    if errors:
        raise DiscoveryError("\n".join(errors))
    channel_sets = {name: sheet.channels for name, sheet in plates.items()}
    first = next(iter(channel_sets.values()))
    differing = {n: c for n, c in channel_sets.items() if c != first}
    if differing:
        raise DiscoveryError(
            "all plates must have the same channel names in the same order: "
            + "; ".join(f"plate {n}: {', '.join(c)}" for n, c in channel_sets.items())
        )
    return Experiment(plates=plates, channels=list(first))
