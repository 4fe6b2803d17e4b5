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


# The plate's segmentation QC reads only the label stacks' metadata (statistics recorded per site)
# and QC's object counts; it flags collapses and plate outliers for re-acquisition and the report.
rule collect_segmentation_qc:
    input:
        labels=get_plate_label_dirs,
        qc="results/qc/{plate}/sites.parquet",
    output:
        sites="results/segmentation/{plate}/sites.parquet",
        reacquire="results/segmentation/{plate}/reacquire.csv",
    log:
        "logs/collect_segmentation_qc/{plate}.log",
    params:
        segmentation_qc=config["segmentation_qc"],
        nuclei_channel=config["segmentation"]["nuclei_channel"],
        code=CODE["segmentation"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/collect_segmentation_qc.py"
