"""The profiles stage: cells to well profiles, wells to normalised plate profiles, plates to
one experiment table.

Follows pycytominer's conventions so its tools run on our tables unchanged: metadata columns
start with ``Metadata_``, everything else is a feature, and the cell count of a well is
``Metadata_Object_Count``. We do not call pycytominer itself: its ``aggregate``/``normalize``
pull in a large dependency tree for two short, well-defined operations (a per-well median and a
robust z-score against the plate's negative controls), which are written and tested here.

- :mod:`~plateflow.profiles.wells` — :func:`aggregate_well`: one well's cells -> one row.
- :mod:`~plateflow.profiles.normalize` — :func:`normalize_plate` (against the control wells)
  and :func:`feature_columns_of`.
- :mod:`~plateflow.profiles.run` — the stage's I/O: ``aggregate_wells`` (rule
  ``aggregate_wells``, per batch), ``normalize_plate_profiles`` (rule ``normalize_plate``) and
  ``merge_experiment`` (rule ``merge_experiment``).
"""

from plateflow.profiles.normalize import feature_columns_of, normalize_plate
from plateflow.profiles.wells import aggregate_well

__all__ = ["aggregate_well", "feature_columns_of", "normalize_plate"]
