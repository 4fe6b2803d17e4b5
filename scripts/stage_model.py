"""Snakemake entry script of localrule stage_model: verified model weights in the cache."""

from pathlib import Path

from plateflow.core.logs import logged_step
from plateflow.segmentation.weights import ModelStagingError, stage_weights

with logged_step(snakemake.log[0], "stage_model"):  # noqa: F821
    model = snakemake.params.model  # noqa: F821
    name = Path(snakemake.output.weights).name  # noqa: F821
    if model["name"] != name or not model["source"]:
        raise ModelStagingError(
            f"no weights configured for model '{name}': set segmentation.model.name, "
            ".source and .sha256"
        )
    stage_weights(model["source"], sha256=model["sha256"],
                  destination=snakemake.output.weights)  # noqa: F821
