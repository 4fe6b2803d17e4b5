# Segmentation accuracy against hand-labelled masks, for the plates whose config names a
# ground-truth table (plates.<plate>.ground_truth): one job per plate.
rule validate_segmentation:
    input:
        unpack(get_validation_inputs),
    output:
        table="results/validation/{plate}/segmentation_accuracy.parquet",
    log:
        "logs/validate_segmentation/{plate}.log",
    params:
        sites=get_validation_sites,
        code=CODE["segmentation"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/validate_segmentation.py"
