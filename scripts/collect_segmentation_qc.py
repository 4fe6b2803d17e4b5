"""Snakemake entry script of rule collect_segmentation_qc: a plate's segmentation QC."""

from plateflow.core.logs import logged_step
from plateflow.segmentation.qc import collect_segmentation_qc

with logged_step(snakemake.log[0], "collect_segmentation_qc"):  # noqa: F821
    collect_segmentation_qc(
        label_dirs=list(snakemake.input.labels),  # noqa: F821
        qc_table=snakemake.input.qc,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        nuclei_channel=snakemake.params.nuclei_channel,  # noqa: F821
        params=snakemake.params.segmentation_qc,  # noqa: F821
        out_sites=snakemake.output.sites,  # noqa: F821
        out_reacquire=snakemake.output.reacquire,  # noqa: F821
    )
