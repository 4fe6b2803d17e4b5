localrules:
    stage_model,


# Runs on the submit host, which has the network; compute nodes read the verified cache.
rule stage_model:
    output:
        weights=f"{config['model_cache']}/{{model}}",
    log:
        "logs/stage_model/{model}.log",
    params:
        model=config["segmentation"]["model"],
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/stage_model.py"
