"""What every segmentation method takes and returns, and the registry of methods.

A method is a class registered under the name that ``segmentation.method`` selects::

    @register("mymethod")
    class MyMethod(SegmentationMethod):
        defaults = {...}                 # its config section, ``segmentation.mymethod``

        def load(self):                  # once per batch job: load a model here
            self.record_weights(path, name="my-model")

        def segment(self, site: SiteImage) -> Segmentation:
            ...                          # once per site
            return self.result(nuclei, cells, info={...})

The batch job (:func:`plateflow.segmentation.run.segment`) builds the method once from the
config (:func:`build_method`), calls :meth:`~SegmentationMethod.load` once, before the first
site it segments, then :meth:`~SegmentationMethod.segment` per site. Every method returns a
:class:`Segmentation` with the same guarantees:

* ``nuclei``, ``cells``, ``cytoplasm`` are int32 ``(Y, X)`` label images, 0 = background;
* nuclei are labelled 1..N consecutively;
* cell ``i`` contains nucleus ``i`` (same label number), and there is no cell without a nucleus;
* ``cytoplasm`` is ``cells`` with the nucleus pixels set to 0, after the nucleus is optionally
  shrunk by a few pixels (same label numbers), see :func:`cytoplasm_from`;
* ``objects`` maps per-object column names (``<Compartment>_Segmentation_<Name>``, e.g.
  ``Nuclei_Segmentation_Confidence``) to float arrays of length N, entry ``i`` for label
  ``i + 1``; the feature step joins them to the object's feature row;
* ``info`` is a flat mapping of per-site scalars (str -> int, float, str or None): thresholds,
  the estimated diameter, how many objects each domain rule removed; the segmentation QC
  gathers them.

A model-based method receives the staged weights file as ``weights`` (a path, verified by
the ``stage_model`` rule against the configured sha256) and loads it in :meth:`load`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from plateflow.core.imageio import sha256_file

logger = logging.getLogger(__name__)

__all__ = [
    "COMMON_DEFAULTS",
    "METHODS",
    "Segmentation",
    "SegmentationMethod",
    "SiteImage",
    "build_method",
    "cytoplasm_from",
    "get_method",
    "register",
]

#: Defaults of the keys of the ``segmentation:`` config section that every method shares
#: (each method adds its own section, named after it, with its :attr:`~SegmentationMethod.defaults`).
COMMON_DEFAULTS: dict[str, Any] = {
    # Which method to use: a name in METHODS.
    "method": "classical",
    # Ask the scheduler for a GPU per segmentation job (used by the workflow's resources).
    "gpu": False,
    # Weights of a model-based method (staged by the workflow's stage_model rule).
    "model": {"name": None, "source": None, "sha256": None},
    # Channel (by name) holding the nuclear stain (Hoechst/DAPI).
    "nuclei_channel": "DNA",
    # Channel used to find cell bodies; None -> the method's fallback (classical: nuclei grown
    # by cell_expansion_px).
    "cells_channel": None,
}


@dataclass(frozen=True)
class Segmentation:
    """Label images of one site.

    Attributes
    ----------
    nuclei, cells, cytoplasm : (Y, X) int32 ndarray
        Label images, 0 = background; the same number is the same cell in all three.
    method : str
        Segmentation method that produced them (``"classical"``, ...).
    model : str or None
        Model name for learned methods; None for the classical method.
    weights_sha256 : str or None
        SHA-256 of the model weights file for learned methods; None for the classical method.
    info : dict
        Per-site scalars worth recording for QC (thresholds used, estimated diameter, objects
        removed per rule, ...).
    objects : dict
        Per-object columns: full column name -> float array of length N (label ``i + 1`` at
        index ``i``).
    """

    nuclei: np.ndarray
    cells: np.ndarray
    cytoplasm: np.ndarray
    method: str
    model: str | None = None
    weights_sha256: str | None = None
    info: dict = field(default_factory=dict)
    objects: dict = field(default_factory=dict)

    @property
    def n_objects(self) -> int:
        """Number of nuclei (= number of cells)."""
        return int(self.nuclei.max(initial=0))


@dataclass(frozen=True)
class SiteImage:
    """One site as a method sees it.

    Attributes
    ----------
    image : (C, Y, X) float32 ndarray
        The illumination-corrected site, intensities in [0, 1].
    channels : tuple of str
        Channel names, one per plane of ``image``.
    """

    image: np.ndarray
    channels: tuple[str, ...]

    def __post_init__(self):
        image = np.asarray(self.image, dtype=np.float32)
        if image.ndim != 3:
            raise ValueError(
                f"a site is one (channels, Y, X) array; got shape {image.shape}"
            )
        channels = tuple(self.channels)
        if image.shape[0] != len(channels):
            raise ValueError(
                f"The image has {image.shape[0]} channels but {len(channels)} channel names "
                f"were given ({list(channels)})"
            )
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "channels", channels)

    def plane(self, name: str, *, key: str) -> np.ndarray:
        """The (Y, X) plane of channel ``name``; ``key`` names the config key that chose it."""
        if name not in self.channels:
            raise ValueError(
                f"segmentation.{key} is {name!r}, but this image only has channels "
                f"{list(self.channels)}"
            )
        return self.image[self.channels.index(name)]


class SegmentationMethod:
    """Base class of a segmentation method (see the module docstring).

    Parameters
    ----------
    config : mapping
        The method's own config section (``segmentation.<name>``); missing keys take
        :attr:`defaults`, unknown keys are an error.
    nuclei_channel : str
        Channel holding the nuclear stain.
    cells_channel : str or None
        Channel that shows cell bodies, if any.
    weights : path or None
        The staged, verified weights file of a model-based method (None otherwise).
    model : mapping or None
        The ``segmentation.model`` section (name, source, sha256): a model-based method checks
        ``weights`` against its sha256 before loading.
    """

    #: The registered name (set by :func:`register`).
    name: ClassVar[str] = ""
    #: Defaults of the method's config section (the schema holds the same).
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: Mapping | None = None, *, nuclei_channel: str,
                 cells_channel: str | None = None, weights: str | Path | None = None,
                 model: Mapping | None = None):
        config = dict(config or {})
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"segmentation.{self.name} has no option {unknown[0]!r}; allowed: "
                f"{', '.join(sorted(self.defaults))}"
            )
        self.config: dict[str, Any] = {**copy.deepcopy(self.defaults), **config}
        self.nuclei_channel = nuclei_channel
        self.cells_channel = cells_channel
        self.weights = None if weights is None else Path(weights)
        self.model_config: dict | None = None if model is None else dict(model)
        #: Model name and weights hash, for methods whose :meth:`load` loads weights.
        self.model: str | None = None
        self.weights_sha256: str | None = None

    def load(self) -> None:
        """Prepare for a batch (load a model); called once per batch job. Default: nothing."""

    #: How many sites the batch job hands to :meth:`segment_batch` at once (a model method
    #: may raise it, or take it from its config, to fill the GPU).
    sites_per_call: int = 1

    def segment(self, site: SiteImage) -> Segmentation:
        """Segment one site."""
        raise NotImplementedError

    def segment_batch(self, sites: list[SiteImage]) -> list[Segmentation]:
        """Segment several sites in one call (a model evaluates them as one batch); the
        default segments them one by one. Returns one result per site, in order."""
        return [self.segment(site) for site in sites]

    def record_weights(self, path: str | Path, *, name: str) -> None:
        """Remember the model's name and the sha256 of its weights file (call from :meth:`load`);
        :meth:`result` then writes them into every :class:`Segmentation`."""
        self.model = name
        self.weights_sha256 = sha256_file(path)

    def result(self, nuclei: np.ndarray, cells: np.ndarray, *,
               cytoplasm: np.ndarray | None = None, info: dict | None = None,
               objects: Mapping | None = None) -> Segmentation:
        """A :class:`Segmentation` of this method (cytoplasm from :func:`cytoplasm_from` if not
        given), with the model and weights hash recorded by :meth:`record_weights`."""
        nuclei = np.asarray(nuclei).astype(np.int32, copy=False)
        cells = np.asarray(cells).astype(np.int32, copy=False)
        return Segmentation(
            nuclei=nuclei,
            cells=cells,
            cytoplasm=cytoplasm_from(cells, nuclei) if cytoplasm is None else cytoplasm,
            method=self.name,
            model=self.model,
            weights_sha256=self.weights_sha256,
            info=dict(info or {}),
            objects={name: np.asarray(values, dtype=np.float32)
                     for name, values in (objects or {}).items()},
        )


#: Registered methods: name -> class.
METHODS: dict[str, type[SegmentationMethod]] = {}


def register(name: str):
    """Class decorator: make a :class:`SegmentationMethod` selectable as
    ``segmentation.method: <name>``."""

    def decorate(cls: type[SegmentationMethod]) -> type[SegmentationMethod]:
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"segmentation method {name!r} is registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return decorate


def get_method(name: str) -> type[SegmentationMethod]:
    """The class registered as ``name``."""
    if name not in METHODS:
        raise ValueError(
            f"Unknown segmentation method {name!r}; allowed methods: {', '.join(sorted(METHODS))}"
        )
    return METHODS[name]


def build_method(params: Mapping, *, weights: str | Path | None = None) -> SegmentationMethod:
    """The method the ``segmentation:`` config section selects, with its own section.

    Parameters
    ----------
    params : mapping
        The ``segmentation:`` section: ``method``, ``nuclei_channel``, ``cells_channel`` and a
        section named after the method.
    weights : path, optional
        The staged weights file (rule ``stage_model``) of a model-based method.
    """
    name = params["method"]
    cls = get_method(name)
    return cls(params.get(name), nuclei_channel=params["nuclei_channel"],
               cells_channel=params.get("cells_channel"), weights=weights,
               model=params.get("model"))


def cytoplasm_from(cells: np.ndarray, nuclei: np.ndarray, *, shrink: int = 0) -> np.ndarray:
    """Cytoplasm = cells minus nuclei, keeping the cell label numbers.

    With ``shrink`` > 0 each nucleus is shrunk by that many pixels first (CellProfiler's
    IdentifyTertiaryObjects, "shrink smaller object prior to subtraction"): the nucleus's outer
    ring of pixels stays in the cytoplasm, so every cell whose nucleus has an edge keeps some
    cytoplasm.

    Parameters
    ----------
    cells, nuclei : (Y, X) int ndarray
        Same label numbers.
    shrink : int
        Pixels peeled off each nucleus before it is subtracted (0: plain subtraction).

    Returns
    -------
    (Y, X) int32 ndarray
    """
    nuclei = np.asarray(nuclei)
    inner = nuclei > 0
    if shrink > 0:
        # A pixel stays nucleus when its whole 8-neighbourhood is the same nucleus: the
        # outline CellProfiler removes (centrosome's ``outline``: any of the 8 neighbours
        # differs, and every pixel on the image's edge), once per pixel of ``shrink``.
        # Touching nuclei are shrunk apart.
        padded = np.pad(nuclei, 1, mode="constant")
        for _ in range(int(shrink)):
            centre = padded[1:-1, 1:-1]
            same = np.ones(centre.shape, bool)
            for dy in (0, 1, 2):
                for dx in (0, 1, 2):
                    if (dy, dx) != (1, 1):
                        same &= padded[dy:dy + centre.shape[0], dx:dx + centre.shape[1]] == centre
            padded = np.pad(np.where(same, centre, 0), 1, mode="constant")
        inner = padded[1:-1, 1:-1] > 0
    cytoplasm = np.array(cells, dtype=np.int32, copy=True)
    cytoplasm[inner] = 0
    return cytoplasm
