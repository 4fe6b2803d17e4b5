"""Snakemake entry script of rule segment: nuclei, cells and cytoplasm of a batch's sites."""

from plateflow.core.logs import logged_step
from plateflow.segmentation.run import segment

with logged_step(snakemake.log[0], "segment"):  # noqa: F821
    segment(
        sites=snakemake.params.sites,  # noqa: F821
        preprocessed_dir=snakemake.input.images,  # noqa: F821
        params=snakemake.params.segmentation,  # noqa: F821
        out_dir=snakemake.output.labels,  # noqa: F821
        weights=snakemake.input.weights[0] if snakemake.input.weights else None,  # noqa: F821
    )
