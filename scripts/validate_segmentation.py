"""Snakemake entry script of rule validate_segmentation: a plate's segmentation accuracy."""

from plateflow.core.logs import logged_step
from plateflow.segmentation.validation import validate_segmentation

with logged_step(snakemake.log[0], "validate_segmentation"):  # noqa: F821
    validate_segmentation(
        plate=snakemake.wildcards.plate,  # noqa: F821
        sites=snakemake.params.sites,  # noqa: F821
        params={"sites": snakemake.params.sites},  # noqa: F821
        output=snakemake.output.table,  # noqa: F821
    )
