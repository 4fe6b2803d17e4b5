rule segment:
    input:
        images="results/preprocessed/{plate}/{batch}",
        weights=get_model_weights,
    output:
        labels=directory("results/segmentation/{plate}/{batch}"),
    log:
        "logs/segment/{plate}/{batch}.log",
    benchmark:
        "benchmarks/segment/{plate}/{batch}.tsv"
    params:
        segmentation=config["segmentation"],
        sites=get_batch_site_ids,
        code=CODE["segmentation"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=batch_runtime(10, 1),
        gpu=1 if config["segmentation"]["gpu"] else 0,
    conda:
        "../../envs/segment.yaml"
    script:
        "../../scripts/segment.py"
