"""Snakemake entry script of rule measure_site_qc: QC metrics and status of one site."""

from plateflow.logs import logged_step
from plateflow.steps import measure_site_qc

with logged_step(snakemake.log[0], "measure_site_qc"):  # noqa: F821
    measure_site_qc(
        files=snakemake.params.files,  # noqa: F821
        channels=snakemake.params.channels,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        well=snakemake.wildcards.well,  # noqa: F821
        site=snakemake.wildcards.site,  # noqa: F821
        params=snakemake.params.qc,  # noqa: F821
        bit_depth=snakemake.params.bit_depth,  # noqa: F821
        output=snakemake.output.table,  # noqa: F821
    )
