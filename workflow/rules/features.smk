rule extract_features:
    input:
        image="results/preprocessed/{plate}/{well}/s{site}.tiff",
        labels="results/segmentation/{plate}/{well}/s{site}.tiff",
    output:
        table="results/features/{plate}/{well}/s{site}.parquet",
    log:
        "logs/extract_features/{plate}/{well}/s{site}.log",
    benchmark:
        "benchmarks/extract_features/{plate}/{well}/s{site}.tsv"
    params:
        features=config["features"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/extract_features.py"
