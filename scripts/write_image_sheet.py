"""Snakemake entry script of rule write_image_sheet: the discovered image sheet of a plate."""

from plateflow.discovery import discover_plate
from plateflow.logs import logged_step

with logged_step(snakemake.log[0], "write_image_sheet"):  # noqa: F821
    sheet = discover_plate(
        snakemake.wildcards.plate,  # noqa: F821
        snakemake.params.plate,  # noqa: F821
        channel_map=snakemake.params.channels,  # noqa: F821
    )
    sheet.to_frame().to_csv(snakemake.output.sheet, index=False)  # noqa: F821
