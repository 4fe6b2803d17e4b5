# Validation, discovery, wildcard constraints and input helpers. No rules here.
import functools
import math
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from plateflow.discovery import DiscoveryError, load_experiment  # noqa: E402
from plateflow.provenance import params_hash  # noqa: E402
from plateflow.synthetic import make_example_plate  # noqa: E402


validate(config, schema="../schemas/config.schema.yaml")


def _make_missing_example_plates():
    """Plates marked `example: true` are generated (once) when their platemap is missing."""
    for name, plate in config["plates"].items():
        if plate.get("example") and not Path(plate["platemap"]).exists():
            out_dir = Path(plate["platemap"]).parent
            make_example_plate(out_dir, plate=name, seed=plate.get("example_seed", 0))


_make_missing_example_plates()
try:
    EXPERIMENT = load_experiment(config, base_dir=".")
except DiscoveryError as err:
    raise WorkflowError(f"plateflow could not build the image sheet:\n{err}")

PLATES = list(EXPERIMENT.plates)
CHANNELS = EXPERIMENT.channels


#: Wells per per-image job: QC, correction, segmentation, features and well profiles run on
#: batches of neighbouring wells (plateflow.discovery.well_batch).
WELLS_PER_JOB = config["batching"]["wells_per_job"]


wildcard_constraints:
    plate=r"[A-Za-z0-9_.\-]+",
    batch=r"[A-Z]{1,2}\d{2}(-[A-Z]{1,2}\d{2})?",


# ----------------------------------------------------------------- per-batch helpers --
# Input functions run once per job when Snakemake plans the DAG (tens of thousands of calls
# for a screen), so each batch's lists are built once and cached.
@functools.cache
def _batch_info(plate, batch):
    try:
        sites = EXPERIMENT.plates[plate].batches(WELLS_PER_JOB)[batch]
    except KeyError:
        raise WorkflowError(f"plate {plate}: no imaged sites in batch {batch}")
    files = [f for s in sites for f in s.files.values()]
    ids = [f"{s.well}/{s.site}" for s in sites]
    return files, ids


def get_batch_files(wildcards):
    """The raw files of every site of a batch: site by site, in channel order."""
    return _batch_info(wildcards.plate, wildcards.batch)[0]


def get_batch_site_ids(wildcards):
    """The batch's sites as "well/site" strings (the order of get_batch_files)."""
    return _batch_info(wildcards.plate, wildcards.batch)[1]


def get_batch_platemap(wildcards):
    """well -> platemap row, for the wells of a batch."""
    sheet = EXPERIMENT.plates[wildcards.plate]
    wells = dict.fromkeys(s.split("/", 1)[0] for s in get_batch_site_ids(wildcards))
    return {well: sheet.platemap_row(well) for well in wells}


def batch_runtime(fixed, per_site):
    """SLURM runtime (minutes) of a batch job: grows with its sites and with each retry."""

    def runtime(wildcards, attempt):
        n_sites = len(_batch_info(wildcards.plate, wildcards.batch)[1])
        return math.ceil((fixed + per_site * n_sites) * attempt)

    return runtime


@functools.cache
def get_plate_batches(plate):
    return list(EXPERIMENT.plates[plate].batches(WELLS_PER_JOB))


def get_bit_depth(wildcards):
    return EXPERIMENT.plates[wildcards.plate].bit_depth


def get_plate_config(wildcards):
    return config["plates"][wildcards.plate]


def get_image_sheet_digest(wildcards):
    """Changes whenever a site or file of the plate is added, removed or renamed."""
    sheet = EXPERIMENT.plates[wildcards.plate]
    return params_hash([[s.well, s.site, list(s.files.values())] for s in sheet.sites])


def get_plate_qc_tables(wildcards):
    """The QC tables of every batch of a plate."""
    return [f"results/qc/{wildcards.plate}/batches/{b}.parquet"
            for b in get_plate_batches(wildcards.plate)]


def get_plate_well_tables(wildcards):
    """The well profiles of every batch of a plate."""
    return [f"results/wells/{wildcards.plate}/{b}.parquet"
            for b in get_plate_batches(wildcards.plate)]


#: Segmentation methods that load weights (staged by rule stage_model).
MODEL_METHODS = {"cellpose"}


def get_model_weights(wildcards):
    """The staged weights a segmentation job reads, if its method uses a model."""
    model = config["segmentation"]["model"]
    if config["segmentation"]["method"] in MODEL_METHODS and model["name"]:
        return [f"{config['model_cache']}/{model['name']}"]
    return []


def get_report_plates(wildcards):
    """What the QC report needs of each plate besides its QC table and flat-field."""
    return [
        {
            "name": name,
            "wells": sheet.wells,
            "site_files": {f"{s.well}/{s.site}": s.files for s in sheet.sites},
        }
        for name, sheet in EXPERIMENT.plates.items()
    ]


def get_final_outputs():
    return [
        "results/qc/report.html",
        "results/experiment/profiles.parquet",
        "results/experiment/profiles_normalized.parquet",
        *expand("results/sheets/{plate}.csv", plate=PLATES),
        *expand("results/qc/{plate}/reacquire.csv", plate=PLATES),
    ]
