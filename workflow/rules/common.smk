# Validation, discovery, load-time checks, wildcard constraints and input helpers. No rules.
#
# Rerun rules (README, "Reruns"): every job's params hold exactly what its result depends on,
# in canonical form (sorted keys, schema defaults filled in, numbers typed by the schema), plus
# a hash of the package code its step runs. Raw images are not DAG inputs (a screen has 1.7 M):
# a QC batch's params carry its sites' files and a fingerprint of their size and mtime, so a
# replaced image reruns its batch. The flat-field's path holds a key of everything that decides
# it except the set of sites, so changing any of that re-estimates it and re-corrects every
# site in the same invocation, while adding a site corrects it with the frozen flat-field.
import functools
import math
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from plateflow.core.contract import (  # noqa: E402
    BATCH_PATTERN,
    KEY_PATTERN,
    prune_stale_batches,
    site_id,
)
from plateflow.core.params import canonical, code_hash, params_hash  # noqa: E402
from plateflow.sheets.checks import (  # noqa: E402
    check_config,
    config_warnings,
    schema_problems,
    uses_model,
)
from plateflow.sheets.discovery import load_experiment  # noqa: E402
from plateflow.sheets.errors import DiscoveryError  # noqa: E402
from plateflow.sheets.validation import read_experiment_ground_truth  # noqa: E402
from plateflow.core.contract import site_path, well_batch  # noqa: E402

SCHEMA = yaml.safe_load((Path(workflow.basedir) / "workflow/schemas/config.schema.yaml").read_text())
_problems = schema_problems(config, SCHEMA)
if _problems:
    raise WorkflowError("plateflow: the config is invalid:\n  - " + "\n  - ".join(_problems))
validate(config, schema="../schemas/config.schema.yaml")  # fills in every default
_canonical = canonical(config, SCHEMA)
config.clear()
config.update(_canonical)
for _warning in config_warnings(config):
    logger.warning(f"plateflow: {_warning}")


#: The package code behind each step (see plateflow.core.params.code_hash).
CODE = {
    stage: code_hash(["__init__.py", "core", stage])
    for stage in ("sheets", "qc", "illumination", "segmentation", "features", "profiles",
                  "report")
}

#: Wells per per-image job: QC, correction, segmentation, features and well profiles run on
#: batches of neighbouring wells (plateflow.core.contract.well_batch).
WELLS_PER_JOB = config["batching"]["wells_per_job"]
PLATES = list(config["plates"])


wildcard_constraints:
    plate=r"[A-Za-z0-9_.\-]+",
    batch=BATCH_PATTERN,
    key=KEY_PATTERN,


# ------------------------------------------------------------- example plates and discovery --
#: Plates that the checkpoint generate_example_plate writes (config `example: true`).
EXAMPLE_PLATES = [name for name, p in config["plates"].items() if p["example"]]


def _check_example_paths():
    for name in EXAMPLE_PLATES:
        plate = config["plates"][name]
        expected = {"folder": f"resources/example/{name}/images",
                    "platemap": f"resources/example/{name}/platemap.csv"}
        wrong = {k: v for k, v in expected.items() if plate[k] != v}
        if wrong:
            raise WorkflowError(
                f"plate {name} is an example plate (example: true): set "
                + ", ".join(f"{k}: {v}" for k, v in wrong.items())
                + ", where rule generate_example_plate writes it")


_check_example_paths()


@functools.cache
def _discovered():
    try:
        found = load_experiment(config, base_dir=".")
        check_config(config, found, base_dir=".")
    except DiscoveryError as err:
        raise WorkflowError(f"plateflow cannot start: the plates or the config are wrong\n{err}")
    return found


def _missing_examples():
    return [n for n in EXAMPLE_PLATES if not Path(config["plates"][n]["platemap"]).exists()]


def experiment():
    """The discovered, checked plates; example plates are generated first (a checkpoint)."""
    for name in _missing_examples():
        checkpoints.generate_example_plate.get(plate=name)
    return _discovered()


if not _missing_examples():
    _discovered()  # discover and check every plate now: a mistake fails in the first seconds


# ---------------------------------------------------------------------- per-batch helpers --
# Input functions and params run once per job when Snakemake plans the DAG (tens of thousands
# of calls for a screen), so what they return is built once per batch and cached.
@functools.cache
def _batch_sites(plate, batch):
    try:
        return experiment().plates[plate].batches(WELLS_PER_JOB)[batch]
    except KeyError:
        raise WorkflowError(f"plate {plate}: no imaged sites in batch {batch}")


@functools.cache
def _batch_site_ids(plate, batch):
    return [site_id(s.well, s.site) for s in _batch_sites(plate, batch)]


def get_batch_sites(wildcards):
    """well -> site -> channel -> raw file, for the sites of a batch."""
    nested = {}
    for s in _batch_sites(wildcards.plate, wildcards.batch):
        nested.setdefault(s.well, {})[s.site] = dict(s.files)
    return nested


def get_batch_fingerprint(wildcards):
    """Path, size and mtime of every raw file of a batch, hashed: a replaced image reruns it."""
    sheet = experiment().plates[wildcards.plate]
    return sheet.batch_fingerprint(wildcards.batch, WELLS_PER_JOB)


def get_batch_site_ids(wildcards):
    """The batch's sites as "well/site" strings."""
    return _batch_site_ids(wildcards.plate, wildcards.batch)


def get_batch_platemap(wildcards):
    """well -> platemap row, for the wells of a batch."""
    sheet = experiment().plates[wildcards.plate]
    wells = dict.fromkeys(s.well for s in _batch_sites(wildcards.plate, wildcards.batch))
    return {well: sheet.platemap_row(well) for well in wells}


