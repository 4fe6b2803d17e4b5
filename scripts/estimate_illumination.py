"""Snakemake entry script of rule estimate_illumination: a plate's flat-field per channel."""

from pathlib import Path

from plateflow.core.contract import prune_other_keys
from plateflow.core.logs import logged_step
from plateflow.illumination.run import estimate_plate_illumination

with logged_step(snakemake.log[0], "estimate_illumination") as logger:  # noqa: F821
    estimate_plate_illumination(
        channels=snakemake.params.channels,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        qc_sites_table=snakemake.input.qc,  # noqa: F821
        params=snakemake.params.illumination,  # noqa: F821
        out_image=snakemake.output.image,  # noqa: F821
        out_table=snakemake.output.table,  # noqa: F821
    )
    for old in prune_other_keys(Path(snakemake.output.image).parent):  # noqa: F821
        logger.info("removed the flat-field of an earlier configuration: %s", old)
