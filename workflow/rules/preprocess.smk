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
# existing flat-field and the other sites are not redone (every row records the flat-field it
# used). Changing the illumination or QC parameters re-estimates it and re-corrects every site.
rule correct_illumination:
    input:
        images=get_site_files,
        qc="results/qc/{plate}/{well}/s{site}.parquet",
        flatfield=ancient("results/illumination/{plate}/flatfield.tiff"),
    output:
        image="results/preprocessed/{plate}/{well}/s{site}.tiff",
    log:
        "logs/correct_illumination/{plate}/{well}/s{site}.log",
    benchmark:
        "benchmarks/correct_illumination/{plate}/{well}/s{site}.tsv"
    params:
        preprocess=config["preprocess"],
        illumination=config["illumination"],
        files=get_site_file_map,
        channels=CHANNELS,
        bit_depth=get_bit_depth,
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1500 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/correct_illumination.py"