def batch_runtime(fixed, per_site):
    """SLURM runtime (minutes) of a batch job: grows with its sites and with each retry."""

    def runtime(wildcards, attempt):
        n_sites = len(_batch_sites(wildcards.plate, wildcards.batch))
        return math.ceil((fixed + per_site * n_sites) * attempt)

    return runtime


@functools.cache
def get_plate_batches(plate):
    return list(experiment().plates[plate].batches(WELLS_PER_JOB))


def get_channels(wildcards=None):
    return list(experiment().channels)


def get_bit_depth(wildcards):
    return config["plates"][wildcards.plate]["bit_depth"]


def get_plate_config(wildcards):
    return config["plates"][wildcards.plate]


def get_image_sheet_digest(wildcards):
    """Changes whenever a site or file of the plate is added, removed or renamed."""
    sheet = experiment().plates[wildcards.plate]
    return params_hash({"sites": [[s.well, s.site, list(s.files.values())] for s in sheet.sites]})


def get_plate_qc_tables(wildcards):
    """The QC tables of every batch of a plate."""
    return [f"results/qc/{wildcards.plate}/batches/{b}.parquet"
            for b in get_plate_batches(wildcards.plate)]


def get_plate_label_dirs(wildcards):
    """The label stack folders of every batch of a plate."""
    return [f"results/segmentation/{wildcards.plate}/{b}"
            for b in get_plate_batches(wildcards.plate)]


def get_plate_well_tables(wildcards):
    """The well profiles of every batch of a plate."""
    return [f"results/wells/{wildcards.plate}/{b}.parquet"
            for b in get_plate_batches(wildcards.plate)]


# ------------------------------------------------------------- segmentation accuracy --
@functools.cache
def ground_truth():
    """plate -> its checked ground-truth table (plates.<plate>.ground_truth), for the plates
    that name one."""
    try:
        return read_experiment_ground_truth(config, experiment(), base_dir=".")
    except DiscoveryError as err:
        raise WorkflowError(f"plateflow cannot start: a ground-truth table is wrong\n{err}")


def accuracy_table(plate):
    return f"results/validation/{plate}/segmentation_accuracy.parquet"


def get_accuracy_tables(wildcards=None):
    """The segmentation accuracy tables of the plates with ground truth."""
    return [accuracy_table(p) for p in ground_truth()]


@functools.cache
def _validation_sites(plate):
    return [{**row, "labels": str(site_path(
                f"results/segmentation/{plate}/{well_batch(row['well'], WELLS_PER_JOB)}",
                row["well"], row["site"], ".tiff"))}
            for row in ground_truth()[plate].to_dict("records")]


def get_validation_sites(wildcards):
    """The plate's ground-truth sites: well, site, masks and label stack."""
    return _validation_sites(wildcards.plate)


def get_validation_inputs(wildcards):
    """The label folders of the batches holding ground-truth sites, and the masks."""
    sites = _validation_sites(wildcards.plate)
    return {
        "labels": sorted({str(Path(s["labels"]).parent.parent) for s in sites}),
        "masks": [s[k] for s in sites for k in ("nuclei", "cells") if s[k]],
    }


if not _missing_examples():
    ground_truth()  # check the ground-truth tables now too


# ------------------------------------------------------------------------------ flat-field --
@functools.cache
def flatfield_key(plate):
    """Everything a plate's flat-field depends on except which sites it has, hashed.

    The QC gate decides which sites the flat-field is estimated from, so the QC parameters,
    channels, bit depth and QC code are part of the key besides the illumination parameters.
    """
    return params_hash({
        "illumination": config["illumination"],
        "qc": config["qc"],
        "channels": get_channels(),
        "bit_depth": config["plates"][plate]["bit_depth"],
        "code": [CODE["qc"], CODE["illumination"]],
    })


def flatfield_path(plate):
    return f"results/illumination/{plate}/{flatfield_key(plate)}/flatfield.tiff"


def get_flatfield(wildcards):
    return flatfield_path(wildcards.plate)


# ------------------------------------------------------------------------- models, report --
def get_model_weights(wildcards):
    """The staged weights a segmentation job reads, if its method uses a model."""
    model = config["segmentation"]["model"]
    if uses_model(config["segmentation"]) and model["name"]:
        return [f"{config['model_cache']}/{model['name']}"]
    return []


def get_report_plates(wildcards):
    """What the QC report needs of each plate besides its QC table and flat-field (the QC
    table names each site's raw files), and its segmentation accuracy table, if any."""
    return [{"name": name, "wells": sheet.wells,
             "accuracy": accuracy_table(name) if name in ground_truth() else None}
            for name, sheet in experiment().plates.items()]


def get_report_flatfields(wildcards):
    return [flatfield_path(p) for p in PLATES]


def get_final_outputs(wildcards):
    experiment()  # example plates first
    return [
        "results/qc/report.html",
        "results/experiment/profiles.parquet",
        "results/experiment/profiles_normalized.parquet",
        *expand("results/sheets/{plate}.csv", plate=PLATES),
        *expand("results/qc/{plate}/reacquire.csv", plate=PLATES),
        *get_accuracy_tables(),
        *expand("results/segmentation/{plate}/reacquire.csv", plate=PLATES),
    ]


# A finished run keeps only the current batches' outputs: after a change of
# batching.wells_per_job, the old batches' folders would otherwise stay in results/.
onsuccess:
    for plate in PLATES:
        for path in prune_stale_batches("results", plate, get_plate_batches(plate)):
            print(f"plateflow: removed {path}, an output of a batch that no longer exists")
