"""Segmentation stage: nuclei, cells and cytoplasm label images of every corrected site.

Reads ``results/preprocessed/{plate}/{batch}/`` and writes ``results/segmentation/{plate}/{batch}/``
(see :mod:`plateflow.core.contract`); :func:`plateflow.segmentation.run.segment` is the batch job.

- :mod:`~plateflow.segmentation.base` — :class:`Segmentation` (the result), :class:`SiteImage`
  (a method's input), :class:`SegmentationMethod` and the registry of methods.
- :mod:`~plateflow.segmentation.classical` — the ``classical`` method, built from
  :mod:`~plateflow.segmentation.thresholds`, :mod:`~plateflow.segmentation.scale` (the
  typical nucleus diameter), :mod:`~plateflow.segmentation.morphology`,
  :mod:`~plateflow.segmentation.nuclei`, :mod:`~plateflow.segmentation.cells` and
  :mod:`~plateflow.segmentation.propagation` (CellProfiler's Propagation), with per-object
  contrast from :mod:`~plateflow.segmentation.confidence`.
- :mod:`~plateflow.segmentation.cellpose_method` — the ``cellpose`` method (Cellpose 4; torch
  and cellpose are imported only when a model loads), its nuclei and cells paired by
  :mod:`~plateflow.segmentation.pairing`.
- :mod:`~plateflow.segmentation.ensemble` — the ``ensemble`` method: members or test-time
  flips merged by majority, with each object's agreement.
- :mod:`~plateflow.segmentation.weights` — staging and checking model weights for offline
  compute nodes.
- :mod:`~plateflow.segmentation.run` — the batch job: reads corrected stacks, writes label
  stacks, with :mod:`~plateflow.segmentation.statistics` (per-site statistics) recorded in each.
- :mod:`~plateflow.segmentation.qc` — the plate's segmentation QC: flags and re-acquisition.
- :mod:`~plateflow.segmentation.metrics` and :mod:`~plateflow.segmentation.validation` —
  accuracy against hand-labelled masks (rule ``validate_segmentation``).

**Adding a method.** Write one module in this folder with a :class:`SegmentationMethod`
subclass decorated ``@register("<name>")`` and its ``defaults``, and add the same section,
``segmentation.<name>``, to the config schema (with ``<name>`` in ``segmentation.method``'s
enum). Every module of this folder is imported here, so registration needs no other edit.
The method gets its own config section and the channel mapping; its ``load()`` runs once per
batch job (load a model there, and :meth:`~SegmentationMethod.record_weights`), its
``segment(site)`` once per site.
"""

import copy as _copy
import importlib as _importlib
import pkgutil as _pkgutil

from plateflow.segmentation.base import (
    COMMON_DEFAULTS,
    METHODS,
    Segmentation,
    SegmentationMethod,
    SiteImage,
    build_method,
    cytoplasm_from,
    get_method,
    register,
)

# Import every module of the stage, so that each method registers itself.
for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")

#: Defaults of the whole ``segmentation:`` config section (the schema holds the same).
DEFAULT_PARAMS: dict = {
    **_copy.deepcopy(COMMON_DEFAULTS),
    **{name: _copy.deepcopy(cls.defaults) for name, cls in METHODS.items()},
}

__all__ = [
    "DEFAULT_PARAMS",
    "METHODS",
    "Segmentation",
    "SegmentationMethod",
    "SiteImage",
    "build_method",
    "cytoplasm_from",
    "get_method",
    "register",
]
