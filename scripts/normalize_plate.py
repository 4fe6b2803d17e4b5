"""Snakemake entry script of rule normalize_plate: a plate's profiles against its controls."""

from plateflow.core.logs import logged_step
from plateflow.profiles.run import normalize_plate_profiles

with logged_step(snakemake.log[0], "normalize_plate"):  # noqa: F821
    normalize_plate_profiles(
        well_tables=list(snakemake.input.wells),  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        params=snakemake.params.normalize,  # noqa: F821
        out_profiles=snakemake.output.profiles,  # noqa: F821
        out_normalized=snakemake.output.normalized,  # noqa: F821
    )
