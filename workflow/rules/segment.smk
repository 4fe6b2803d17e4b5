rule segment_site:
    input:
        image="results/preprocessed/{plate}/{well}/s{site}.tiff",
        weights=get_model_weights,
    output:
        labels="results/segmentation/{plate}/{well}/s{site}.tiff",
    log:
        "logs/segment_site/{plate}/{well}/s{site}.log",
    benchmark:
        "benchmarks/segment_site/{plate}/{well}/s{site}.tsv"
    params:
        segmentation=config["segmentation"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
        gpu=1 if config["segmentation"]["gpu"] else 0,
    conda:
        "../../envs/segment.yaml"
    script:
        "../../scripts/segment_site.py"
