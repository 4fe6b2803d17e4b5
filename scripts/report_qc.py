"""Snakemake entry script of rule report_qc: one HTML QC report for every plate."""

from plateflow.core.logs import logged_step
from plateflow.report.run import write_qc_report

with logged_step(snakemake.log[0], "report_qc"):  # noqa: F821
    plates = [
        {**plate, "qc_table": table, "flatfield": flatfield, "segmentation_qc": segmentation}
        for plate, table, flatfield, segmentation in zip(
            snakemake.params.plates,  # noqa: F821
            snakemake.input.tables,  # noqa: F821
            snakemake.input.flatfields,  # noqa: F821
            snakemake.input.segmentation_qc,  # noqa: F821
        )
    ]
    write_qc_report(plates=plates, output=snakemake.output[0])  # noqa: F821
