"""Snakemake entry script of checkpoint generate_example_plate: the synthetic example plate.

The generator lives with the test helpers (tests/helpers/synthetic.py), not in the package.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "tests"))  # noqa: F821

from helpers.synthetic import make_example_plate

from plateflow.core.logs import logged_step

with logged_step(snakemake.log[0], "generate_example_plate"):  # noqa: F821
    make_example_plate(
        Path(snakemake.output.platemap).parent,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
    )
