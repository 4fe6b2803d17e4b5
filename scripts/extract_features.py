"""Snakemake entry script of rule extract_features: per-cell features of one site."""

from plateflow.logs import logged_step
from plateflow.steps import extract_site_features

with logged_step(snakemake.log[0], "extract_features"):  # noqa: F821
    extract_site_features(
        preprocessed=snakemake.input.image,  # noqa: F821
        labels=snakemake.input.labels,  # noqa: F821
        params=snakemake.params.features,  # noqa: F821
        output=snakemake.output.table,  # noqa: F821
    )
