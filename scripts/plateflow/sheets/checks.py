"""Load-time checks: every mistake that can be seen before the first job is reported then.

The schema (``workflow/schemas/config.schema.yaml``) checks types, allowed values and unknown
keys; :func:`schema_problems` turns its errors into one line per offending key. The checks here
need the discovered plates too: channel names that a stage uses, the control wells that plate
normalisation needs, settings that contradict each other, and output folders that cannot be
written. :func:`config_warnings` lists settings that are allowed but probably not meant.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import jsonschema

from plateflow.core.contract import well_sort_key
from plateflow.sheets.discovery import Experiment
from plateflow.sheets.errors import DiscoveryError

__all__ = ["check_config", "config_warnings", "schema_problems"]

#: Config keys (section, key) whose value names one channel, or a list of channels.
CHANNEL_KEYS = (
    ("segmentation", "nuclei_channel"),
    ("segmentation", "cells_channel"),
    ("qc", "focus_channels"),
    ("qc", "saturation_channels"),
    ("qc", "foreground_channels"),
)
#: Segmentation methods that run a model (weights staged by rule stage_model) or a GPU.
MODEL_METHODS = frozenset({"cellpose"})


def uses_model(segmentation: Mapping) -> bool:
    """Whether the ``segmentation:`` section runs a model: its method, or a member of its
    ensemble, is in :data:`MODEL_METHODS`."""
    methods = {segmentation["method"]}
    if segmentation["method"] == "ensemble":
        methods |= {m.get("method") for m in segmentation["ensemble"]["members"]
                    if isinstance(m, Mapping)}
    return bool(methods & MODEL_METHODS)


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _allowed(schema: Mapping) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind:
        kinds = [kind] if isinstance(kind, str) else kind
        return "of type " + " or ".join(map(str, kinds))
    return "as the schema describes"


def schema_problems(config: Mapping, schema: Mapping) -> list[str]:
    """One line per schema violation: the offending key, its value, and what is allowed."""
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        key = _key(error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            extra = sorted(set(error.instance) - set(allowed))
            problems.append(f"config '{key}': unknown key(s) {', '.join(map(repr, extra))}; "
                            f"allowed: {', '.join(allowed) or 'none'}")
        elif error.validator in ("enum", "type"):
            problems.append(f"config '{key}': {error.instance!r} is not allowed; it must be "
                            f"{_allowed(error.schema)}")
        else:
            problems.append(f"config '{key}': {error.message}")
    return problems


def _channel_problems(config: Mapping, channels: list[str]) -> list[str]:
    problems = []
    for section, key in CHANNEL_KEYS:
        value = config.get(section, {}).get(key)
        names = [] if value is None else [value] if isinstance(value, str) else list(value)
        unknown = [n for n in names if n not in channels]
        if unknown:
            problems.append(f"config '{section}.{key}': channel(s) {', '.join(map(repr, unknown))}"
                            f" are not in the channel map; allowed: {', '.join(channels)}")
    return problems


def _control_problems(config: Mapping, experiment: Experiment) -> list[str]:
    role = config["normalize"]["control_role"]
    problems = []
    for name, sheet in experiment.plates.items():
        imaged = set(sheet.wells)
        table = sheet.platemap
        controls = sorted(set(table.loc[table["Metadata_Role"] == role, "Metadata_Well"])
                          & imaged, key=well_sort_key)
        if not controls:
            problems.append(
                f"plate {name}: no imaged well has role '{role}', which 'normalize.control_role'"
                f" normalises against; give control wells that role in the platemap, or set "
                f"normalize.control_role to one of the roles present "
                f"({', '.join(sorted(set(table['Metadata_Role'])))})")
    return problems


def _contradictions(config: Mapping) -> list[str]:
    seg = config["segmentation"]
    problems = []
    if seg["cells_channel"] is not None and seg["cells_channel"] == seg["nuclei_channel"]:
        problems.append(f"config 'segmentation.cells_channel': '{seg['cells_channel']}' is also "
                        f"the nuclei channel; use a cytoplasm or membrane channel, or null to "
                        f"grow cells from the nuclei")
    model = seg["model"]
    if uses_model(seg) and not (model["name"] and model["sha256"]):
        problems.append(f"config 'segmentation.model': method '{seg['method']}' loads model "
                        "weights, but model.name and model.sha256 are not both set; set name "
                        "(a built-in model such as 'cpsam', or your weights' file name), source "
                        "(a local path or URL) and sha256, or copy the file to "
                        "<model_cache>/<name>")
    classical = seg["classical"]
    if (classical["nucleus_diameter_min"] is not None
            and classical["nucleus_diameter_max"] is not None
            and classical["nucleus_diameter_min"] >= classical["nucleus_diameter_max"]):
        problems.append("config 'segmentation.classical.nucleus_diameter_min' must be smaller "
                        f"than nucleus_diameter_max ({classical['nucleus_diameter_min']} >= "
                        f"{classical['nucleus_diameter_max']})")
    qc = config["qc"]
    if qc["focus_sigma_fine"] >= qc["focus_sigma_coarse"]:
        problems.append("config 'qc.focus_sigma_fine' must be smaller than focus_sigma_coarse "
                        f"({qc['focus_sigma_fine']} >= {qc['focus_sigma_coarse']})")
    return problems


def config_warnings(config: Mapping) -> list[str]:
    """Settings that are allowed but probably not meant: said when the workflow loads."""
    seg = config["segmentation"]
    warnings = []
    if seg["gpu"] and not uses_model(seg):
        warnings.append(f"config 'segmentation.gpu': true asks every segmentation job for a "
                        f"GPU, but method '{seg['method']}' does not use one")
    if uses_model(seg) and not seg["gpu"]:
        warnings.append(f"config 'segmentation.gpu': false, so method '{seg['method']}' runs on "
                        f"the CPU of each job, slowly (minutes per site); set it true on a "
                        f"cluster with GPUs")
    return warnings


def _writable(folder: Path) -> bool:
    """Whether ``folder`` can be written, or created under its nearest existing parent."""
    probe = folder.resolve()
    while not probe.exists():
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def _folder_problems(config: Mapping, base_dir: Path) -> list[str]:
    folders = {"results": base_dir / "results", "logs": base_dir / "logs"}
    if uses_model(config["segmentation"]):
        folders["model_cache"] = base_dir / config["model_cache"]
    return [f"output folder '{path}' ({what}) cannot be written: check its permissions"
            for what, path in folders.items() if not _writable(path)]


def check_config(config: Mapping, experiment: Experiment, *, base_dir: str | Path = ".") -> None:
    """Check a schema-valid config against the discovered plates.

    Raises
    ------
    DiscoveryError
        Listing every problem, each naming the config key and what is allowed.
    """
    problems = [
        *_channel_problems(config, experiment.channels),
        *_control_problems(config, experiment),
        *_contradictions(config),
        *_folder_problems(config, Path(base_dir)),
    ]
    if problems:
        raise DiscoveryError(f"{len(problems)} problem(s) in the config:\n  - "
                             + "\n  - ".join(problems[:20])
                             + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20
                                else ""))
