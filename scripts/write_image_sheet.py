"""Snakemake entry script of rule write_image_sheet: the discovered image sheet of a plate."""

from plateflow.core.logs import logged_step
from plateflow.sheets.run import write_image_sheet

with logged_step(snakemake.log[0], "write_image_sheet"):  # noqa: F821
    write_image_sheet(
        plate=snakemake.wildcards.plate,  # noqa: F821
        plate_config=snakemake.params.plate,  # noqa: F821
        channel_map=snakemake.params.channels,  # noqa: F821
        output=snakemake.output.sheet,  # noqa: F821
    )
