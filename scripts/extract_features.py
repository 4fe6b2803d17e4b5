"""Snakemake entry script of rule extract_features: per-cell features of a batch's sites."""

from plateflow.core.logs import logged_step
from plateflow.features.run import extract_features

with logged_step(snakemake.log[0], "extract_features"):  # noqa: F821
    extract_features(
        sites=snakemake.params.sites,  # noqa: F821
        preprocessed_dir=snakemake.input.images,  # noqa: F821
        labels_dir=snakemake.input.labels,  # noqa: F821
        params=snakemake.params.features,  # noqa: F821
        out_dir=snakemake.output.tables,  # noqa: F821
    )
