"""Snakemake entry script of rule merge_experiment: every plate in one table."""

from plateflow.core.logs import logged_step
from plateflow.profiles.run import merge_experiment

with logged_step(snakemake.log[0], "merge_experiment"):  # noqa: F821
    merge_experiment(plate_tables=list(snakemake.input.profiles),  # noqa: F821
                     output=snakemake.output.profiles)  # noqa: F821
    merge_experiment(plate_tables=list(snakemake.input.normalized),  # noqa: F821
                     output=snakemake.output.normalized)  # noqa: F821
