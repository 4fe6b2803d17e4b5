"""Features stage: one row per cell of every segmented site, CellProfiler-style columns.

Reads ``results/preprocessed/{plate}/{batch}/`` and ``results/segmentation/{plate}/{batch}/``
and writes ``results/features/{plate}/{batch}/`` (see :mod:`plateflow.core.contract`);
:func:`plateflow.features.run.extract_features` is the batch job.

- :mod:`~plateflow.features.registry` — the registry of feature families and what a family
  is given (:class:`~plateflow.features.registry.Objects`,
  :class:`~plateflow.features.registry.Images`).
- :mod:`~plateflow.features.shape` (``AreaShape``), :mod:`~plateflow.features.location`
  (``Location``), :mod:`~plateflow.features.intensity` (``Intensity``) — the families.
- :mod:`~plateflow.features.granularity` (``Granularity``), :mod:`~plateflow.features.radial`
  (``RadialDistribution``) — cp_measure's MeasureGranularity and
  MeasureObjectIntensityDistribution, vectorised over all objects.
- :mod:`~plateflow.features.correlation` (``Correlation``), :mod:`~plateflow.features.neighbors`
  (``Neighbors``) — CellProfiler's MeasureColocalization (Costes included) and
  MeasureObjectNeighbors, vectorised over all objects.
- :mod:`~plateflow.features.texture` (``Texture``) — Haralick's 13 co-occurrence features per
  channel, scale and direction (cp_measure's MeasureTexture), vectorised over all objects.
- :mod:`~plateflow.features.measure` — :func:`measure_objects`: every enabled family over the
  Nuclei, Cells and Cytoplasm labels; :func:`feature_columns`: the exact column list.
- :mod:`~plateflow.features.run` — the batch job.

**Adding a family.** Write one module in this folder with a function decorated
``@register_family("<CellProfiler family name>", columns=..., order=..., defaults=...)`` (see
:mod:`~plateflow.features.registry`), and add its section ``features.<name>`` to the config
schema (``enabled`` plus its options, ``additionalProperties: false``). Every module of this
folder is imported here, so registration needs no other edit.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from plateflow.features.measure import (
    COMPARTMENTS,
    OBJECT_NUMBER,
    SiteLabels,
    feature_columns,
    measure_objects,
)
from plateflow.features.registry import FAMILIES, default_params, register_family

# Import every module of the stage, so that each family registers itself.
for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")

#: Defaults of the whole ``features:`` config section (the schema holds the same).
DEFAULT_PARAMS: dict = default_params()

__all__ = [
    "COMPARTMENTS",
    "DEFAULT_PARAMS",
    "FAMILIES",
    "OBJECT_NUMBER",
    "SiteLabels",
    "feature_columns",
    "measure_objects",
    "register_family",
]
