"""Discovery: plate folders and platemaps -> a validated image sheet (one row per site).

Runs when the workflow loads, so a mistake in the plate folders fails in the first seconds with a
message that names the plate, well, site and file, rather than after thousands of jobs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from plateflow.core.contract import SHEET_FILE, well_batch, well_sort_key
from plateflow.sheets.errors import MAX_LISTED, DiscoveryError
from plateflow.sheets.errors import listing as _listing
from plateflow.sheets.naming import NamingScheme
from plateflow.sheets.platemap import ROLES, read_platemap

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
    _rows: dict[str, dict] | None = field(default=None, repr=False)

    def __post_init__(self):
        self._index = {(s.well, s.site): s for s in self.sites}
        self._by_well = {}
        for s in self.sites:
            self._by_well.setdefault(s.well, []).append(s)

    def site(self, well: str, site: str) -> Site:
        return self._index[(well, site)]

    @property
    def wells(self) -> list[str]:
        return sorted(self._by_well, key=well_sort_key)

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

    def batch_fingerprint(self, batch: str, wells_per_job: int) -> str:
        """A hash of the path, size and modification time of every raw file of a batch.

        The rules pass it as a param instead of listing 1.7 M raw files of a screen as DAG
        inputs: a replaced, added or removed image changes it, and Snakemake reruns that
        batch's QC (and everything downstream) and no other batch.
        """
        digest = hashlib.sha256()
        for s in self.batches(wells_per_job).get(batch, []):
            for channel in self.channels:
                path = s.files[channel]
                try:
                    st = os.stat(path)
                    stamp = f"{st.st_size}:{st.st_mtime_ns}"
                except OSError:
                    stamp = "missing"
                digest.update(f"{s.well}/{s.site}/{channel}={path}|{stamp}\n".encode())
        return digest.hexdigest()[:16]

    def platemap_row(self, well: str) -> dict:
        """The platemap's row of a well, as plain Python values (built once per plate)."""
        if self._rows is None:
            self._rows = {
                str(row["Metadata_Well"]): {key: _plain(value) for key, value in row.items()}
                for row in self.platemap.to_dict("records")
            }
        return dict(self._rows[well])

    def to_frame(self) -> pd.DataFrame:
        """The image sheet: one row per site, ``Image_FileName_<channel>`` columns."""
        rows = [
            {
                "Metadata_Plate": s.plate,
                "Metadata_Well": s.well,
                "Metadata_Site": s.site,
                **{f"{SHEET_FILE}{name}": s.files[name] for name in self.channels},
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


def _site_sort_key(site: Site) -> tuple:
    number = int(site.site) if site.site.isdigit() else site.site
    return (well_sort_key(site.well), (0, number) if isinstance(number, int) else (1, number))


def _channel_map(raw: Mapping) -> dict[str, str]:
    """Normalise a channel map's keys the way file names are parsed ("01" and 1 -> "1")."""
    out = {}
    for key, name in raw.items():
        key = str(key)
        out[str(int(key)) if key.isdigit() else key] = str(name)
    return out


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

    # joined by hand: pathlib costs ~10 us a file, os.path.join ~2 us (a screen has 1.7 M)
    folder_name = os.path.join(str(folder), "")
    unmatched, unknown_channel = [], defaultdict(list)
    found: dict[tuple[str, str, str], list[tuple[str | None, str]]] = defaultdict(list)
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.is_file())
    for filename in names:
        _, dot, suffix = filename.rpartition(".")
        if not dot or f".{suffix.lower()}" not in extensions:
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
        found[key].append((parsed.plane, folder_name + filename))

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
                        "\n    ".join(incomplete[:MAX_LISTED]) +
                        (f"\n    ... and {len(incomplete) - MAX_LISTED} more"
                         if len(incomplete) > MAX_LISTED else ""))

    platemap = read_platemap(base_dir / plate_config["platemap"], plate=name)
    plate_wells = {w for w, _ in by_site}
    map_wells = set(platemap["Metadata_Well"])
    not_imaged = sorted(map_wells - plate_wells, key=well_sort_key)
    not_mapped = sorted(plate_wells - map_wells, key=well_sort_key)
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
