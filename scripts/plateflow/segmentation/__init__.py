"""Segmentation stage: nuclei, cells and cytoplasm label images of every corrected site.

Reads ``results/preprocessed/{plate}/{batch}/`` and writes ``results/segmentation/{plate}/{batch}/``
(see :mod:`plateflow.core.contract`); :func:`plateflow.segmentation.run.segment` is the batch job.

- :mod:`~plateflow.segmentation.base` — :class:`Segmentation` (the result), :class:`SiteImage`
  (a method's input), :class:`SegmentationMethod` and the registry of methods.
- :mod:`~plateflow.segmentation.classical` — the ``classical`` method, built from
  :mod:`~plateflow.segmentation.thresholds`, :mod:`~plateflow.segmentation.morphology`,
  :mod:`~plateflow.segmentation.nuclei` and :mod:`~plateflow.segmentation.cells`.
- :mod:`~plateflow.segmentation.weights` — staging model weights for offline compute nodes.
- :mod:`~plateflow.segmentation.run` — the batch job: reads corrected stacks, writes label stacks.

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
