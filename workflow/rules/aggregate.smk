rule aggregate_wells:
    input:
        features="results/features/{plate}/{batch}",
    output:
        table="results/wells/{plate}/{batch}.parquet",
    log:
        "logs/aggregate_wells/{plate}/{batch}.log",
    params:
        aggregate=config["aggregate"],
        low_confidence=config["segmentation_qc"]["low_confidence"],
        platemap=get_batch_platemap,
        sites=get_batch_site_ids,
        code=CODE["profiles"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/aggregate.yaml"
    script:
        "../../scripts/aggregate_wells.py"


rule normalize_plate:
    input:
        wells=get_plate_well_tables,
    output:
        profiles="results/plates/{plate}/profiles.parquet",
        normalized="results/plates/{plate}/profiles_normalized.parquet",
    log:
        "logs/normalize_plate/{plate}.log",
    params:
        normalize=config["normalize"],
        code=CODE["profiles"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/aggregate.yaml"
    script:
        "../../scripts/normalize_plate.py"


rule merge_experiment:
    input:
        profiles=expand("results/plates/{plate}/profiles.parquet", plate=PLATES),
        normalized=expand("results/plates/{plate}/profiles_normalized.parquet", plate=PLATES),
    output:
        profiles="results/experiment/profiles.parquet",
        normalized="results/experiment/profiles_normalized.parquet",
    log:
        "logs/merge_experiment/experiment.log",
    params:
        code=CODE["profiles"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/aggregate.yaml"
    script:
        "../../scripts/merge_experiment.py"
