rule aggregate_well:
    input:
        features=get_well_feature_tables,
    output:
        table="results/wells/{plate}/{well}.parquet",
    log:
        "logs/aggregate_well/{plate}/{well}.log",
    params:
        aggregate=config["aggregate"],
        platemap=get_platemap_row,
        channels=CHANNELS,
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/aggregate.yaml"
    script:
        "../../scripts/aggregate_well.py"


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
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/aggregate.yaml"
    script:
        "../../scripts/merge_experiment.py"
