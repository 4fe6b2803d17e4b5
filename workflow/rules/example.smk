localrules:
    generate_example_plate,


# The synthetic example plate (config `example: true`): generated on the first run, by the
# generator the tests use (tests/helpers/synthetic.py). A checkpoint: the plate's sites are
# discovered once it exists.
checkpoint generate_example_plate:
    output:
        platemap="resources/example/{plate}/platemap.csv",
        images=directory("resources/example/{plate}/images"),
    log:
        "logs/generate_example_plate/{plate}.log",
    params:
        seed=lambda wildcards: config["plates"][wildcards.plate]["example_seed"],
    conda:
        "../../envs/io.yaml"
    script:
        "../../scripts/generate_example_plate.py"
