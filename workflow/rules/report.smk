rule report_qc:
    input:
        tables=expand("results/qc/{plate}/sites.parquet", plate=PLATES),
        flatfields=get_report_flatfields,
        accuracy=get_accuracy_tables,
        segmentation_qc=expand("results/segmentation/{plate}/sites.parquet", plate=PLATES),
    output:
        report("results/qc/report.html", caption="../report/qc.rst", category="QC"),
    log:
        "logs/report_qc/report.log",
    params:
        plates=get_report_plates,
        code=CODE["report"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/report_qc.py"
