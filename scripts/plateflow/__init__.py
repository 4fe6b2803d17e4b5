"""plateflow: high-content screening images to per-cell, per-well and per-experiment profiles.

The package holds all the logic; the Snakemake entry scripts beside it only unpack
``snakemake.input/output/params`` and call into it.
"""

__version__ = "0.1.0"
