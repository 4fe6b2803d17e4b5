# The flat-field is estimated once per plate and key (common.smk, flatfield_key): the key
# hashes the illumination and QC parameters, channels, bit depth and code, so changing any of
# them makes a new flat-field and re-corrects every site in the same run. The plate QC table
# is an `ancient` input: a site added later is corrected with the existing (frozen) flat-field
# and no other batch is redone; `snakemake --forcerun estimate_illumination` re-estimates it
# from every site on purpose (and re-corrects every site).
rule estimate_illumination:
    input:
        qc=ancient("results/qc/{plate}/sites.parquet"),
    output:
        image="results/illumination/{plate}/{key}/flatfield.tiff",
        table="results/illumination/{plate}/{key}/flatfield.parquet",
    log:
        "logs/estimate_illumination/{plate}/{key}.log",
    benchmark:
        "benchmarks/estimate_illumination/{plate}/{key}.tsv"
    params:
        illumination=config["illumination"],
        channels=get_channels,
        code=CODE["illumination"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/estimate_illumination.py"


# The QC gate: a site that did not pass QC stops here (its output is a placeholder that says
# why), so it is never segmented. The batch's QC table holds each site's decision and files.
rule correct_illumination:
    input:
        qc="results/qc/{plate}/batches/{batch}.parquet",
        flatfield=get_flatfield,
    output:
        images=directory("results/preprocessed/{plate}/{batch}"),
    log:
        "logs/correct_illumination/{plate}/{batch}.log",
    benchmark:
        "benchmarks/correct_illumination/{plate}/{batch}.tsv"
    params:
        preprocess=config["preprocess"],
        sites=get_batch_site_ids,
        channels=get_channels,
        bit_depth=get_bit_depth,
        code=CODE["illumination"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1500 * attempt,
        runtime=batch_runtime(10, 0.5),
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/correct_illumination.py"
