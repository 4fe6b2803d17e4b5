"""The low floor every stage stands on, and that knows no stage.

- :mod:`plateflow.core.contract` — the file contract between stages: where a batch's per-site
  outputs live, how sites are named, the skipped-site placeholder, and the QC decisions a stage
  reads.
- :mod:`plateflow.core.stats` — robust statistics (MAD scale, pixel noise, block mean,
  corner/centre ratio).
- :mod:`plateflow.core.imageio` — raw images, the pipeline's image stacks, file hashes.
- :mod:`plateflow.core.provenance` — Parquet tables with provenance columns and metadata.
- :mod:`plateflow.core.params` — parameters in canonical form, and the code a stage runs.
- :mod:`plateflow.core.logs` — the entry scripts' logging.

Stages (``qc``, ``illumination``, ``segmentation``, ``features``, ``profiles``, ``report``)
import from here and never from each other.
"""
