"""Snakemake entry script of rule aggregate_wells: the profiles of a batch's wells."""

from plateflow.core.logs import logged_step
from plateflow.profiles.run import aggregate_wells

with logged_step(snakemake.log[0], "aggregate_wells"):  # noqa: F821
    aggregate_wells(
        sites=snakemake.params.sites,  # noqa: F821
        features_dir=snakemake.input.features,  # noqa: F821
        platemap=snakemake.params.platemap,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        params=snakemake.params.aggregate,  # noqa: F821
        output=snakemake.output.table,  # noqa: F821
        low_confidence=snakemake.params.low_confidence,  # noqa: F821
    )
