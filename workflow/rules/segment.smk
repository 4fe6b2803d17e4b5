rule segment_site:
    input:
        image="results/preprocessed/{plate}/{well}/s{site}.tiff",
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
    conda:
        "../../envs/segment.yaml"
    script:
        "../../scripts/segment_site.py"
