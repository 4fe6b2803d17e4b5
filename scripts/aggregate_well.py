"""Snakemake entry script of rule aggregate_well: one well's profile from its cells."""

from plateflow.logs import logged_step
from plateflow.steps import aggregate_well_profile

with logged_step(snakemake.log[0], "aggregate_well"):  # noqa: F821
    aggregate_well_profile(
        feature_tables=list(snakemake.input.features),  # noqa: F821
        channels=snakemake.params.channels,  # noqa: F821
        platemap_row=snakemake.params.platemap,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        well=snakemake.wildcards.well,  # noqa: F821
        params=snakemake.params.aggregate,  # noqa: F821
        output=snakemake.output.table,  # noqa: F821
    )
