rule extract_features:
    input:
        images="results/preprocessed/{plate}/{batch}",
        labels="results/segmentation/{plate}/{batch}",
    output:
        tables=directory("results/features/{plate}/{batch}"),
    log:
        "logs/extract_features/{plate}/{batch}.log",
    benchmark:
        "benchmarks/extract_features/{plate}/{batch}.tsv"
    params:
        features=config["features"],
        sites=get_batch_site_ids,
        code=CODE["features"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=batch_runtime(10, 0.5),
    conda:
        "../../envs/features.yaml"
    script:
        "../../scripts/extract_features.py"
