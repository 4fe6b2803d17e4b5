localrules:
    write_image_sheet,


rule write_image_sheet:
    output:
        sheet="results/sheets/{plate}.csv",
    log:
        "logs/write_image_sheet/{plate}.log",
    params:
        plate=get_plate_config,
        channels=config["channels"],
        digest=get_image_sheet_digest,
        code=CODE["sheets"],
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/write_image_sheet.py"
