# plateflow: high-content screening images -> per-cell, per-well, per-plate and experiment profiles.
# This file only sets the config, includes the stages and names the final targets.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/example.smk"
include: "workflow/rules/sheets.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_outputs,
    default_target: True
