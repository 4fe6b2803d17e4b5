"""Snakemake entry script of rule correct_illumination: flat-field correction of one site."""

from plateflow.logs import logged_step
from plateflow.steps import correct_site_illumination

with logged_step(snakemake.log[0], "correct_illumination"):  # noqa: F821
    correct_site_illumination(
        files=snakemake.params.files,  # noqa: F821
        channels=snakemake.params.channels,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        well=snakemake.wildcards.well,  # noqa: F821
        site=snakemake.wildcards.site,  # noqa: F821
        flatfield=snakemake.input.flatfield,  # noqa: F821
        qc_table=snakemake.input.qc,  # noqa: F821
        params=snakemake.params.preprocess,  # noqa: F821
        bit_depth=snakemake.params.bit_depth,  # noqa: F821
        output=snakemake.output.image,  # noqa: F821
    )
