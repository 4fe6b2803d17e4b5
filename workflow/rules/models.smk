localrules:
    stage_model,


# Runs on the submit host, which has the network; compute nodes read the verified cache.
# Staging checks the configured sha256; offline without a source it says where to copy the
# file. Segmentation jobs check the hash again and load the absolute path (their
# CELLPOSE_LOCAL_MODELS_PATH points at model_cache), so they never download.
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
