"""Snakemake entry script of rule collect_plate_qc: plate QC table and re-acquisition list."""

from plateflow.core.logs import logged_step
from plateflow.qc.run import collect_plate_qc

with logged_step(snakemake.log[0], "collect_plate_qc"):  # noqa: F821
    collect_plate_qc(
        qc_tables=list(snakemake.input.tables),  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        channels=snakemake.params.channels,  # noqa: F821
        params=snakemake.params.qc_plate,  # noqa: F821
        out_sites=snakemake.output.sites,  # noqa: F821
        out_reacquire=snakemake.output.reacquire,  # noqa: F821
    )
