# Validation, discovery, wildcard constraints and input helpers. No rules here.
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


wildcard_constraints:
    plate=r"[A-Za-z0-9_.\-]+",
    well=r"[A-Z]{1,2}\d{2}",
    site=r"[A-Za-z0-9]+",


# ------------------------------------------------------------------ per-site helpers --
def get_site_file_map(wildcards):
    """Channel name -> raw file of one site."""
    return EXPERIMENT.site(wildcards.plate, wildcards.well, wildcards.site).files


def get_site_files(wildcards):
    """The raw files of one site, in channel order."""
    return list(get_site_file_map(wildcards).values())


def get_bit_depth(wildcards):
    return EXPERIMENT.plates[wildcards.plate].bit_depth


def get_plate_config(wildcards):
    return config["plates"][wildcards.plate]


def get_image_sheet_digest(wildcards):
    """Changes whenever a site or file of the plate is added, removed or renamed."""
    sheet = EXPERIMENT.plates[wildcards.plate]
    return params_hash([[s.well, s.site, list(s.files.values())] for s in sheet.sites])


def get_plate_qc_tables(wildcards):
    """Every site's QC table of a plate."""
    sheet = EXPERIMENT.plates[wildcards.plate]
    return [f"results/qc/{s.plate}/{s.well}/s{s.site}.parquet" for s in sheet.sites]


def get_well_feature_tables(wildcards):
    """Feature tables of every site of a well (empty for sites the QC gate stopped)."""
    sheet = EXPERIMENT.plates[wildcards.plate]
    return [
        f"results/features/{s.plate}/{s.well}/s{s.site}.parquet"
        for s in sheet.sites_in_well(wildcards.well)
    ]


def get_platemap_row(wildcards):
    return EXPERIMENT.plates[wildcards.plate].platemap_row(wildcards.well)


def get_plate_well_tables(wildcards):
    sheet = EXPERIMENT.plates[wildcards.plate]
    return [f"results/wells/{wildcards.plate}/{well}.parquet" for well in sheet.wells]


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
