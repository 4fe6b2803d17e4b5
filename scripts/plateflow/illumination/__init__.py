"""The illumination stage: a per-plate flat-field per channel, and its correction per site.

- :mod:`~plateflow.illumination.flatfield` — :func:`estimate_flatfield`, the illumination
  pattern of one channel from many sites of a plate (per-pixel statistic across sites,
  smoothing, upsampling), and its :data:`DEFAULT_PARAMS` (the schema's ``illumination:``
  defaults).
- The correction itself (raw / flat-field / detector maximum) is
  :func:`plateflow.core.correction.correct_site`: segmentation and features apply it when they
  read a ``reference`` preprocessed file, so it lives on the shared floor.
- :mod:`~plateflow.illumination.run` — the stage's I/O: ``estimate_plate_illumination`` (rule
  ``estimate_illumination``) and ``correct_illumination`` (the QC gate; rule
  ``correct_illumination``, whose ``preprocess.storage`` sets the corrected stacks' type).
"""

from plateflow.illumination.flatfield import DEFAULT_PARAMS, METHODS, estimate_flatfield

__all__ = ["DEFAULT_PARAMS", "METHODS", "estimate_flatfield"]
