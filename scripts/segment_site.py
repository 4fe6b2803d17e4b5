"""Snakemake entry script of rule segment_site: nuclei, cells and cytoplasm of one site."""

from plateflow.logs import logged_step
from plateflow.steps import segment_site

with logged_step(snakemake.log[0], "segment_site"):  # noqa: F821
    segment_site(
        preprocessed=snakemake.input.image,  # noqa: F821
        params=snakemake.params.segmentation,  # noqa: F821
        output=snakemake.output.labels,  # noqa: F821
    )
