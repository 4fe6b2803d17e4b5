rule measure_site_qc:
    input:
        get_site_files,
    output:
        table="results/qc/{plate}/{well}/s{site}.parquet",
    log:
        "logs/measure_site_qc/{plate}/{well}/s{site}.log",
    benchmark:
        "benchmarks/measure_site_qc/{plate}/{well}/s{site}.tsv"
    params:
        qc=config["qc"],
        files=get_site_file_map,
        channels=CHANNELS,
        bit_depth=get_bit_depth,
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/measure_site_qc.py"


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
        channels=CHANNELS,
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/collect_plate_qc.py"
