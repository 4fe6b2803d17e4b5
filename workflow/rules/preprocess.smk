rule estimate_illumination:
    input:
        qc=ancient("results/qc/{plate}/sites.parquet"),
    output:
        image="results/illumination/{plate}/flatfield.tiff",
        table="results/illumination/{plate}/flatfield.parquet",
    log:
        "logs/estimate_illumination/{plate}.log",
    benchmark:
        "benchmarks/estimate_illumination/{plate}.tsv"
    params:
        illumination=config["illumination"],
        qc=config["qc"],
        channels=CHANNELS,
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/estimate_illumination.py"


# The QC gate: a site that did not pass QC stops here (its output is an empty placeholder that
# says why), so it is never segmented. The flat-field is estimated once per plate: it reads
# the plate QC table as an `ancient` input, so a site added later is corrected with the
# existing flat-field and the other batches are not redone (every image records the flat-field
# it used). Changing the illumination or QC parameters re-estimates it and re-corrects every
# site. Each batch also reads its own QC table: without that edge, Snakemake 9 does not
# schedule a batch whose only path to a rerunning job is the `ancient` one. The raw files are
# not listed again here: the QC table depends on them (a replaced image reruns QC, then this),
# and listing 17,280 files a plate twice doubles the planning time of a screen.
rule correct_illumination:
    input:
        qc="results/qc/{plate}/batches/{batch}.parquet",
        flatfield=ancient("results/illumination/{plate}/flatfield.tiff"),
    output:
        images=directory("results/preprocessed/{plate}/{batch}"),
    log:
        "logs/correct_illumination/{plate}/{batch}.log",
    benchmark:
        "benchmarks/correct_illumination/{plate}/{batch}.tsv"
    params:
        preprocess=config["preprocess"],
        illumination=config["illumination"],
        sites=get_batch_site_ids,
        channels=CHANNELS,
        bit_depth=get_bit_depth,
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1500 * attempt,
        runtime=batch_runtime(10, 0.5),
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/correct_illumination.py"
