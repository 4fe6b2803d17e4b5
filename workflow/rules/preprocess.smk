rule estimate_illumination:
    input:
        qc="results/qc/{plate}/sites.parquet",
        images=get_plate_site_files,
    output:
        image="results/illumination/{plate}/flatfield.tiff",
        table="results/illumination/{plate}/flatfield.parquet",
    log:
        "logs/estimate_illumination/{plate}.log",
    benchmark:
        "benchmarks/estimate_illumination/{plate}.tsv"
    params:
        illumination=config["illumination"],
        sites=get_plate_site_file_maps,
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
# says why), so it is never segmented. The flat-field is an `ancient` input: re-estimating it because a site was added to the plate
# does not re-correct the sites already done (each row records the flat-field hash it used).
# Changing the illumination parameters does re-correct every site, through `params`.
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
