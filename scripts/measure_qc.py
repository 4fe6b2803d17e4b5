"""Snakemake entry script of rule measure_qc: QC metrics and status of a batch's sites."""

from plateflow.core.logs import logged_step
from plateflow.qc.run import measure_qc

with logged_step(snakemake.log[0], "measure_qc"):  # noqa: F821
    measure_qc(
        sites=snakemake.params.sites,  # noqa: F821
        channels=snakemake.params.channels,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        params=snakemake.params.qc,  # noqa: F821
        bit_depth=snakemake.params.bit_depth,  # noqa: F821
        output=snakemake.output.table,  # noqa: F821
    )
