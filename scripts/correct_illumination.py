"""Snakemake entry script of rule correct_illumination: flat-field correction of a batch."""

from plateflow.core.logs import logged_step
from plateflow.illumination.run import correct_illumination

with logged_step(snakemake.log[0], "correct_illumination"):  # noqa: F821
    correct_illumination(
        sites=snakemake.params.sites,  # noqa: F821
        channels=snakemake.params.channels,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        flatfield=snakemake.input.flatfield,  # noqa: F821
        qc_table=snakemake.input.qc,  # noqa: F821
        params=snakemake.params.preprocess,  # noqa: F821
        bit_depth=snakemake.params.bit_depth,  # noqa: F821
        out_dir=snakemake.output.images,  # noqa: F821
    )
