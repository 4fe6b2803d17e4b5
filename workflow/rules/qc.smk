# Per-image rules run on batches of neighbouring wells (config `batching.wells_per_job`); each
# batch job loops over its sites and keeps one output per site (or one row per site).
# measure_qc lists no raw files as inputs (a screen has millions): its params carry the batch's
# files and a fingerprint of their size and mtime, so a replaced image reruns its batch.
rule measure_qc:
    output:
        table="results/qc/{plate}/batches/{batch}.parquet",
    log:
        "logs/measure_qc/{plate}/{batch}.log",
    benchmark:
        "benchmarks/measure_qc/{plate}/{batch}.tsv"
    params:
        qc=config["qc"],
        sites=get_batch_sites,
        fingerprint=get_batch_fingerprint,
        channels=get_channels,
        bit_depth=get_bit_depth,
        code=CODE["qc"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=batch_runtime(10, 0.5),
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/measure_qc.py"


rule collect_plate_qc:
    input:
        tables=get_plate_qc_tables,
    output:
        sites="results/qc/{plate}/sites.parquet",
        reacquire="results/qc/{plate}/reacquire.csv",
    log:
        "logs/collect_plate_qc/{plate}.log",
    params:
        qc_plate=config["qc_plate"],
        channels=get_channels,
        code=CODE["qc"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/collect_plate_qc.py"
