"""Snakemake entry script of localrule stage_model: verified model weights in the cache."""

from plateflow.core.logs import logged_step
from plateflow.segmentation.weights import stage_model

with logged_step(snakemake.log[0], "stage_model"):  # noqa: F821
    stage_model(snakemake.params.model, snakemake.output.weights)  # noqa: F821
